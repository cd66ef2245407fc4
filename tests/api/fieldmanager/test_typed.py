"""Walking objects with their types: field sets, comparisons, removal, validation."""

from __future__ import annotations

import json

import pytest

from pilothouse.api.fieldmanager import fieldpath, typed, types, validation
from pilothouse.api.fieldmanager.fieldpath import Set
from pilothouse.api.fieldmanager.types import Type

DEPLOYMENT = types.for_kind("apps", "v1", "Deployment")
POD = types.for_kind("", "v1", "Pod")


def _struct(**fields: Type) -> Type:
    out = Type("struct")
    out.is_map = True
    out.fields = dict(fields)
    return out


def _list(item: Type, *, atomic: bool = False, keys: tuple[str, ...] = ()) -> Type:
    out = Type("list")
    out.is_list = True
    out.items = item
    out.list_atomic = atomic
    out.keys = keys
    return out


def _atomic_map(elem: Type | None = None, **fields: Type) -> Type:
    out = _struct(**fields)
    out.elem = elem
    out.map_atomic = True
    return out


# structured-merge-diff typed/toset_test.go, "struct grab bag".
GRAB_BAG = _struct(
    numeric=types.NUMERIC,
    string=types.STRING,
    bool=types.BOOLEAN,
    setStr=_list(types.STRING),
    setBool=_list(types.BOOLEAN),
    setNumeric=_list(types.NUMERIC),
    color=_atomic_map(R=types.NUMERIC, G=types.NUMERIC, B=types.NUMERIC),
    arbitraryWavelengthColor=_atomic_map(types.NUMERIC),
    args=_list(_struct(key=types.STRING, value=types.STRING), atomic=True),
)


@pytest.mark.parametrize(
    ("obj", "paths"),
    [
        ({"numeric": 1}, [("f:numeric",)]),
        ({"bool": False}, [("f:bool",)]),
        (
            {"setStr": ["a", "b", "c", "a", "b", "c", "c"]},
            [("f:setStr", 'v:"a"'), ("f:setStr", 'v:"b"'), ("f:setStr", 'v:"c"')],
        ),
        ({"setBool": [True, False, True]}, [("f:setBool", "v:true"), ("f:setBool", "v:false")]),
        (
            {"setNumeric": [1, 2, 3, 3.14159]},
            [
                ("f:setNumeric", "v:1"),
                ("f:setNumeric", "v:2"),
                ("f:setNumeric", "v:3"),
                ("f:setNumeric", "v:3.14159"),
            ],
        ),
        ({"color": {}}, [("f:color",)]),
        ({"color": None}, [("f:color",)]),
        ({"color": {"R": 255, "G": 0, "B": 0}}, [("f:color",)]),
        ({"arbitraryWavelengthColor": {"IR": 255}}, [("f:arbitraryWavelengthColor",)]),
        ({"args": []}, [("f:args",)]),
        ({"args": None}, [("f:args",)]),
        ({"args": [{"key": "a", "value": "b"}]}, [("f:args",)]),
    ],
)
def test_to_field_set_grab_bag(obj: object, paths: list[tuple[str, ...]]) -> None:
    assert typed.to_field_set(obj, GRAB_BAG) == Set.of(*paths)


def test_to_field_set_of_an_applied_deployment() -> None:
    config = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "nginx",
                            "image": "nginx",
                            "args": ["-g", "daemon off;"],
                            "ports": [{"containerPort": 80}],
                            "env": [{"name": "A", "value": "1"}],
                            "resources": {},
                        }
                    ]
                },
            },
        },
    }
    assert typed.to_field_set(config, DEPLOYMENT).to_fields() == {
        "f:apiVersion": {},
        "f:kind": {},
        "f:metadata": {"f:labels": {"f:app": {}}, "f:name": {}},
        "f:spec": {
            "f:replicas": {},
            "f:selector": {},
            "f:template": {
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {
                    "f:containers": {
                        'k:{"name":"nginx"}': {
                            ".": {},
                            "f:args": {},
                            "f:env": {'k:{"name":"A"}': {".": {}, "f:name": {}, "f:value": {}}},
                            "f:image": {},
                            "f:name": {},
                            "f:ports": {
                                'k:{"containerPort":80,"protocol":"TCP"}': {
                                    ".": {},
                                    "f:containerPort": {},
                                }
                            },
                            "f:resources": {},
                        }
                    }
                },
            },
        },
    }


def test_to_field_set_of_deduced_objects_marks_every_key() -> None:
    widget = {"spec": {"size": 3, "tags": ["a"], "inner": {"x": 1}}}
    assert typed.to_field_set(widget, types.DEDUCED).to_fields() == {
        "f:spec": {
            ".": {},
            "f:inner": {".": {}, "f:x": {}},
            "f:size": {},
            "f:tags": {},
        }
    }


def test_finalizers_are_a_set_and_owner_references_atomic_items_keyed_by_uid() -> None:
    obj = {
        "metadata": {
            "finalizers": ["a/b", "c"],
            "ownerReferences": [{"uid": "u1", "name": "x", "kind": "ReplicaSet"}],
        }
    }
    assert typed.to_field_set(obj, POD).to_fields() == {
        "f:metadata": {
            "f:finalizers": {'v:"a/b"': {}, 'v:"c"': {}},
            # OwnerReference is an atomic struct: the item is one leaf.
            "f:ownerReferences": {'k:{"uid":"u1"}': {}},
        }
    }


def test_compare_added_modified_removed() -> None:
    live = {
        "metadata": {"labels": {"a": "1", "b": "2"}},
        "spec": {
            "replicas": 1,
            "template": {"spec": {"containers": [{"name": "c", "image": "x"}]}},
        },
    }
    new = {
        "metadata": {"labels": {"a": "1", "c": "3"}},
        "spec": {
            "replicas": 2,
            "paused": True,
            "template": {
                "spec": {
                    "containers": [
                        {"name": "c", "image": "x", "ports": [{"containerPort": 8080}]},
                        {"name": "d", "image": "y"},
                    ]
                }
            },
        },
    }
    result = typed.compare(live, new, DEPLOYMENT)
    containers = ("f:spec", "f:template", "f:spec", "f:containers")
    assert result.modified == Set.of(("f:spec", "f:replicas"))
    assert result.removed == Set.of(("f:metadata", "f:labels", "f:b"))
    assert result.added == Set.of(
        ("f:metadata", "f:labels", "f:c"),
        ("f:spec", "f:paused"),
        (*containers, 'k:{"name":"c"}', "f:ports"),
        (*containers, 'k:{"name":"c"}', "f:ports", 'k:{"containerPort":8080,"protocol":"TCP"}'),
        (
            *containers,
            'k:{"name":"c"}',
            "f:ports",
            'k:{"containerPort":8080,"protocol":"TCP"}',
            "f:containerPort",
        ),
        (*containers, 'k:{"name":"d"}'),
        (*containers, 'k:{"name":"d"}', "f:name"),
        (*containers, 'k:{"name":"d"}', "f:image"),
    )
    assert not typed.compare(new, new, DEPLOYMENT)


def test_compare_atomic_and_empty_values_are_leaves() -> None:
    live = {"spec": {"selector": {"matchLabels": {"a": "1"}}, "template": {"spec": {}}}}
    new = {"spec": {"selector": {"matchLabels": {"a": "2"}}, "template": {"spec": None}}}
    result = typed.compare(live, new, DEPLOYMENT)
    assert result.modified == Set.of(("f:spec", "f:selector"), ("f:spec", "f:template", "f:spec"))
    assert not result.added and not result.removed


def test_compare_duplicates_in_lists() -> None:
    env = ("f:spec", "f:containers", 'k:{"name":"c"}', "f:env")
    path_key = 'k:{"name":"PATH"}'

    def pod(*values: str) -> dict[str, object]:
        items = [{"name": "PATH", "value": v} for v in values]
        return {"spec": {"containers": [{"name": "c", "env": items}]}}

    assert typed.compare(pod("a", "b"), pod("a", "c"), POD).modified == Set.of((*env, path_key))
    assert not typed.compare(pod("a", "b"), pod("a", "b"), POD)
    result = typed.compare(pod("a", "b"), pod("a"), POD)
    assert result.removed == Set.of((*env, path_key))
    assert result.added == Set.of(
        (*env, path_key), (*env, path_key, "f:name"), (*env, path_key, "f:value")
    )
    result = typed.compare(pod("a"), pod("a", "b"), POD)
    assert result.added == Set.of((*env, path_key))
    assert result.removed == Set.of(
        (*env, path_key), (*env, path_key, "f:name"), (*env, path_key, "f:value")
    )


# structured-merge-diff fieldpath/set_test.go, TestEnsureNamedFieldsAreMembers.
NESTED = Type("type")
NESTED.is_map = True
NESTED.elem = NESTED
NESTED.fields = {
    "named": NESTED,
    "list": _list(NESTED, keys=("name",)),
    "value": types.NUMERIC,
}
NAME_A = 'k:{"name":"a"}'


@pytest.mark.parametrize(
    ("paths", "expected"),
    [
        (
            [("f:named", "f:named", "f:value")],
            [("f:named", "f:named", "f:value"), ("f:named", "f:named"), ("f:named",)],
        ),
        (
            [
                ("f:named", "f:a", "f:named", "f:value"),
                ("f:a", "f:named", "f:value"),
                ("f:a", "f:b", "f:value"),
            ],
            [
                ("f:named", "f:a", "f:named", "f:value"),
                ("f:named", "f:a", "f:named"),
                ("f:named",),
                ("f:a", "f:named", "f:value"),
                ("f:a", "f:named"),
                ("f:a", "f:b", "f:value"),
            ],
        ),
        (
            [("f:named", "f:list", NAME_A, "f:named", "f:a", "f:value")],
            [
                ("f:named", "f:list", NAME_A, "f:named", "f:a", "f:value"),
                ("f:named", "f:list", NAME_A, "f:named"),
                ("f:named", "f:list"),
                ("f:named",),
            ],
        ),
    ],
)
def test_ensure_named_fields(paths: list[tuple[str, ...]], expected: list[tuple[str, ...]]) -> None:
    assert typed.ensure_named_fields(Set.of(*paths), NESTED) == Set.of(*expected)


def test_remove_items() -> None:
    pod = {
        "metadata": {"labels": {"a": "1"}, "name": "p"},
        "spec": {
            "containers": [
                {"name": "c", "image": "x", "args": ["1"]},
                {"name": "d", "image": "y"},
            ]
        },
    }
    removed = typed.remove_items(
        pod,
        Set.of(
            ("f:metadata", "f:labels", "f:a"),
            ("f:spec", "f:containers", 'k:{"name":"d"}'),
            ("f:spec", "f:containers", 'k:{"name":"c"}', "f:args"),
        ),
        POD,
    )
    # The emptied labels map goes, as Go drops an empty omitempty map.
    assert removed == {
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "x"}]},
    }
    assert pod["spec"]["containers"][0]["args"] == ["1"]  # type: ignore[index]
    assert typed.remove_items(pod, Set(), POD) is pod


@pytest.mark.parametrize(
    ("config", "problems"),
    [
        (
            {"spec": {"containers": [{"name": "a"}, {"name": "a"}]}},
            ['.spec.containers: duplicate entries for key [name="a"]'],
        ),
        (
            {"spec": {"containers": [{"image": "a"}]}},
            [
                ".spec.containers: element 0: associative list with keys has an element "
                'that omits key field "name" (and doesn\'t have default value)'
            ],
        ),
        ({"spec": {"foo": 1}}, [".spec.foo: field not declared in schema"]),
        (
            {"spec": {"priority": "high"}},
            [".spec.priority: expected numeric (int or float), got string"],
        ),
        (
            {"spec": {"hostname": 3}},
            [".spec.hostname: expected string, got &value.valueUnstructured{Value:3}"],
        ),
        ({"spec": {"hostNetwork": "yes"}}, [".spec.hostNetwork: expected boolean, got &{yes}"]),
        ({"spec": {"containers": {"a": 1}}}, [".spec.containers: expected list, got &{map[a:1]}"]),
        (
            {"metadata": {"finalizers": [None]}},
            [
                ".metadata.finalizers: element 0: associative list without keys has an "
                "element that's an explicit null"
            ],
        ),
        (
            {
                "spec": {
                    "containers": [
                        {"name": "a", "ports": [{"containerPort": 80}, {"containerPort": 80}]}
                    ]
                }
            },
            [
                '.spec.containers[name="a"].ports: duplicate entries for key '
                '[containerPort=80,protocol="TCP"]'
            ],
        ),
        ({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80}]}]}}, []),
    ],
)
def test_validate(config: object, problems: list[str]) -> None:
    assert validation.validate(config, POD) == problems


def test_quantities_and_int_or_string_are_scalars() -> None:
    config = {
        "spec": {
            "containers": [
                {
                    "name": "a",
                    "resources": {"limits": {"cpu": "1", "memory": 1024}},
                    "livenessProbe": {"httpGet": {"port": "http"}},
                }
            ]
        }
    }
    assert validation.validate(config, POD) == []
    resources = ("f:spec", "f:containers", 'k:{"name":"a"}', "f:resources", "f:limits")
    fields = typed.to_field_set(config, POD)
    assert fields.has((*resources, "f:cpu")) and fields.has((*resources, "f:memory"))


def test_item_element_names() -> None:
    ports = DEPLOYMENT.fields["spec"].fields["template"].fields["spec"].fields["containers"]
    assert ports.items is not None
    container_ports = ports.items.fields["ports"]
    assert typed.item_element({"containerPort": 80}, container_ports) == (
        'k:{"containerPort":80,"protocol":"TCP"}'
    )
    assert typed.item_element({"name": 'we"ird<'}, ports) == 'k:{"name":"we\\"ird\\u003c"}'
    with pytest.raises(typed.ItemError):
        typed.item_element("x", ports)


def test_walks_never_change_their_inputs() -> None:
    live = {"spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "a"}]}}}}
    new = {"spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "b"}]}}}}
    before = json.dumps([live, new])
    typed.compare(live, new, DEPLOYMENT)
    typed.to_field_set(new, DEPLOYMENT)
    typed.remove_items(live, Set.of(("f:spec", "f:replicas")), DEPLOYMENT)
    assert json.dumps([live, new]) == before
    assert fieldpath.path_string(("f:spec",)) == ".spec"
