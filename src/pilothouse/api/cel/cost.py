"""A static cost estimate of a checked expression, after cel-go's cost estimator.

Upstream refuses, when a CRD is written, a rule whose worst case is too expensive:
``estimated rule cost exceeds budget by factor of 12.3x (try simplifying the rule, or
adding maxItems, maxProperties, and maxLength where arrays, maps, and strings are
declared)``. The estimate is an upper bound: every node costs about one unit, string
functions cost a tenth of a unit per character, and a comprehension costs its body
once per element. Sizes come from the schema (``maxItems``, ``maxProperties``,
``maxLength``); without them, from the largest request the server accepts (3 MiB)
divided by the smallest encoding of one element, as upstream derives them.

The figures follow cel-go's rules in shape, not to the unit: an expression upstream
accepts easily is accepted here, one it refuses by a wide margin is refused here.

No I/O here: this module is part of the bottom ``api`` layer.
"""

from __future__ import annotations

from pilothouse.api.cel import checker, syntax
from pilothouse.api.cel import types as t

MAX_REQUEST_SIZE_BYTES = 3 * 1024 * 1024
# Smallest JSON encodings: a list element ("", 0 plus a comma) and a map entry ("":0,).
_MIN_ELEMENT = 2
_MIN_ENTRY = 5
_STRING_FACTOR = 0.1
_LINEAR = frozenset(
    {
        "contains",
        "startsWith",
        "endsWith",
        "matches",
        "find",
        "findAll",
        "indexOf",
        "lastIndexOf",
        "replace",
        "split",
        "substring",
        "lowerAscii",
        "upperAscii",
        "trim",
        "join",
        "format",
        "string",
        "_+_",
        "_==_",
        "_!=_",
        "@in",
        "isSorted",
        "sum",
        "min",
        "max",
        "sets.contains",
        "sets.equivalent",
        "sets.intersects",
    }
)


def max_elements(typ: t.Type) -> int:
    """The most elements a list or map of this type can hold in one request."""
    if typ.max_elements is not None:
        return typ.max_elements
    if typ.name == "map":
        return MAX_REQUEST_SIZE_BYTES // _MIN_ENTRY
    return MAX_REQUEST_SIZE_BYTES // _MIN_ELEMENT


def max_length(typ: t.Type) -> int:
    if typ.max_length is not None:
        return typ.max_length
    if typ.name in ("list", "map"):
        return max_elements(typ)
    return MAX_REQUEST_SIZE_BYTES


class _Estimator:
    def __init__(self, checked: checker.Checked) -> None:
        self.checked = checked

    def cost(self, node: syntax.Node) -> float:
        if isinstance(node, syntax.Literal):
            return 0
        if isinstance(node, syntax.Ident):
            return 1
        if isinstance(node, syntax.Select):
            return self.cost(node.operand) + (0 if node.test_only else 1)
        if isinstance(node, syntax.ListLit):
            return 10 + sum(self.cost(e) for e in node.elements)
        if isinstance(node, syntax.MapLit):
            return 30 + sum(self.cost(k) + self.cost(v) for k, v, _ in node.entries)
        if isinstance(node, syntax.Comprehension):
            rng = self.checked.type_of(node.range)
            iterations = (
                max_elements(rng) if rng.name in ("list", "map") else max_elements(t.list_of(t.DYN))
            )
            body = sum(self.cost(a) for a in node.args)
            result = 0.0
            if node.macro in ("map", "filter"):
                result = iterations * 1.0  # building the result list
            return self.cost(node.range) + iterations * (body + 1) + result
        if isinstance(node, syntax.Call):
            total = sum(self.cost(a) for a in node.args)
            if node.target is not None:
                total += self.cost(node.target)
            if node.function in _LINEAR:
                sizes = [self.checked.type_of(a) for a in node.args]
                if node.target is not None:
                    sizes.append(self.checked.type_of(node.target))
                longest = max(
                    (max_length(s) for s in sizes if s.name in ("string", "bytes", "list", "map")),
                    default=1,
                )
                total += 1 + longest * _STRING_FACTOR
            else:
                total += 1
            return total
        return 1  # pragma: no cover


def estimate(checked: checker.Checked) -> int:
    """Upstream's estimated worst-case cost of one evaluation."""
    return int(_Estimator(checked).cost(checked.root))


def exceed_factor(cost: int, limit: int) -> str:
    """How upstream words ``cost`` over ``limit``: ``12.3x`` or ``more than 100x``."""
    factor = cost / limit
    if factor > 100:
        return "more than 100x"
    return f"{factor:.1f}x"
