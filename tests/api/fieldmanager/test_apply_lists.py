"""Server-side apply over lists and maps: associative, set, atomic, granular."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from pilothouse.api import fieldmanager as fm

Obj = dict[str, Any]
T0 = "2024-05-01T12:00:00Z"
T1 = "2024-05-01T12:00:01Z"
T2 = "2024-05-01T12:00:02Z"
T3 = "2024-05-01T12:00:03Z"
CONTAINERS = ("spec", "template", "spec", "containers")


def _apply(
    live: Obj | None, config: Obj, manager: str, *, force: bool = False, now: str = T0
) -> Obj:
    out = copy.deepcopy(
        fm.apply(
            live=live,
            config=config,
            manager=manager,
            api_version=config["apiVersion"],
            force=force,
            now=now,
        )
    )
    out["metadata"].setdefault("uid", "uid-1")
    return out


def _fields(obj: Obj, manager: str) -> Obj:
    return next(e for e in obj["metadata"]["managedFields"] if e["manager"] == manager)["fieldsV1"]


def _managers(obj: Obj) -> list[str]:
    return [e["manager"] for e in obj["metadata"].get("managedFields", [])]


def _deployment(*containers: Obj, **metadata: Any) -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", **metadata},
        "spec": {"template": {"spec": {"containers": list(containers)}}},
    }


def _containers(obj: Obj) -> list[Obj]:
    node: Any = obj
    for step in CONTAINERS:
        node = node[step]
    return node  # type: ignore[no-any-return]


def test_containers_merge_by_name_across_appliers() -> None:
    first = _apply(None, _deployment({"name": "app", "image": "app:1"}), "app-team")
    both = _apply(first, _deployment({"name": "sidecar", "image": "proxy:1"}), "mesh", now=T1)
    assert [c["name"] for c in _containers(both)] == ["app", "sidecar"]
    # The app team re-applies only its container: the sidecar stays.
    again = _apply(both, _deployment({"name": "app", "image": "app:2"}), "app-team", now=T2)
    assert [(c["name"], c["image"]) for c in _containers(again)] == [
        ("app", "app:2"),
        ("sidecar", "proxy:1"),
    ]
    # The mesh drops its sidecar: only that one goes.
    dropped = _apply(again, _deployment(), "mesh", now=T3)
    assert [c["name"] for c in _containers(dropped)] == ["app"]
    assert _managers(dropped) == ["app-team"]


def test_env_merges_by_name_within_a_shared_container() -> None:
    first = _apply(
        None,
        _deployment({"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}]}),
        "app-team",
    )
    second = _apply(
        first,
        _deployment({"name": "app", "env": [{"name": "B", "value": "2"}]}),
        "injector",
        now=T1,
    )
    assert _containers(second)[0]["env"] == [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "2"},
    ]
    assert _fields(second, "injector") == {
        "f:spec": {
            "f:template": {
                "f:spec": {
                    "f:containers": {
                        'k:{"name":"app"}': {
                            ".": {},
                            "f:env": {'k:{"name":"B"}': {".": {}, "f:name": {}, "f:value": {}}},
                            "f:name": {},
                        }
                    }
                }
            }
        }
    }
    with pytest.raises(fm.ApplyConflict) as caught:
        _apply(
            second,
            _deployment({"name": "app", "env": [{"name": "A", "value": "x"}]}),
            "injector",
            now=T2,
        )
    assert caught.value.conflicts == [
        ("app-team", '.spec.template.spec.containers[name="app"].env[name="A"].value')
    ]


def test_ports_are_keyed_by_port_and_protocol_with_tcp_by_default() -> None:
    tcp = _apply(
        None,
        _deployment(
            {"name": "dns", "image": "dns", "ports": [{"containerPort": 53, "name": "tcp"}]}
        ),
        "a",
    )
    both = _apply(
        tcp,
        _deployment(
            {"name": "dns", "ports": [{"containerPort": 53, "protocol": "UDP", "name": "udp"}]}
        ),
        "b",
        now=T1,
    )
    assert _containers(both)[0]["ports"] == [
        {"containerPort": 53, "name": "tcp"},
        {"containerPort": 53, "protocol": "UDP", "name": "udp"},
    ]
    ports = _fields(both, "a")["f:spec"]["f:template"]["f:spec"]["f:containers"][
        'k:{"name":"dns"}'
    ]["f:ports"]
    assert list(ports) == ['k:{"containerPort":53,"protocol":"TCP"}']


def test_applying_a_listed_key_with_another_value_conflicts_once() -> None:
    # test/integration/apiserver/apply TestDefaultMissingKeys.
    first = _apply(
        None,
        _deployment(
            {"name": "nginx", "image": "nginx", "ports": [{"name": "foo", "containerPort": 80}]}
        ),
        "test_applier",
    )
    with pytest.raises(fm.ApplyConflict) as caught:
        _apply(
            first,
            _deployment(
                {
                    "name": "nginx",
                    "image": "nginx",
                    "ports": [{"name": "bar", "containerPort": 80, "protocol": "TCP"}],
                }
            ),
            "test_applier_conflict",
            now=T1,
        )
    assert len(caught.value.status().details["causes"]) == 1  # type: ignore[index]


def test_finalizers_are_a_set() -> None:
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "finalizers": ["a.io/x"]},
    }
    first = _apply(None, cm, "a")
    other = copy.deepcopy(cm)
    other["metadata"]["finalizers"] = ["b.io/y"]
    both = _apply(first, other, "b", now=T1)
    assert both["metadata"]["finalizers"] == ["a.io/x", "b.io/y"]
    assert _fields(both, "b") == {"f:metadata": {"f:finalizers": {'v:"b.io/y"': {}}}}
    # Both may apply the same finalizer: it is shared, no conflict.
    shared = copy.deepcopy(cm)
    shared["metadata"]["finalizers"] = ["a.io/x", "b.io/y"]
    both = _apply(both, shared, "b", now=T2)
    dropped = copy.deepcopy(cm)
    dropped["metadata"]["finalizers"] = []
    after = _apply(both, dropped, "a", now=T3)
    # "a" let go of a.io/x, but "b" applies it too, so it stays.
    assert after["metadata"]["finalizers"] == ["a.io/x", "b.io/y"]
    after = _apply(after, other, "b", now=T3)
    # Now nobody applies a.io/x any more.
    assert after["metadata"]["finalizers"] == ["b.io/y"]


def test_atomic_lists_belong_to_one_manager() -> None:
    first = _apply(
        None, _deployment({"name": "app", "image": "app", "args": ["--a"], "command": ["run"]}), "a"
    )
    with pytest.raises(fm.ApplyConflict) as caught:
        _apply(first, _deployment({"name": "app", "args": ["--b"]}), "b", now=T1)
    assert caught.value.conflicts == [("a", '.spec.template.spec.containers[name="app"].args')]
    forced = _apply(first, _deployment({"name": "app", "args": ["--b"]}), "b", force=True, now=T1)
    assert _containers(forced)[0]["args"] == ["--b"]
    container = _fields(forced, "a")["f:spec"]["f:template"]["f:spec"]["f:containers"][
        'k:{"name":"app"}'
    ]
    assert "f:args" not in container and "f:command" in container
    # The same atomic value is shared.
    same = _apply(first, _deployment({"name": "app", "command": ["run"]}), "c", now=T1)
    assert _containers(same)[0]["command"] == ["run"]


def test_labels_are_granular() -> None:
    first = _apply(None, _deployment(labels={"app": "web"}), "a")
    both = _apply(first, _deployment(labels={"team": "x"}), "b", now=T1)
    assert both["metadata"]["labels"] == {"app": "web", "team": "x"}
    with pytest.raises(fm.ApplyConflict):
        _apply(both, _deployment(labels={"app": "other"}), "b", now=T2)
    after = _apply(both, _deployment(labels={}), "b", now=T2)
    assert after["metadata"]["labels"] == {"app": "web"}
    gone = _apply(after, _deployment(), "a", now=T3)
    assert "labels" not in gone["metadata"]


def test_service_ports_are_keyed_by_port_and_protocol() -> None:
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "s"},
        "spec": {"ports": [{"port": 8080, "protocol": "UDP"}]},
    }
    created = _apply(None, svc, "apply_test")
    assert _fields(created, "apply_test") == {
        "f:spec": {
            "f:ports": {
                'k:{"port":8080,"protocol":"UDP"}': {".": {}, "f:port": {}, "f:protocol": {}}
            }
        }
    }
    # Re-applying with another manager shares everything; the object did not
    # change, so the new entry has no time and sorts first (as upstream).
    again = _apply(created, svc, "apply_test_2", now=T1)
    assert _managers(again) == ["apply_test_2", "apply_test"]
    assert _fields(again, "apply_test_2") == _fields(again, "apply_test")


def _daemonset(ports: list[Obj], env: list[Obj]) -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "example-daemonset", "labels": {"app": "example"}},
        "spec": {
            "selector": {"matchLabels": {"app": "example"}},
            "template": {
                "metadata": {"labels": {"app": "example"}},
                "spec": {
                    "containers": [{"name": "nginx", "image": "nginx", "ports": ports, "env": env}]
                },
            },
        },
    }


def test_duplicates_in_associative_lists() -> None:
    # test/integration/apiserver/apply TestDuplicatesInAssociativeLists, on the
    # fields our objects carry (upstream's typed objects add defaults around them).
    created = fm.update_managed_fields(
        live=None,
        new=_daemonset(
            [
                {"name": "port0", "containerPort": 1, "protocol": "TCP"},
                {"name": "port1", "containerPort": 80, "protocol": "TCP"},
                {"name": "port2", "containerPort": 80, "protocol": "TCP"},
            ],
            [
                {"name": "ENV0", "value": "/env0value"},
                {"name": "PATH", "value": "/bin"},
                {"name": "PATH", "value": "$PATH:/usr/bin"},
            ],
        ),
        manager="create",
        api_version="apps/v1",
        now=T0,
    )
    created["metadata"]["uid"] = "uid-1"
    container = _fields(created, "create")["f:spec"]["f:template"]["f:spec"]["f:containers"][
        'k:{"name":"nginx"}'
    ]
    assert container["f:env"] == {
        ".": {},
        'k:{"name":"ENV0"}': {".": {}, "f:name": {}, "f:value": {}},
        'k:{"name":"PATH"}': {},
    }
    assert container["f:ports"] == {
        ".": {},
        'k:{"containerPort":1,"protocol":"TCP"}': {
            ".": {},
            "f:containerPort": {},
            "f:name": {},
            "f:protocol": {},
        },
        'k:{"containerPort":80,"protocol":"TCP"}': {},
    }
    # An unrelated apply is strictly additive.
    applied = _apply(
        created,
        _daemonset(
            [{"name": "port3", "containerPort": 443}], [{"name": "HOME", "value": "/usr/home"}]
        ),
        "apply",
        now=T1,
    )
    assert len(_containers(applied)[0]["env"]) == 4
    assert len(_containers(applied)[0]["ports"]) == 4
    # A forced apply replaces the duplicated items by one and drops what it let go.
    replaced = _apply(
        applied,
        _daemonset(
            [{"name": "port80", "containerPort": 80}], [{"name": "PATH", "value": "/bin:/usr/bin"}]
        ),
        "apply",
        force=True,
        now=T2,
    )
    assert _containers(replaced)[0]["env"] == [
        {"name": "ENV0", "value": "/env0value"},
        {"name": "PATH", "value": "/bin:/usr/bin"},
    ]
    assert [p["name"] for p in _containers(replaced)[0]["ports"]] == ["port0", "port80"]
    apply_container = _fields(replaced, "apply")["f:spec"]["f:template"]["f:spec"]["f:containers"][
        'k:{"name":"nginx"}'
    ]
    assert apply_container["f:env"] == {'k:{"name":"PATH"}': {".": {}, "f:name": {}, "f:value": {}}}
    assert apply_container["f:ports"] == {
        'k:{"containerPort":80,"protocol":"TCP"}': {".": {}, "f:containerPort": {}, "f:name": {}}
    }
    create_container = _fields(replaced, "create")["f:spec"]["f:template"]["f:spec"][
        "f:containers"
    ]['k:{"name":"nginx"}']
    assert set(create_container["f:env"]) == {".", 'k:{"name":"ENV0"}'}
    assert set(create_container["f:ports"]) == {".", 'k:{"containerPort":1,"protocol":"TCP"}'}


def _widget(spec: Obj) -> Obj:
    return {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w"},
        "spec": spec,
    }


def test_custom_kinds_are_deduced_maps_granular_lists_atomic() -> None:
    first = _apply(None, _widget({"size": 1, "tags": ["a"], "nested": {"x": 1}}), "a")
    assert _fields(first, "a") == {
        "f:spec": {".": {}, "f:nested": {".": {}, "f:x": {}}, "f:size": {}, "f:tags": {}}
    }
    both = _apply(first, _widget({"color": "red", "nested": {"y": 2}}), "b", now=T1)
    assert both["spec"] == {"size": 1, "tags": ["a"], "nested": {"x": 1, "y": 2}, "color": "red"}
    with pytest.raises(fm.ApplyConflict) as caught:
        _apply(both, _widget({"tags": ["a", "b"]}), "b", now=T2)
    assert caught.value.conflicts == [("a", ".spec.tags")]


def test_custom_kinds_with_a_status_subresource_do_not_own_status() -> None:
    config = _widget({"size": 1})
    config["status"] = {"ready": True}
    plain = fm.apply(
        live=None, config=config, manager="a", api_version="example.com/v1", force=False, now=T0
    )
    assert "f:status" in _fields(plain, "a")
    with_status = fm.apply(
        live=None,
        config=config,
        manager="a",
        api_version="example.com/v1",
        force=False,
        now=T0,
        status_subresource=True,
    )
    assert "f:status" not in _fields(with_status, "a")
