"""Kinds whose own validator checks ObjectMeta skip the generic create checks, and
answer exactly as if both had run."""

from __future__ import annotations

import copy
import itertools
from typing import Any

import pytest

from pilothouse.api import validation
from pilothouse.api.defaults import apply_defaults
from pilothouse.api.validation import _CREATE, _META_VALIDATED, generic_create, namespaced

Obj = dict[str, Any]

_CONTAINER = {"name": "c", "image": "busybox"}
_TEMPLATE = {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [_CONTAINER]}}
BASE: dict[tuple[str, str], tuple[str, Obj]] = {
    ("", "Pod"): ("v1", {"spec": {"containers": [_CONTAINER]}}),
    ("", "ConfigMap"): ("v1", {"data": {"a": "b"}}),
    ("", "Secret"): ("v1", {"type": "Opaque", "data": {"a": "YQ=="}}),
    ("", "Service"): ("v1", {"spec": {"ports": [{"port": 80}], "clusterIP": "10.43.0.9"}}),
    ("", "Namespace"): ("v1", {}),
    ("", "Node"): ("v1", {}),
    ("", "ReplicationController"): ("v1", {"spec": {"template": _TEMPLATE}}),
    ("apps", "Deployment"): (
        "v1",
        {"spec": {"selector": {"matchLabels": {"app": "a"}}, "template": _TEMPLATE}},
    ),
    ("apps", "ReplicaSet"): (
        "v1",
        {"spec": {"selector": {"matchLabels": {"app": "a"}}, "template": _TEMPLATE}},
    ),
    ("coordination.k8s.io", "Lease"): ("v1", {"spec": {"holderIdentity": "h"}}),
}

NAMES = ["ok", "a.b", "a-b", ".", "..", "a/b", "a%b", "A", "-a", "a-", "", "x" * 300]
NAMESPACES = ["default", "", "a/b", "a.b", "%"]
FINALIZERS = [[], ["kubernetes"], ["a/b"], ["plain"], ["orphan", "foregroundDeletion"], ["a%b"]]


def test_every_skipping_kind_has_a_case() -> None:
    assert set(BASE) == set(_META_VALIDATED)


def _variants(group: str, version: str, kind: str) -> list[Obj]:
    api_version, body = BASE[(group, kind)]
    out = []
    for name, generate, ns, finalizers in itertools.product(
        NAMES, ["", "gen-", "a/", "."], NAMESPACES, FINALIZERS
    ):
        obj = copy.deepcopy(body)
        obj["apiVersion"] = f"{group}/{api_version}" if group else api_version
        obj["kind"] = kind
        md: Obj = {"name": name, "finalizers": finalizers}
        if generate:
            md["generateName"] = generate
        if ns:
            md["namespace"] = ns
        obj["metadata"] = md
        apply_defaults(group, version, kind, obj)
        out.append(obj)
    return out


@pytest.mark.parametrize("group,kind", sorted(BASE))
def test_skipping_the_generic_checks_changes_no_answer(group: str, kind: str) -> None:
    version = "v1"
    own = _CREATE[(group, kind)]
    is_namespaced = namespaced(group, version, kind)
    passed = 0
    for obj in _variants(group, version, kind):
        expected = own(obj) or generic_create(obj, namespaced=is_namespaced)
        got = validation.validate_create(group, version, kind, obj)
        assert [(e.field, e.type, e.detail) for e in got] == [
            (e.field, e.type, e.detail) for e in expected
        ], obj["metadata"]
        passed += not got
    assert passed  # some variants are valid, so both paths really ran
