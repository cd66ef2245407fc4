"""Which parts of its variables an expression can read, so the rest need not be
converted for the engine.

``object.spec.replicas <= 5`` reads only ``spec.replicas`` of ``object``: handing the
engine ``{"spec": {"replicas": 3}}`` gives the same result, errors included (a field
the expression selects is kept when it is there and missing when it is not), at a
fraction of the cost of converting a whole object with its ``managedFields``. Only
chains of field selections are followed; anything else an expression does with a
value (compare it, iterate it, index it, pass it to a function) reads all of it.

A :data:`Paths` value is ``None`` for "all of it", else a mapping from the field
names selected to the paths read below each. Pure functions; no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pilothouse.api.cel import syntax

Paths = dict[str, "Paths"] | None


def _chain(node: syntax.Node) -> tuple[str, list[str]] | None:
    """``ident.a.b.c`` as ("ident", ["a", "b", "c"]); None for anything else."""
    fields: list[str] = []
    while isinstance(node, syntax.Select):
        fields.append(node.field)
        node = node.operand
    if isinstance(node, syntax.Ident):
        fields.reverse()
        return node.name, fields
    return None


def _add(found: dict[str, Paths], name: str, fields: list[str]) -> None:
    if name in found and found[name] is None:
        return
    if not fields:
        found[name] = None
        return
    here = found.setdefault(name, {})
    assert here is not None
    for i, f in enumerate(fields):
        if f in here and here[f] is None:
            return  # an ancestor is read whole already
        if i == len(fields) - 1:
            here[f] = None
        else:
            nxt = here.setdefault(f, {})
            assert nxt is not None
            here = nxt


def _children(node: syntax.Node) -> Iterable[syntax.Node]:
    if isinstance(node, syntax.Select):
        yield node.operand
    elif isinstance(node, syntax.Call):
        if node.target is not None:
            yield node.target
        yield from node.args
    elif isinstance(node, syntax.ListLit):
        yield from node.elements
    elif isinstance(node, syntax.MapLit):
        for key, value, _ in node.entries:
            yield key
            yield value
    elif isinstance(node, syntax.Comprehension):
        yield node.range
        yield from node.args


def read_paths(root: syntax.Node, names: Iterable[str]) -> dict[str, Paths]:
    """The paths ``root`` reads of each of ``names`` it reads at all."""
    wanted = frozenset(names)
    found: dict[str, Paths] = {}
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, syntax.Select | syntax.Ident):
            chain = _chain(node)
            if chain is not None and chain[0] in wanted:
                _add(found, chain[0], chain[1])
                continue
        stack.extend(_children(node))
    return found


def merge(a: Paths, b: Paths) -> Paths:
    """What either reads."""
    if a is None or b is None:
        return None
    out = dict(a)
    for key, sub in b.items():
        out[key] = merge(out[key], sub) if key in out else sub
    return out


def prune(value: Any, paths: Paths) -> Any:
    """``value`` with only what ``paths`` reads (the same value when it is all)."""
    if paths is None or not isinstance(value, Mapping):
        return value
    return {key: prune(value[key], sub) for key, sub in paths.items() if key in value}
