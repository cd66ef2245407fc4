"""Merging applied values into live ones (structured-merge-diff's typed merge tests)."""

from __future__ import annotations

import json

import pytest

from pilothouse.api.fieldmanager import merge, types
from pilothouse.api.fieldmanager.types import Type


def _struct(**fields: Type) -> Type:
    out = Type("struct")
    out.is_map = True
    out.fields = dict(fields)
    return out


def _set_of(item: Type) -> Type:
    out = Type("set")
    out.is_list = True
    out.items = item
    out.list_atomic = False
    return out


def _keyed(item: Type, *keys: str) -> Type:
    out = _set_of(item)
    out.keys = tuple(sorted(keys))
    return out


GRAB_BAG = _struct(
    numeric=types.NUMERIC,
    string=types.STRING,
    bool=types.BOOLEAN,
    setStr=_set_of(types.STRING),
    setBool=_set_of(types.BOOLEAN),
    setNumeric=_set_of(types.NUMERIC),
)

# structured-merge-diff typed/merge_test.go, "struct grab bag".
GRAB_BAG_TRIPLETS = [
    ('{"numeric":1}', '{"numeric":3.14159}', '{"numeric":3.14159}'),
    ('{"numeric":3.14159}', '{"numeric":1}', '{"numeric":1}'),
    ('{"string":"aoeu"}', '{"bool":true}', '{"string":"aoeu","bool":true}'),
    ('{"setStr":["a","b","c"]}', '{"setStr":["a","b"]}', '{"setStr":["a","b","c"]}'),
    ('{"setStr":["a","b"]}', '{"setStr":["a","b","c"]}', '{"setStr":["a","b","c"]}'),
    ('{"setStr":["a","b","c"]}', '{"setStr":[]}', '{"setStr":["a","b","c"]}'),
    ('{"setStr":[]}', '{"setStr":["a","b","c"]}', '{"setStr":["a","b","c"]}'),
    ('{"setStr":["a","b"]}', '{"setStr":["b","a"]}', '{"setStr":["b","a"]}'),
    (
        '{"setStr":["a","b","c"]}',
        '{"setStr":["d","e","f"]}',
        '{"setStr":["a","b","c","d","e","f"]}',
    ),
    (
        '{"setStr":["a","b","c"]}',
        '{"setStr":["c","d","e","f"]}',
        '{"setStr":["a","b","c","d","e","f"]}',
    ),
    (
        '{"setStr":["a","b","c","g","f"]}',
        '{"setStr":["c","d","e","f"]}',
        '{"setStr":["a","b","c","g","d","e","f"]}',
    ),
    (
        '{"setStr":["a","b","c"]}',
        '{"setStr":["d","e","f","x","y","z"]}',
        '{"setStr":["a","b","c","d","e","f","x","y","z"]}',
    ),
    (
        '{"setStr":["c","d","e","f"]}',
        '{"setStr":["a","c","e"]}',
        '{"setStr":["a","c","d","e","f"]}',
    ),
    (
        '{"setStr":["a","b","c","x","y","z"]}',
        '{"setStr":["d","e","f"]}',
        '{"setStr":["a","b","c","x","y","z","d","e","f"]}',
    ),
    (
        '{"setStr":["a","b","c","x","y","z"]}',
        '{"setStr":["d","e","f","x","y","z"]}',
        '{"setStr":["a","b","c","d","e","f","x","y","z"]}',
    ),
    (
        '{"setStr":["c","a","g","f"]}',
        '{"setStr":["c","f","a","g"]}',
        '{"setStr":["c","f","a","g"]}',
    ),
    (
        '{"setStr":["a","b","c","d"]}',
        '{"setStr":["d","e","f","a"]}',
        '{"setStr":["b","c","d","e","f","a"]}',
    ),
    (
        '{"setStr":["c","d","e","f","g","h","i","j"]}',
        '{"setStr":["2","h","3","e","4","k","l"]}',
        '{"setStr":["c","d","f","g","2","h","i","j","3","e","4","k","l"]}',
    ),
    (
        '{"setStr":["a","b","c","d","e","f","g","h","i","j"]}',
        '{"setStr":["1","b","2","h","3","e","4","k","l"]}',
        '{"setStr":["a","1","b","c","d","f","g","2","h","i","j","3","e","4","k","l"]}',
    ),
    ('{"setStr":["a","b","b"]}', '{"setStr":["c"]}', '{"setStr":["a","b","b","c"]}'),
    ('{"setStr":["a","b","b"]}', '{"setStr":["b"]}', '{"setStr":["a","b"]}'),
    ('{"setStr":["a","b","b"]}', '{"setStr":["a"]}', '{"setStr":["a","b","b"]}'),
    (
        '{"setStr":["a","b","c","d","e","c"]}',
        '{"setStr":["1","b","2","e","d"]}',
        '{"setStr":["a","1","b","c","2","e","c","d"]}',
    ),
    (
        '{"setStr":["a","b","c","d","e","c"]}',
        '{"setStr":["1","b","2","c","e","d"]}',
        '{"setStr":["a","1","b","2","c","e","d"]}',
    ),
    (
        '{"setStr":["a","a","b","b"]}',
        '{"setStr":["b","c","d"]}',
        '{"setStr":["a","a","b","c","d"]}',
    ),
    ('{"setStr":["a","a","b","b"]}', '{"setStr":[]}', '{"setStr":["a","a","b","b"]}'),
    ('{"setBool":[true]}', '{"setBool":[false]}', '{"setBool":[true, false]}'),
    ('{"setNumeric":[1,2,3.14159]}', '{"setNumeric":[1,2,3]}', '{"setNumeric":[1,2,3.14159,3]}'),
    (
        '{"setStr":["c","a","g","f","c","a"]}',
        '{"setStr":["c","f","a","g"]}',
        '{"setStr":["c","f","a","g"]}',
    ),
    (
        '{"setNumeric":[1,2,3.14159,1,2]}',
        '{"setNumeric":[1,2,3]}',
        '{"setNumeric":[1,2,3.14159,3]}',
    ),
    ('{"setBool":[true,false,true]}', '{"setBool":[false]}', '{"setBool":[true,false,true]}'),
    ('{"setBool":[true,false,true]}', '{"setBool":[true]}', '{"setBool":[true, false]}'),
]


@pytest.mark.parametrize(("lhs", "rhs", "out"), GRAB_BAG_TRIPLETS)
def test_struct_grab_bag(lhs: str, rhs: str, out: str) -> None:
    assert merge.merge(json.loads(lhs), json.loads(rhs), GRAB_BAG) == json.loads(out)


INNER_MAP = _struct(inner=types.DEDUCED)


@pytest.mark.parametrize(
    ("lhs", "rhs", "out"),
    [
        ({}, {"inner": {}}, {"inner": {}}),
        ({}, {"inner": None}, {"inner": None}),
        ({"inner": None}, {"inner": {}}, {"inner": {}}),
        ({"inner": {}}, {"inner": None}, {"inner": None}),
        ({"inner": {}}, {"inner": {}}, {"inner": {}}),
        # A null applied over a granular map with content keeps the content.
        ({"inner": {"a": 1}}, {"inner": None}, {"inner": {"a": 1}}),
        ({"inner": {"a": 1}}, {"inner": {"b": 2}}, {"inner": {"a": 1, "b": 2}}),
    ],
)
def test_null_and_empty_maps(lhs: object, rhs: object, out: object) -> None:
    assert merge.merge(lhs, rhs, INNER_MAP) == out


ELEMENT = _struct(key=types.STRING, id=types.NUMERIC, value=types.STRING)
ROOT = _struct(list=_keyed(ELEMENT, "key", "id"), atomicList=Type("atomic"))
ROOT.fields["atomicList"].is_list = True
ROOT.fields["atomicList"].items = types.STRING


def test_associative_list_items_merge_by_key() -> None:
    live = {"list": [{"key": "a", "id": 1, "value": "x"}, {"key": "b", "id": 1, "value": "y"}]}
    applied = {"list": [{"key": "b", "id": 1, "value": "z"}, {"key": "a", "id": 2}]}
    assert merge.merge(live, applied, ROOT) == {
        "list": [
            {"key": "a", "id": 1, "value": "x"},
            {"key": "b", "id": 1, "value": "z"},
            {"key": "a", "id": 2},
        ]
    }


def test_atomic_lists_are_replaced() -> None:
    assert merge.merge({"atomicList": ["a", "b"]}, {"atomicList": ["c"]}, ROOT) == {
        "atomicList": ["c"]
    }


def test_inputs_are_not_changed() -> None:
    live = {"list": [{"key": "a", "id": 1, "value": "x"}]}
    applied = {"list": [{"key": "a", "id": 1, "value": "y"}]}
    before = json.dumps([live, applied])
    merge.merge(live, applied, ROOT)
    assert json.dumps([live, applied]) == before
