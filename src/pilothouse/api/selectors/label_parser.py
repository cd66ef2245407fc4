"""The ``labelSelector`` string: lexer and parser, as apimachinery ``pkg/labels``.

A port of upstream's hand-written recursive-descent parser, token for token,
because clients show its messages verbatim and its quirks decide what is
accepted: ``in``/``notin`` are plain words where values are expected,
``(a,,b)`` holds an empty value, a NUL byte reads as the end of input where a
token starts, and only errors inside a requirement get the ``unable to parse
requirement:`` prefix. Requirements come out sorted by key.

No I/O here: this module is part of the bottom ``api`` layer.
"""

from __future__ import annotations

from pilothouse.api import gostrings
from pilothouse.api.selectors import error as _error
from pilothouse.api.selectors.error import SelectorError
from pilothouse.api.selectors.labels import (
    BINARY_OPERATORS,
    DOES_NOT_EXIST,
    DOUBLE_EQUALS,
    EQUALS,
    EVERYTHING,
    EXISTS,
    GREATER_THAN,
    IN,
    LESS_THAN,
    NOT_EQUALS,
    NOT_IN,
    LabelSelector,
    Requirement,
    new_requirement,
)
from pilothouse.api.validation import names

# Token kinds of upstream's lexer.
(
    _END,
    _CLOSE_PAR,
    _COMMA,
    _NOT,
    _DOUBLE_EQUALS,
    _EQUALS,
    _GT,
    _IDENT,
    _IN,
    _LT,
    _NOT_EQUALS,
    _NOT_IN,
    _OPEN_PAR,
) = range(13)

_SYMBOLS = {
    ")": _CLOSE_PAR,
    ",": _COMMA,
    "!": _NOT,
    "==": _DOUBLE_EQUALS,
    "=": _EQUALS,
    ">": _GT,
    "<": _LT,
    "!=": _NOT_EQUALS,
    "(": _OPEN_PAR,
}
_KEYWORDS = {"in": _IN, "notin": _NOT_IN}
_SPECIAL = frozenset("=!(),><")
_WHITESPACE = frozenset(" \t\r\n")
# Go's lexer reads a NUL byte as the end of the input.
_STOP = ("", "\0")


def _tokens(text: str) -> list[tuple[int, str]]:
    """Split ``text`` into (kind, literal) tokens, ending with one end token."""
    out: list[tuple[int, str]] = []
    pos, size = 0, len(text)
    while True:
        while pos < size and text[pos] in _WHITESPACE:
            pos += 1
        ch = text[pos] if pos < size else ""
        if ch in _STOP:
            out.append((_END, ""))
            return out
        if ch in _SPECIAL:
            # Longest operator wins ("!=" over "!"); every single symbol is one.
            if text.startswith(("!=", "=="), pos):
                literal = text[pos : pos + 2]
            else:
                literal = ch
            pos += len(literal)
            if pos < size and text[pos] == "\0":
                pos += 1  # consumed, as Go's read() does
            out.append((_SYMBOLS[literal], literal))
            continue
        start = pos
        while pos < size and text[pos] not in _SPECIAL and text[pos] not in _WHITESPACE:
            if text[pos] == "\0":
                break
            pos += 1
        literal = text[start:pos]
        if pos < size and text[pos] == "\0":
            pos += 1  # consumed, as Go's read() does
        out.append((_KEYWORDS.get(literal, _IDENT), literal))


class _Parser:
    """Upstream's recursive-descent parser, token for token (including its messages)."""

    def __init__(self, text: str) -> None:
        self.items = _tokens(text)
        self.position = 0

    def lookahead(self, values: bool) -> tuple[int, str]:
        kind, literal = self.items[self.position]
        # In a values context "in" and "notin" are plain identifiers.
        if values and kind in (_IN, _NOT_IN):
            kind = _IDENT
        return kind, literal

    def consume(self, values: bool) -> tuple[int, str]:
        token = self.lookahead(values)
        self.position += 1
        return token

    def parse(self) -> list[Requirement]:
        requirements: list[Requirement] = []
        while True:
            kind, literal = self.lookahead(True)
            if kind in (_IDENT, _NOT):
                try:
                    requirements.append(self.requirement())
                except SelectorError as e:
                    raise SelectorError(f"unable to parse requirement: {e}") from None
                kind, literal = self.consume(True)
                if kind == _END:
                    return requirements
                if kind == _COMMA:
                    next_kind, next_literal = self.lookahead(True)
                    if next_kind not in (_IDENT, _NOT):
                        raise SelectorError(
                            f"found '{next_literal}', expected: identifier after ','"
                        )
                    continue
                raise SelectorError(f"found '{literal}', expected: ',' or 'end of string'")
            if kind == _END:
                return requirements
            raise SelectorError(f"found '{literal}', expected: !, identifier, or 'end of string'")

    def requirement(self) -> Requirement:
        key, operator = self.key_and_inferred_operator()
        if operator in (EXISTS, DOES_NOT_EXIST):
            return new_requirement(key, operator)
        operator = self.operator()
        values = self.value_set() if operator in (IN, NOT_IN) else self.exact_value()
        return new_requirement(key, operator, sorted(values))

    def key_and_inferred_operator(self) -> tuple[str, str]:
        operator = ""
        kind, literal = self.consume(True)
        if kind == _NOT:
            operator = DOES_NOT_EXIST
            kind, literal = self.consume(True)
        if kind != _IDENT:
            raise SelectorError(f"found '{literal}', expected: identifier")
        if key_errors := names.is_qualified_name(literal):
            # Upstream validates with a nil field path here, which prints as "<nil>".
            raise SelectorError(
                _error.invalid("<nil>", gostrings.quote(literal), "; ".join(key_errors))
            )
        if self.lookahead(True)[0] in (_END, _COMMA) and operator != DOES_NOT_EXIST:
            operator = EXISTS
        return literal, operator

    def operator(self) -> str:
        kind, literal = self.consume(False)
        found = {
            _IN: IN,
            _EQUALS: EQUALS,
            _DOUBLE_EQUALS: DOUBLE_EQUALS,
            _GT: GREATER_THAN,
            _LT: LESS_THAN,
            _NOT_IN: NOT_IN,
            _NOT_EQUALS: NOT_EQUALS,
        }.get(kind)
        if found is None:
            raise SelectorError(f"found '{literal}', expected: {', '.join(BINARY_OPERATORS)}")
        return found

    def value_set(self) -> set[str]:
        kind, literal = self.consume(True)
        if kind != _OPEN_PAR:
            raise SelectorError(f"found '{literal}' expected: '('")
        kind, literal = self.lookahead(True)
        if kind in (_IDENT, _COMMA):
            values = self.identifiers()
            if self.consume(True)[0] != _CLOSE_PAR:
                raise SelectorError(f"found '{literal}', expected: ')'")
            return values
        if kind == _CLOSE_PAR:
            self.consume(True)
            return {""}
        raise SelectorError(f"found '{literal}', expected: ',', ')' or identifier")

    def identifiers(self) -> set[str]:
        # Empty items are allowed ("(a,,b)", "(,a)", "(a,)") and mean "".
        values: set[str] = set()
        while True:
            kind, literal = self.consume(True)
            if kind == _IDENT:
                values.add(literal)
                next_kind, next_literal = self.lookahead(True)
                if next_kind == _COMMA:
                    continue
                if next_kind == _CLOSE_PAR:
                    return values
                raise SelectorError(f"found '{next_literal}', expected: ',' or ')'")
            if kind == _COMMA:
                if not values:
                    values.add("")
                next_kind = self.lookahead(True)[0]
                if next_kind == _CLOSE_PAR:
                    values.add("")
                    return values
                if next_kind == _COMMA:
                    self.consume(True)
                    values.add("")
                continue
            raise SelectorError(f"found '{literal}', expected: ',', or identifier")

    def exact_value(self) -> set[str]:
        if self.lookahead(True)[0] in (_END, _COMMA):
            return {""}
        kind, literal = self.consume(True)
        if kind == _IDENT:
            return {literal}
        raise SelectorError(f"found '{literal}', expected: identifier")


def parse_label_selector(text: str) -> LabelSelector:
    """Parse a ``labelSelector`` string (``""`` selects everything).

    Raises :class:`SelectorError` worded as upstream (``unable to parse
    requirement: …``, ``found ',', expected: …``).
    """
    if not text:
        return EVERYTHING
    return LabelSelector(_Parser(text).parse())


def parse_requirements(text: str) -> list[Requirement]:
    """The requirements of a selector string, sorted by key (``labels.ParseToRequirements``)."""
    return list(parse_label_selector(text).requirements)
