"""apps/v1 validation: Deployments, ReplicaSets, StatefulSets, DaemonSets, ControllerRevisions."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from pilothouse.api import errors
from pilothouse.api.defaults import apply_defaults
from pilothouse.api.validation import validate_create, validate_update

Obj = dict[str, Any]


def workload(kind: str, **spec: Any) -> Obj:
    obj: Obj = {
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}]},
            },
            **spec,
        },
    }
    apply_defaults("apps", "v1", kind, obj)
    return obj


def codes(errs: list[errors.FieldError]) -> list[tuple[str, str]]:
    return [(e.field, e.type) for e in errs]


@pytest.mark.parametrize("kind", ["Deployment", "ReplicaSet", "StatefulSet", "DaemonSet"])
def test_valid_workloads(kind: str) -> None:
    assert validate_create("apps", "v1", kind, workload(kind)) == []


def test_selector_mismatch_message() -> None:
    obj = workload("Deployment")
    obj["spec"]["template"]["metadata"]["labels"] = {"app": "x"}
    assert [e.message() for e in validate_create("apps", "v1", "Deployment", obj)] == [
        'spec.template.metadata.labels: Invalid value: map[string]string{"app":"x"}: '
        "`selector` does not match template `labels`"
    ]


def test_missing_selector_reports_both_problems() -> None:
    obj = workload("Deployment")
    del obj["spec"]["selector"]
    assert codes(validate_create("apps", "v1", "Deployment", obj)) == [
        ("spec.selector", errors.REQUIRED),
        ("spec.template.metadata.labels", errors.INVALID_VALUE),
    ]


DEPLOYMENT_CASES: list[tuple[str, Callable[[Obj], Any], str, str]] = [
    (
        "negative replicas",
        lambda d: d["spec"].update(replicas=-1),
        "spec.replicas",
        errors.INVALID_VALUE,
    ),
    (
        "empty selector",
        lambda d: d["spec"].update(selector={}),
        "spec.selector",
        errors.INVALID_VALUE,
    ),
    (
        "bad selector operator",
        lambda d: d["spec"].update(
            selector={"matchExpressions": [{"key": "app", "operator": "Like"}]}
        ),
        "spec.selector.matchExpressions[0].operator",
        errors.INVALID_VALUE,
    ),
    (
        "both zero",
        lambda d: d["spec"]["strategy"]["rollingUpdate"].update(maxSurge=0, maxUnavailable=0),
        "spec.strategy.rollingUpdate.maxUnavailable",
        errors.INVALID_VALUE,
    ),
    (
        "over 100%",
        lambda d: d["spec"]["strategy"]["rollingUpdate"].update(maxUnavailable="110%"),
        "spec.strategy.rollingUpdate.maxUnavailable",
        errors.INVALID_VALUE,
    ),
    (
        "bad percent",
        lambda d: d["spec"]["strategy"]["rollingUpdate"].update(maxSurge="25x"),
        "spec.strategy.rollingUpdate.maxSurge",
        errors.INVALID_VALUE,
    ),
    (
        "negative surge",
        lambda d: d["spec"]["strategy"]["rollingUpdate"].update(maxSurge=-1),
        "spec.strategy.rollingUpdate.maxSurge",
        errors.INVALID_VALUE,
    ),
    (
        "recreate with rolling update",
        lambda d: d["spec"]["strategy"].update(type="Recreate"),
        "spec.strategy.rollingUpdate",
        errors.FIELD_FORBIDDEN,
    ),
    (
        "bad strategy",
        lambda d: d["spec"]["strategy"].update(type="BlueGreen"),
        "spec.strategy",
        errors.NOT_SUPPORTED,
    ),
    (
        "restart Never",
        lambda d: d["spec"]["template"]["spec"].update(restartPolicy="Never"),
        "spec.template.spec.restartPolicy",
        errors.NOT_SUPPORTED,
    ),
    (
        "active deadline",
        lambda d: d["spec"]["template"]["spec"].update(activeDeadlineSeconds=5),
        "spec.template.spec.activeDeadlineSeconds",
        errors.FIELD_FORBIDDEN,
    ),
    (
        "deadline below min ready",
        lambda d: d["spec"].update(minReadySeconds=600),
        "spec.progressDeadlineSeconds",
        errors.INVALID_VALUE,
    ),
    (
        "negative history",
        lambda d: d["spec"].update(revisionHistoryLimit=-1),
        "spec.revisionHistoryLimit",
        errors.INVALID_VALUE,
    ),
    (
        "template container",
        lambda d: d["spec"]["template"]["spec"]["containers"][0].pop("image"),
        "spec.template.spec.containers[0].image",
        errors.REQUIRED,
    ),
]


@pytest.mark.parametrize(
    ("name", "mutate", "field", "kind"), DEPLOYMENT_CASES, ids=[c[0] for c in DEPLOYMENT_CASES]
)
def test_invalid_deployments(
    name: str, mutate: Callable[[Obj], Any], field: str, kind: str
) -> None:
    obj = workload("Deployment")
    mutate(obj)
    assert (field, kind) in codes(validate_create("apps", "v1", "Deployment", obj))


def test_rolling_update_messages() -> None:
    obj = workload("Deployment")
    obj["spec"]["strategy"]["rollingUpdate"].update(maxUnavailable="110%")
    (error,) = validate_create("apps", "v1", "Deployment", obj)
    assert error.message() == (
        "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: "
        'intstr.IntOrString{Type:1, IntVal:0, StrVal:"110%"}: must not be greater than 100%'
    )


@pytest.mark.parametrize("kind", ["Deployment", "ReplicaSet", "DaemonSet"])
def test_selector_is_immutable(kind: str) -> None:
    old = workload(kind)
    new = copy.deepcopy(old)
    new["spec"]["selector"]["matchLabels"]["tier"] = "front"
    new["spec"]["template"]["metadata"]["labels"]["tier"] = "front"
    errs = validate_update("apps", "v1", kind, new, old)
    assert codes(errs) == [("spec.selector", errors.INVALID_VALUE)]
    assert errs[0].message().endswith(": field is immutable")


def test_deployment_template_update_allowed() -> None:
    old = workload("Deployment")
    new = copy.deepcopy(old)
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.26"
    new["spec"]["replicas"] = 5
    assert validate_update("apps", "v1", "Deployment", new, old) == []


def test_replica_set_rules() -> None:
    obj = workload("ReplicaSet", minReadySeconds=-1)
    assert ("spec.minReadySeconds", errors.INVALID_VALUE) in codes(
        validate_create("apps", "v1", "ReplicaSet", obj)
    )


def test_stateful_set_rules() -> None:
    dotted = workload("StatefulSet")
    dotted["metadata"]["name"] = "web.v1"
    (error,) = validate_create("apps", "v1", "StatefulSet", dotted)
    assert error.message() == 'metadata.name: Invalid value: "web.v1": must not contain dots'
    policy = workload("StatefulSet", podManagementPolicy="Random")
    assert ("spec.podManagementPolicy", errors.INVALID_VALUE) in codes(
        validate_create("apps", "v1", "StatefulSet", policy)
    )
    partition = workload("StatefulSet")
    partition["spec"]["updateStrategy"]["rollingUpdate"]["partition"] = -1
    assert ("spec.updateStrategy.rollingUpdate.partition", errors.INVALID_VALUE) in codes(
        validate_create("apps", "v1", "StatefulSet", partition)
    )
    on_delete = workload(
        "StatefulSet", updateStrategy={"type": "OnDelete", "rollingUpdate": {"partition": 0}}
    )
    assert ("spec.updateStrategy.rollingUpdate", errors.INVALID_VALUE) in codes(
        validate_create("apps", "v1", "StatefulSet", on_delete)
    )
    retention = workload(
        "StatefulSet",
        persistentVolumeClaimRetentionPolicy={"whenDeleted": "Keep", "whenScaled": "Retain"},
    )
    assert ("spec.persistentVolumeClaimRetentionPolicy.whenDeleted", errors.NOT_SUPPORTED) in codes(
        validate_create("apps", "v1", "StatefulSet", retention)
    )


def test_stateful_set_update_rules() -> None:
    old = workload("StatefulSet", serviceName="web")
    new = copy.deepcopy(old)
    new["spec"]["replicas"] = 3
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:2"
    assert validate_update("apps", "v1", "StatefulSet", new, old) == []
    new["spec"]["serviceName"] = "other"
    errs = validate_update("apps", "v1", "StatefulSet", new, old)
    assert codes(errs) == [("spec", errors.FIELD_FORBIDDEN)]
    assert (
        "updates to statefulset spec for fields other than 'replicas', 'ordinals'"
        in errs[0].message()
    )


def test_daemon_set_rules() -> None:
    both = workload("DaemonSet")
    both["spec"]["updateStrategy"]["rollingUpdate"].update(maxSurge=1, maxUnavailable=1)
    assert codes(validate_create("apps", "v1", "DaemonSet", both)) == [
        ("spec.updateStrategy.rollingUpdate.maxSurge", errors.INVALID_VALUE)
    ]
    neither = workload("DaemonSet")
    neither["spec"]["updateStrategy"]["rollingUpdate"].update(maxSurge=0, maxUnavailable=0)
    assert codes(validate_create("apps", "v1", "DaemonSet", neither)) == [
        ("spec.updateStrategy.rollingUpdate.maxUnavailable", errors.REQUIRED)
    ]
    bad_type = workload("DaemonSet", updateStrategy={"type": "Surge"})
    assert ("spec.updateStrategy", errors.NOT_SUPPORTED) in codes(
        validate_create("apps", "v1", "DaemonSet", bad_type)
    )


def test_controller_revisions() -> None:
    revision: Obj = {
        "metadata": {"name": "web-1", "namespace": "default"},
        "data": {"spec": {}},
        "revision": 1,
    }
    assert validate_create("apps", "v1", "ControllerRevision", revision) == []
    no_data = {**revision, "data": None, "revision": -1}
    assert codes(validate_create("apps", "v1", "ControllerRevision", no_data)) == [
        ("data", errors.REQUIRED),
        ("revision", errors.INVALID_VALUE),
    ]
    changed = {**revision, "data": {"spec": {"x": 1}}}
    assert ("data", errors.INVALID_VALUE) in codes(
        validate_update("apps", "v1", "ControllerRevision", changed, revision)
    )
