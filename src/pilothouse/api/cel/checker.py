"""Static checks of a CEL expression, as cel-go's checker makes them.

The checker walks the syntax tree once with the declared variables and the
function overloads of the environment, infers each node's type, and reports the
first problem in cel-go's words:

* ``undeclared reference to 'foo' (in container '')`` — an unknown variable or function;
* ``undefined field 'foo'`` — a field a schema-typed object does not have;
* ``found no matching overload for '_+_' applied to '(int, string)'`` — operand types
  no overload accepts (only when the types are known: ``dyn`` matches anything);
* ``expected type 'int' but found 'string'`` — a list or map literal mixing types
  (upstream enables ``HomogeneousAggregateLiterals``);
* literals upstream validates at compile time: regular expressions, ``duration('…')``
  and ``timestamp('…')``.

Types flow through selections, indexing, comprehension variables and calls, so the
result type of the whole expression is known when its parts are. The inferred
types also drive the source writer (:mod:`.unparse`) and the cost estimate
(:mod:`.cost`), which read :attr:`Checked.types`.

No I/O here: this module is part of the bottom ``api`` layer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pilothouse.api.cel import syntax
from pilothouse.api.cel import types as t
from pilothouse.api.cel.library import declarations as decls


class CheckError(ValueError):
    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


@dataclass
class Checked:
    """A checked tree: its root, every node's type, and what it refers to."""

    root: syntax.Node
    result: t.Type
    types: dict[int, t.Type] = field(default_factory=dict)  # id(node) -> type
    variables: set[str] = field(default_factory=set)  # declared variables it reads

    def type_of(self, node: syntax.Node) -> t.Type:
        return self.types.get(id(node), t.DYN)


class _Checker:
    def __init__(self, variables: Mapping[str, t.Type], functions: decls.Functions) -> None:
        self.variables = variables
        self.functions = functions
        self.out: dict[int, t.Type] = {}
        self.used: set[str] = set()

    def check(self, node: syntax.Node, scope: Mapping[str, t.Type]) -> t.Type:
        typ = self._check(node, scope)
        self.out[id(node)] = typ
        return typ

    def _check(self, node: syntax.Node, scope: Mapping[str, t.Type]) -> t.Type:
        if isinstance(node, syntax.Literal):
            if node.kind in ("string", "bytes"):
                return t.Type(node.kind, max_length=len(node.value))
            return _LITERAL_TYPES[node.kind]
        if isinstance(node, syntax.Ident):
            return self._ident(node, scope)
        if isinstance(node, syntax.Select):
            return self._select(node, scope)
        if isinstance(node, syntax.ListLit):
            elem = self._homogeneous([self.check(e, scope) for e in node.elements], node.elements)
            return t.list_of(elem, max_elements=len(node.elements))
        if isinstance(node, syntax.MapLit):
            keys = [self.check(k, scope) for k, _, _ in node.entries]
            values = [self.check(v, scope) for _, v, _ in node.entries]
            key_type = self._homogeneous(keys, [k for k, _, _ in node.entries])
            value_type = self._homogeneous(values, [v for _, v, _ in node.entries])
            return t.map_of(key_type, value_type, max_elements=len(node.entries))
        if isinstance(node, syntax.Comprehension):
            return self._comprehension(node, scope)
        if isinstance(node, syntax.Call):
            return self._call(node, scope)
        raise CheckError("unsupported expression", node.pos)  # pragma: no cover

    # --- names and fields ---
    def _ident(self, node: syntax.Ident, scope: Mapping[str, t.Type]) -> t.Type:
        if node.name in scope:
            return scope[node.name]
        if node.name in self.variables:
            self.used.add(node.name)
            return self.variables[node.name]
        if node.name in _TYPE_NAMES:
            return t.TYPE
        raise CheckError(f"undeclared reference to '{node.name}' (in container '')", node.pos)

    def _qualified(self, node: syntax.Node) -> str | None:
        """``format.dns1123Label`` as one name, when the tree spells one."""
        if isinstance(node, syntax.Ident):
            return node.name
        if isinstance(node, syntax.Select) and not node.test_only and not node.optional:
            base = self._qualified(node.operand)
            return f"{base}.{node.field}" if base is not None else None
        return None

    def _select(self, node: syntax.Select, scope: Mapping[str, t.Type]) -> t.Type:
        # A variable declared with a qualified name (``authorizer.requestResource``).
        qualified = self._qualified(node)
        if qualified is not None and qualified in self.variables:
            root = qualified.split(".", 1)[0]
            if root not in scope:
                self.used.add(qualified)
                self.used.add(root)
                return self.variables[qualified]
        operand = self.check(node.operand, scope)
        inner = operand
        optional = operand.name == "optional_type"
        if optional:
            inner = operand.params[0]
        if inner.name == "object":
            found = inner.fields.get(node.field)
            if found is None:
                raise CheckError(f"undefined field '{node.field}'", node.pos)
            result = found
        elif inner.name == "map":
            if not t.is_assignable(inner.params[0], t.STRING):
                raise CheckError(f"type '{inner}' does not support field selection", node.pos)
            result = inner.params[1]
        elif inner.is_dyn:
            result = t.DYN
        else:
            raise CheckError(f"type '{inner}' does not support field selection", node.pos)
        if node.test_only:
            return t.BOOL
        if node.optional or optional:
            return t.optional_of(result)
        return result

    # --- literals ---
    def _homogeneous(self, found: list[t.Type], nodes: Sequence[syntax.Node]) -> t.Type:
        if not found:
            return t.DYN
        first = found[0]
        for typ, node in zip(found[1:], nodes[1:], strict=True):
            if not t.is_assignable(first, typ) or not t.is_assignable(typ, first):
                raise CheckError(f"expected type '{first}' but found '{typ}'", node.pos)
            if first.is_dyn:
                first = typ
        return first

    # --- macros ---
    def _comprehension(self, node: syntax.Comprehension, scope: Mapping[str, t.Type]) -> t.Type:
        rng = self.check(node.range, scope)
        if rng.name == "list" or rng.name == "map":
            var_type = rng.params[0]
        elif rng.name == "object":
            var_type = t.STRING
        elif rng.is_dyn:
            var_type = t.DYN
        else:
            raise CheckError(
                f"expression of type '{rng}' cannot be range of a comprehension "
                "(must be list, map, or dynamic)",
                node.range.pos,
            )
        inner = {**scope, node.var: var_type}
        arg_types = [self.check(a, inner) for a in node.args]
        if node.macro in ("all", "exists", "exists_one", "filter"):
            self._expect_bool(arg_types[0], node.args[0], node.macro)
        if node.macro == "map":
            if len(node.args) == 2:
                self._expect_bool(arg_types[0], node.args[0], node.macro)
            return t.list_of(arg_types[-1])
        if node.macro == "filter":
            return t.list_of(var_type)
        return t.BOOL

    def _expect_bool(self, typ: t.Type, node: syntax.Node, macro: str) -> None:
        if not t.is_assignable(t.BOOL, typ):
            raise CheckError(
                f"found no matching overload for '_&&_' applied to '(bool, {typ})'"
                if macro == "all"
                else f"expected type 'bool' but found '{typ}'",
                node.pos,
            )

    # --- calls ---
    def _call(self, node: syntax.Call, scope: Mapping[str, t.Type]) -> t.Type:
        name = node.function
        target_type: t.Type | None = None
        if node.target is not None:
            qualified = self._qualified(node.target)
            # ``format.dns1123Label()`` and ``optional.of(x)`` name global functions.
            if (
                qualified is not None
                and f"{qualified}.{name}" in self.functions
                and qualified.split(".")[0] not in scope
                and qualified.split(".")[0] not in self.variables
            ):
                name = f"{qualified}.{name}"
                node.function = name
                node.target = None
            else:
                target_type = self.check(node.target, scope)
        overloads = self.functions.get(name)
        if overloads is None:
            raise CheckError(f"undeclared reference to '{name}' (in container '')", node.pos)
        arg_types = [self.check(a, scope) for a in node.args]
        self._literal_checks(node)
        member = target_type is not None
        call_types = ([target_type] if target_type is not None else []) + arg_types
        results: list[t.Type] = []
        for overload in overloads:
            if overload.member != member or len(overload.args) != len(call_types):
                continue
            bound = decls.bind(overload, call_types)
            if bound is not None:
                results.append(bound)
        if results:
            # With dyn operands several overloads may fit: their common type, else dyn.
            first = results[0]
            return first if all(r == first for r in results[1:]) else t.DYN
        raise CheckError(
            f"found no matching overload for '{_display(name)}' applied to "
            f"'{_signature(target_type, arg_types)}'",
            node.pos,
        )

    def _literal_checks(self, node: syntax.Call) -> None:
        """Upstream validates regex, duration and timestamp literals at compile time."""
        name = node.function
        args = node.args
        if name in ("matches", "find", "findAll") and args:
            pattern = args[0] if node.target is not None else args[-1]
            if isinstance(pattern, syntax.Literal) and pattern.kind == "string":
                try:
                    re.compile(pattern.value)
                except re.error as exc:
                    raise CheckError(f"invalid matches argument: {exc}", pattern.pos) from None
        elif name == "duration" and args and isinstance(args[0], syntax.Literal):
            literal = args[0]
            if literal.kind == "string":
                from pilothouse.api.cel.library import durations

                if durations.parse(literal.value) is None:
                    raise CheckError(
                        f'invalid duration argument: time: invalid duration "{literal.value}"',
                        literal.pos,
                    )
        elif name == "timestamp" and args and isinstance(args[0], syntax.Literal):
            literal = args[0]
            if literal.kind == "string":
                from pilothouse.api.cel.library import durations

                if durations.parse_timestamp(literal.value) is None:
                    raise CheckError(
                        f'invalid timestamp "{literal.value}"',
                        literal.pos,
                    )


_LITERAL_TYPES = {
    "int": t.INT,
    "uint": t.UINT,
    "double": t.DOUBLE,
    "string": t.STRING,
    "bytes": t.BYTES,
    "bool": t.BOOL,
    "null": t.NULL,
}
_TYPE_NAMES = frozenset(
    {"int", "uint", "double", "bool", "string", "bytes", "list", "map", "null_type", "type"}
)


def _display(name: str) -> str:
    return name


def _signature(target: t.Type | None, args: list[t.Type]) -> str:
    inner = ", ".join(str(a) for a in args)
    if target is not None:
        return f"{target}.({inner})"
    return f"({inner})"


def check(
    root: syntax.Node, *, variables: Mapping[str, t.Type], functions: decls.Functions
) -> Checked:
    """Check ``root`` against the declared variables and functions; raises CheckError."""
    checker = _Checker(variables, functions)
    result = checker.check(root, {})
    return Checked(root=root, result=result, types=checker.out, variables=checker.used)
