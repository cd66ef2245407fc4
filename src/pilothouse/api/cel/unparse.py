"""A checked tree back to source text, in the form the engine evaluates as cel-go would.

The engine (``common-expression-language``, cel-rust) agrees with cel-go except in a
few places, which the writer bridges using the checker's types:

* ``size()`` of a string counts code points in cel-go, bytes in the engine: a string
  operand goes through a library helper (an operand of unknown type picks at run time);
* the optional syntax ``a.?b`` and ``a[?k]`` (cel-go's ``OptionalTypes``) becomes
  helper calls, and so does a field selected from an optional value;
* ``string()`` of an IP, CIDR or URL (opaque values in the engine);
* schema properties whose names CEL escapes (``foo-bar`` is ``self.foo__dash__bar``)
  are read by their real name (``self["foo-bar"]``).

No I/O here: this module is part of the bottom ``api`` layer.
"""

from __future__ import annotations

import math

from pilothouse.api.cel import checker, library, syntax
from pilothouse.api.cel import types as t

INT64_MIN = -(1 << 63)


def _string(value: str) -> str:
    out = ['"']
    for ch in value:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _bytes(value: bytes) -> str:
    return 'b"' + "".join(f"\\x{b:02x}" for b in value) + '"'


def _literal(node: syntax.Literal) -> str:
    value, kind = node.value, node.kind
    if kind == "string":
        return _string(value)
    if kind == "bytes":
        return _bytes(value)
    if kind == "bool":
        return "true" if value else "false"
    if kind == "null":
        return "null"
    if kind == "uint":
        return f"{value}u"
    if kind == "double":
        if math.isinf(value) or math.isnan(value):
            return f'double("{"NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")}")'
        text = repr(float(value))
        return text if any(c in text for c in ".e") else text + ".0"
    if value == INT64_MIN:
        return "(-9223372036854775807 - 1)"
    return str(value)


class _Writer:
    def __init__(self, checked: checker.Checked) -> None:
        self.checked = checked

    def type_of(self, node: syntax.Node) -> t.Type:
        return self.checked.type_of(node)

    def write(self, node: syntax.Node) -> str:
        if isinstance(node, syntax.Literal):
            return _literal(node)
        if isinstance(node, syntax.Ident):
            return node.name
        if isinstance(node, syntax.Select):
            return self._select(node)
        if isinstance(node, syntax.ListLit):
            if node.optional:
                raise checker.CheckError("optional list elements are not supported", node.pos)
            return "[" + ", ".join(self.write(e) for e in node.elements) + "]"
        if isinstance(node, syntax.MapLit):
            if any(opt for _, _, opt in node.entries):
                raise checker.CheckError("optional map entries are not supported", node.pos)
            inner = ", ".join(f"{self.write(k)}: {self.write(v)}" for k, v, _ in node.entries)
            return "{" + inner + "}"
        if isinstance(node, syntax.Comprehension):
            args = ", ".join([node.var, *(self.write(a) for a in node.args)])
            return f"{self._operand(node.range)}.{node.macro}({args})"
        if isinstance(node, syntax.Call):
            return self._call(node)
        raise checker.CheckError("unsupported expression", node.pos)  # pragma: no cover

    def _operand(self, node: syntax.Node) -> str:
        text = self.write(node)
        if isinstance(
            node, syntax.Ident | syntax.Select | syntax.Literal | syntax.ListLit | syntax.MapLit
        ):
            return text
        if isinstance(node, syntax.Call) and (
            node.target is not None or node.function[0].isalpha()
        ):
            return text
        return f"({text})"

    def _property(self, operand: syntax.Node, field: str) -> str:
        """The real property name behind a CEL field name (``foo__dash__bar`` → ``foo-bar``)."""
        typ = self.type_of(operand)
        if typ.name == "optional_type":
            typ = typ.params[0]
        if typ.name == "object":
            return typ.properties.get(field, field)
        return field

    def _select(self, node: syntax.Select) -> str:
        operand_type = self.type_of(node.operand)
        operand = self._operand(node.operand)
        name = self._property(node.operand, node.field)
        if node.optional or operand_type.name == "optional_type":
            return f"{library.OPTIONAL_SELECT}({operand}, {_string(name)})"
        if node.test_only:
            if name == node.field:
                return f"has({operand}.{name})"
            return f"({_string(name)} in {operand})"
        if name == node.field:
            return f"{operand}.{name}"
        return f"{operand}[{_string(name)}]"

    def _call(self, node: syntax.Call) -> str:
        fn, args = node.function, node.args
        if fn == "size":
            target = node.target if node.target is not None else (args[0] if args else None)
            if target is not None and len(args) + (node.target is not None) == 1:
                return self._size(target)
        if (
            fn == "string"
            and node.target is None
            and len(args) == 1
            and self.type_of(args[0]) in (t.IP, t.CIDR, t.URL)
        ):
            return f"{library.OPAQUE_STRING}({self.write(args[0])})"
        if fn == "_[?_]":
            return f"{library.OPTIONAL_INDEX}({self.write(args[0])}, {self.write(args[1])})"
        if fn == "_[_]":
            return f"{self._operand(args[0])}[{self.write(args[1])}]"
        if fn == "_?_:_":
            return f"({self.write(args[0])} ? {self.write(args[1])} : {self.write(args[2])})"
        if fn == "!_":
            return f"!{self._operand(args[0])}"
        if fn == "-_":
            return f"-{self._operand(args[0])}"
        if fn == "@in":
            return f"({self.write(args[0])} in {self.write(args[1])})"
        if fn.startswith("_") and fn.endswith("_") and len(args) == 2:
            return f"({self.write(args[0])} {fn[1:-1]} {self.write(args[1])})"
        text_args = ", ".join(self.write(a) for a in args)
        if node.target is not None:
            return f"{self._operand(node.target)}.{fn}({text_args})"
        return f"{fn}({text_args})"

    def _size(self, operand: syntax.Node) -> str:
        typ = self.type_of(operand)
        text = self.write(operand)
        if typ == t.STRING:
            return f"{library.STRING_SIZE}({text})"
        if typ.name in ("list", "map", "bytes"):
            return f"size({text})"
        return f"(type({text}) == string ? {library.STRING_SIZE}({text}) : size({text}))"


def write(checked: checker.Checked) -> str:
    """Engine source for a checked expression."""
    return _Writer(checked).write(checked.root)
