"""The one-walk path for writers with no managers before them equals the general path.

Objects are generated from the kinds' own schemas with a seeded random source:
present and absent fields, nulls and empties, values of the wrong shape,
associative lists with repeated or unnameable items, sets with repeats, unknown
fields. Every comparison is of the JSON text, so key order counts too.
"""

from __future__ import annotations

import copy
import json
import random
from typing import Any

import pytest

from pilothouse.api import fieldmanager as fm
from pilothouse.api.fieldmanager import creation, fieldpath, kinds, managed, typed, types, updater
from pilothouse.api.fieldmanager.types import Type

T0 = "2024-05-01T12:00:00Z"

KINDS = [
    ("", "v1", "Pod"),
    ("", "v1", "Service"),
    ("", "v1", "ConfigMap"),
    ("", "v1", "Node"),
    ("apps", "v1", "Deployment"),
    ("batch", "v1", "Job"),
    ("example.com", "v1", "Widget"),  # no schema: deduced
]

_NAMES = ["a", "b", "web", "x/y", "<&>", "", "ümlaut"]
_SCALARS: list[Any] = [None, 0, 1, 80, 80.0, 2.5, True, False, "", "s", "TCP", "UDP", "a"]


def _scalar(rng: random.Random) -> Any:
    return rng.choice(_SCALARS)


def _oddity(rng: random.Random) -> Any:
    return rng.choice([None, {}, [], "odd", 3, [1, 2], {"k": "v"}])


def _value(rng: random.Random, typ: Type, depth: int) -> Any:
    if rng.random() < 0.06:
        return _oddity(rng)
    if depth > 5:
        return _scalar(rng)
    if typ.is_map and typ.fields and not (typ.is_list and rng.random() < 0.5):
        return _struct(rng, typ, depth)
    if typ.is_map and not typ.is_list:
        elem = typ.elem or types.DEDUCED
        return {rng.choice(_NAMES): _value(rng, elem, depth + 1) for _ in range(rng.randint(0, 3))}
    if typ.is_list:
        return _list(rng, typ, depth)
    if typ is types.DEDUCED or (typ.scalar == "untyped" and typ.is_map):
        return _deduced(rng, depth)
    return _scalar(rng)


def _deduced(rng: random.Random, depth: int) -> Any:
    roll = rng.random()
    if depth > 4 or roll < 0.4:
        return _scalar(rng)
    if roll < 0.75:
        return {rng.choice(_NAMES): _deduced(rng, depth + 1) for _ in range(rng.randint(0, 3))}
    return [_deduced(rng, depth + 1) for _ in range(rng.randint(0, 3))]


def _struct(rng: random.Random, typ: Type, depth: int) -> dict[str, Any]:
    names = list(typ.fields)
    out: dict[str, Any] = {}
    for name in rng.sample(names, min(len(names), rng.randint(0, 6))):
        out[name] = _value(rng, typ.fields[name], depth + 1)
    if rng.random() < 0.1:
        out["unknownField"] = _deduced(rng, depth + 1)
    return out


def _list(rng: random.Random, typ: Type, depth: int) -> list[Any]:
    items = typ.items or types.UNTYPED_ATOMIC
    out: list[Any] = []
    for _ in range(rng.randint(0, 4)):
        if typ.keys:
            item = _value(rng, items, depth + 1) if rng.random() < 0.5 else {}
            if not isinstance(item, dict):
                out.append(item)
                continue
            for key in typ.keys:
                if rng.random() < 0.9:
                    item[key] = rng.choice(["a", "b", 80, "TCP"])
            out.append(item)
        elif not typ.list_atomic:
            out.append(rng.choice(["a", "b", 1, 2, None] if rng.random() < 0.1 else ["a", "b", 1]))
        else:
            out.append(_value(rng, items, depth + 1))
    return out


def _mutate(rng: random.Random, value: Any, typ: Type, depth: int = 0) -> Any:
    """Something like ``value`` with a few changes (for updates of unmanaged objects)."""
    roll = rng.random()
    if roll < 0.05:
        return _value(rng, typ, depth)
    if isinstance(value, dict):
        out = {}
        for key, child in value.items():
            if rng.random() < 0.15:
                continue
            out[key] = _mutate(rng, child, typ.field_type(key), depth + 1)
        if rng.random() < 0.2 and typ.fields:
            name = rng.choice(list(typ.fields))
            out[name] = _value(rng, typ.fields[name], depth + 1)
        return out
    if isinstance(value, list):
        out_list = [_mutate(rng, v, typ.items or types.UNTYPED_ATOMIC, depth + 1) for v in value]
        if out_list and rng.random() < 0.3:
            out_list.append(copy.deepcopy(rng.choice(out_list)))
        if out_list and rng.random() < 0.2:
            out_list.pop(rng.randrange(len(out_list)))
        return out_list
    return _scalar(rng) if roll < 0.3 else value


def _top(rng: random.Random, group: str, version: str, kind: str) -> dict[str, Any]:
    typ = types.for_kind(group, version, kind)
    obj: dict[str, Any] = {}
    body = _value(rng, typ, 0) if typ is not types.DEDUCED else _deduced(rng, 0)
    if isinstance(body, dict):
        obj.update(body)
    obj.update(apiVersion=f"{group}/{version}" if group else version, kind=kind)
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict) or rng.random() < 0.5:
        metadata = {}
    metadata.update(name="n", namespace="ns", uid="u", creationTimestamp=T0)
    if rng.random() < 0.3:
        metadata["generation"] = 1
    obj["metadata"] = metadata
    return obj


def _general(old: Any, new: Any, typ: Type, ignored: fieldpath.Set | None) -> fieldpath.Set:
    comparison = typed.compare(old, new, typ).filtered(ignored)
    return (comparison.modified | comparison.added) - kinds.STRIPPED


def _text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)  # keeps key order


@pytest.mark.parametrize("group,version,kind", KINDS)
@pytest.mark.parametrize("subresource", ["", "status"])
def test_changed_fields_equals_compare_and_set_algebra(
    group: str, version: str, kind: str, subresource: str
) -> None:
    rng = random.Random(f"{kind}/{subresource}")
    typ = types.for_kind(group, version, kind)
    ignored = kinds.reset_fields(group, kind, subresource, status_subresource=True)
    zero = kinds.zero_object(group, version, kind)
    for _ in range(300):
        new = _top(rng, group, version, kind)
        roll = rng.random()
        if roll < 0.4:
            old: Any = zero
        elif roll < 0.8:
            old = _mutate(rng, new, typ)
        else:
            old = _top(rng, group, version, kind)
        expected = _general(old, new, typ, ignored).to_fields()
        got = creation.changed_fields(
            old,
            new,
            typ,
            ignored=ignored.body if ignored else None,
            stripped=kinds.STRIPPED.body,
        )
        assert _text(got) == _text(expected), (old, new)


def _general_update(
    new: dict[str, Any], manager: str, api_version: str, subresource: str, kind: str
) -> dict[str, Any]:
    """update_managed_fields(live=None, …) as the updater's general path computes it."""
    group, version = types.split_api_version(api_version)
    status = kinds.has_status_subresource(group, version, kind)
    ctx = updater.Context(
        typ=types.for_kind(group, version, kind),
        api_version=api_version,
        subresource=subresource,
        now=T0,
        ignored=kinds.reset_fields(group, kind, subresource, status_subresource=status),
    )
    body = {k: v for k, v in new.items()}
    body["metadata"] = {k: v for k, v in new["metadata"].items() if k != "managedFields"}
    entries = updater.update(
        kinds.zero_object(group, version, kind),
        body,
        {},
        manager,
        ctx,
        keep_time=subresource == "scale",
    )
    if entries:
        body["metadata"]["managedFields"] = managed.encode(managed.cap_update_managers(entries))
    return body


@pytest.mark.parametrize("group,version,kind", KINDS)
def test_create_matches_the_general_updater(group: str, version: str, kind: str) -> None:
    rng = random.Random(kind)
    api_version = f"{group}/{version}" if group else version
    for i in range(200):
        new = _top(rng, group, version, kind)
        if i % 7 == 0:
            new["metadata"]["managedFields"] = []  # a reset: still nobody's
        manager = rng.choice(["kubectl-create", "", "Python"])
        subresource = rng.choice(["", "", "", "status", "scale"])
        before = copy.deepcopy(new)
        got = fm.update_managed_fields(
            live=None,
            new=new,
            manager=manager,
            api_version=api_version,
            subresource=subresource,
            now=T0,
        )
        assert new == before  # the input is left alone
        assert _text(got) == _text(_general_update(new, manager, api_version, subresource, kind))


def test_an_object_with_only_stripped_fields_gets_no_entry() -> None:
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "d"}}
    got = fm.update_managed_fields(live=None, new=obj, manager="m", api_version="v1", now=T0)
    assert "managedFields" not in got["metadata"]


def test_the_fast_path_is_what_creates_take(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the general path ran")

    monkeypatch.setattr(updater, "update", fail)
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}}
    got = fm.update_managed_fields(live=None, new=obj, manager="m", api_version="v1", now=T0)
    assert got["metadata"]["managedFields"] == [
        {
            "manager": "m",
            "operation": "Update",
            "apiVersion": "v1",
            "time": T0,
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:data": {".": {}, "f:k": {}}},
        }
    ]
