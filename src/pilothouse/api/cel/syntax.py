"""CEL source text to a syntax tree, as cel-go's parser builds it.

The tree is what the checker (:mod:`.checker`), the cost estimator (:mod:`.cost`)
and the engine's source writer (:mod:`.unparse`) walk. Operators are calls named as
cel-go names them (``_+_``, ``_[_]``, ``!_``, ``@in``), the macros (``has``, ``all``,
``exists``, ``exists_one``, ``map``, ``filter``) are their own node, and the optional
syntax of cel-go's ``OptionalTypes`` (``a.?b``, ``a[?k]``) is kept.

Errors carry an offset into the source; :func:`format_error` words them as cel-go
does (``ERROR: <input>:1:6: Syntax error: …`` with the line and a caret).

No I/O here: this module is part of the bottom ``api`` layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pilothouse.api.cel.lexer import SyntaxErrorCEL, Token, string_literal, tokenize

__all__ = ["SyntaxErrorCEL", "parse"]

MAX_DEPTH = 250  # cel-go's default parser recursion limit
MAX_SOURCE = 100_000


# --- the tree ---------------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class Node:
    pos: int


@dataclass(slots=True, eq=False)
class Literal(Node):
    value: Any
    kind: str  # int uint double string bytes bool null


@dataclass(slots=True, eq=False)
class Ident(Node):
    name: str


@dataclass(slots=True, eq=False)
class Select(Node):
    operand: Node
    field: str
    test_only: bool = False  # has(a.b)
    optional: bool = False  # a.?b


@dataclass(slots=True, eq=False)
class Call(Node):
    function: str
    args: list[Node]
    target: Node | None = None  # receiver of a member call


@dataclass(slots=True, eq=False)
class ListLit(Node):
    elements: list[Node]
    optional: frozenset[int] = frozenset()  # indices written as ?elem


@dataclass(slots=True, eq=False)
class MapLit(Node):
    entries: list[tuple[Node, Node, bool]]  # key, value, optional


@dataclass(slots=True, eq=False)
class Comprehension(Node):
    """A macro call: ``range.all(x, pred)``, ``range.map(x, filter, expr)`` …"""

    macro: str  # all exists exists_one map filter
    range: Node
    var: str
    args: list[Node] = field(default_factory=list)


MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
RESERVED = frozenset(
    {
        "as",
        "break",
        "const",
        "continue",
        "else",
        "for",
        "function",
        "if",
        "import",
        "let",
        "loop",
        "package",
        "namespace",
        "return",
        "var",
        "void",
        "while",
    }
)

# --- the parser ---------------------------------------------------------------------------

_RELATIONS = {"<": "_<_", "<=": "_<=_", ">": "_>_", ">=": "_>=_", "==": "_==_", "!=": "_!=_"}
_ADDITIVE = {"+": "_+_", "-": "_-_"}
_MULTIPLICATIVE = {"*": "_*_", "/": "_/_", "%": "_%_"}
INT64 = (-(1 << 63), (1 << 63) - 1)
UINT64_MAX = (1 << 64) - 1


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.tokens = tokenize(source)
        self.i = 0
        self.depth = 0

    # --- token helpers ---
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def at(self, text: str) -> bool:
        tok = self.tok
        return tok.kind in ("op", "ident") and tok.text == text

    def take(self, text: str) -> Token:
        tok = self.tok
        if not self.at(text):
            found = "'<EOF>'" if tok.kind == "eof" else f"'{tok.text}'"
            raise SyntaxErrorCEL(
                f"Syntax error: mismatched input {found} expecting '{text}'", tok.pos
            )
        self.i += 1
        return tok

    def advance(self) -> Token:
        tok = self.tok
        self.i += 1
        return tok

    def deeper(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise SyntaxErrorCEL("expression recursion limit exceeded", self.tok.pos)

    # --- grammar ---
    def parse(self) -> Node:
        if not self.source.strip():
            raise SyntaxErrorCEL("Syntax error: mismatched input '<EOF>' expecting expression", 0)
        node = self.expr()
        if self.tok.kind != "eof":
            raise SyntaxErrorCEL(
                f"Syntax error: extraneous input '{self.tok.text}' expecting <EOF>", self.tok.pos
            )
        return node

    def expr(self) -> Node:
        self.deeper()
        try:
            cond = self.or_expr()
            if self.at("?"):
                pos = self.advance().pos
                then = self.or_expr()
                self.take(":")
                other = self.expr()
                return Call(pos, "_?_:_", [cond, then, other])
            return cond
        finally:
            self.depth -= 1

    def or_expr(self) -> Node:
        node = self.and_expr()
        while self.at("||"):
            pos = self.advance().pos
            node = Call(pos, "_||_", [node, self.and_expr()])
        return node

    def and_expr(self) -> Node:
        node = self.relation()
        while self.at("&&"):
            pos = self.advance().pos
            node = Call(pos, "_&&_", [node, self.relation()])
        return node

    def relation(self) -> Node:
        node = self.addition()
        while True:
            tok = self.tok
            if tok.kind == "op" and tok.text in _RELATIONS:
                self.advance()
                node = Call(tok.pos, _RELATIONS[tok.text], [node, self.addition()])
            elif tok.kind == "ident" and tok.text == "in":
                self.advance()
                node = Call(tok.pos, "@in", [node, self.addition()])
            else:
                return node

    def addition(self) -> Node:
        node = self.multiplication()
        while self.tok.kind == "op" and self.tok.text in _ADDITIVE:
            tok = self.advance()
            node = Call(tok.pos, _ADDITIVE[tok.text], [node, self.multiplication()])
        return node

    def multiplication(self) -> Node:
        node = self.unary()
        while self.tok.kind == "op" and self.tok.text in _MULTIPLICATIVE:
            tok = self.advance()
            node = Call(tok.pos, _MULTIPLICATIVE[tok.text], [node, self.unary()])
        return node

    def unary(self) -> Node:
        tok = self.tok
        if self.at("!"):
            self.advance()
            self.deeper()
            try:
                return Call(tok.pos, "!_", [self.unary()])
            finally:
                self.depth -= 1
        if self.at("-"):
            self.advance()
            nxt = self.tok
            if nxt.kind in ("int", "float") and nxt.pos == tok.pos + 1:
                # cel-go folds a minus into the literal it touches (so -9223372036854775808 is valid).
                self.advance()
                lit = self._number(nxt, negative=True)
                return self.member_suffix(lit)
            self.deeper()
            try:
                return Call(tok.pos, "-_", [self.unary()])
            finally:
                self.depth -= 1
        return self.member()

    def member(self) -> Node:
        return self.member_suffix(self.primary())

    def member_suffix(self, node: Node) -> Node:
        while True:
            tok = self.tok
            if self.at(".") or self.at(".?"):
                optional = tok.text == ".?"
                self.advance()
                name_tok = self.tok
                if name_tok.kind != "ident":
                    raise SyntaxErrorCEL(
                        f"Syntax error: no viable alternative at input '.{name_tok.text}'",
                        name_tok.pos,
                    )
                self.advance()
                if self.at("(") and not optional:
                    paren = self.advance()
                    args = self.expr_list(")")
                    self.take(")")
                    node = self._member_call(node, name_tok, paren.pos, args)
                else:
                    node = Select(name_tok.pos - 1, node, name_tok.text, optional=optional)
            elif self.at("[") or self.at("[?"):
                optional = tok.text == "[?"
                self.advance()
                index = self.expr()
                self.take("]")
                node = Call(tok.pos, "_[?_]" if optional else "_[_]", [node, index])
            elif self.at("{") and isinstance(node, Ident | Select):
                raise SyntaxErrorCEL(
                    "message construction is not supported (no message types are declared)", tok.pos
                )
            else:
                return node

    def _member_call(self, target: Node, name: Token, pos: int, args: list[Node]) -> Node:
        if name.text in MACROS and args:
            var = args[0]
            expected = 3 if name.text == "map" else 2
            if name.text == "map" and len(args) == 2:
                expected = 2
            if len(args) == expected and isinstance(var, Ident):
                return Comprehension(pos, name.text, target, var.name, args[1:])
            if len(args) == 3 and isinstance(var, Ident) and isinstance(args[1], Ident):
                # Two-variable comprehensions (cel-go ext.TwoVarComprehensions): not offered.
                raise SyntaxErrorCEL(
                    f"two-variable comprehension {name.text}() is not supported", name.pos
                )
            if not isinstance(var, Ident):
                raise SyntaxErrorCEL("argument must be a simple name", var.pos)
            raise SyntaxErrorCEL(f"wrong number of arguments to the {name.text}() macro", name.pos)
        return Call(pos, name.text, args, target=target)

    def expr_list(self, close: str) -> list[Node]:
        args: list[Node] = []
        if self.at(close):
            return args
        args.append(self.expr())
        while self.at(","):
            self.advance()
            if self.at(close):
                break
            args.append(self.expr())
        return args

    def primary(self) -> Node:
        tok = self.tok
        if tok.kind in ("int", "float"):
            self.advance()
            return self._number(tok, negative=False)
        if tok.kind == "string":
            self.advance()
            value, kind = string_literal(tok)
            return Literal(tok.pos, value, kind)
        if tok.kind == "ident":
            self.advance()
            name = tok.text
            if name in ("true", "false"):
                return Literal(tok.pos, name == "true", "bool")
            if name == "null":
                return Literal(tok.pos, None, "null")
            if name in RESERVED or name == "in":
                raise SyntaxErrorCEL(f"reserved identifier: {name}", tok.pos)
            if self.at("("):
                paren = self.advance()
                args = self.expr_list(")")
                self.take(")")
                if name == "has":
                    if len(args) != 1 or not isinstance(args[0], Select) or args[0].optional:
                        raise SyntaxErrorCEL("invalid argument to has() macro", tok.pos)
                    sel = args[0]
                    return Select(sel.pos, sel.operand, sel.field, test_only=True)
                return Call(paren.pos, name, args)
            return Ident(tok.pos, name)
        if self.at("."):
            # A leading dot names the root namespace: ``.self`` is ``self``.
            self.advance()
            return self.primary()
        if self.at("("):
            self.advance()
            node = self.expr()
            self.take(")")
            return node
        if self.at("["):
            self.advance()
            elements: list[Node] = []
            optional: set[int] = set()
            while not self.at("]"):
                if self.at("?"):
                    self.advance()
                    optional.add(len(elements))
                elements.append(self.expr())
                if not self.at(","):
                    break
                self.advance()
            self.take("]")
            return ListLit(tok.pos, elements, frozenset(optional))
        if self.at("{"):
            self.advance()
            entries: list[tuple[Node, Node, bool]] = []
            while not self.at("}"):
                opt = False
                if self.at("?"):
                    self.advance()
                    opt = True
                key = self.expr()
                self.take(":")
                entries.append((key, self.expr(), opt))
                if not self.at(","):
                    break
                self.advance()
            self.take("}")
            return MapLit(tok.pos, entries)
        found = "'<EOF>'" if tok.kind == "eof" else f"'{tok.text}'"
        raise SyntaxErrorCEL(
            f"Syntax error: mismatched input {found} expecting expression", tok.pos
        )

    def _number(self, tok: Token, *, negative: bool) -> Literal:
        text = tok.text
        sign = -1 if negative else 1
        if tok.kind == "float":
            return Literal(tok.pos, sign * float(text), "double")
        unsigned = text[-1] in "uU"
        digits = text[:-1] if unsigned else text
        value = int(digits, 16) if digits[:2].lower() == "0x" else int(digits)
        if unsigned:
            if negative or value > UINT64_MAX:
                raise SyntaxErrorCEL("invalid uint literal", tok.pos)
            return Literal(tok.pos, value, "uint")
        value *= sign
        if not INT64[0] <= value <= INT64[1]:
            raise SyntaxErrorCEL("invalid int literal", tok.pos)
        return Literal(tok.pos, value, "int")


def parse(source: str) -> Node:
    """The syntax tree of ``source``; raises :class:`SyntaxErrorCEL`."""
    if len(source) > MAX_SOURCE:
        raise SyntaxErrorCEL(
            f"expression code point size exceeds limit: size: {len(source)}, limit {MAX_SOURCE}", 0
        )
    return _Parser(source).parse()


def location(source: str, offset: int) -> tuple[int, int]:
    """1-based line and 0-based column of ``offset``, as cel-go reports them."""
    line = source.count("\n", 0, offset) + 1
    column = offset - (source.rfind("\n", 0, offset) + 1)
    return line, column


def format_error(source: str, offset: int, message: str) -> str:
    """``ERROR: <input>:L:C: message`` with the source line and a caret, as cel-go prints."""
    line, column = location(source, offset)
    text = source.split("\n")[line - 1] if source else ""
    caret = "." * column + "^"
    return f"ERROR: <input>:{line}:{column + 1}: {message}\n | {text}\n | {caret}"
