"""Pod validation, create and update (cases after upstream's validation_test.go)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from pilothouse.api import errors
from pilothouse.api.defaults import apply_defaults
from pilothouse.api.validation import validate_create, validate_update

Obj = dict[str, Any]


def valid_pod() -> Obj:
    pod: Obj = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "volumes": [{"name": "data", "emptyDir": {}}],
            "initContainers": [{"name": "init", "image": "busybox:1.36", "command": ["true"]}],
            "containers": [
                {
                    "name": "app",
                    "image": "nginx:1.25",
                    "ports": [{"name": "http", "containerPort": 80}],
                    "env": [{"name": "MODE", "value": "prod"}],
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                    "resources": {
                        "requests": {"cpu": "100m"},
                        "limits": {"cpu": "1", "memory": "64Mi"},
                    },
                    "readinessProbe": {"tcpSocket": {"port": "http"}},
                }
            ],
        },
    }
    apply_defaults("", "v1", "Pod", pod)
    return pod


def container(pod: Obj) -> Obj:
    return pod["spec"]["containers"][0]  # type: ignore[no-any-return]


def codes(errs: list[errors.FieldError]) -> list[tuple[str, str]]:
    return [(e.field, e.type) for e in errs]


def test_valid_pod() -> None:
    assert validate_create("", "v1", "Pod", valid_pod()) == []


CASES: list[tuple[str, Callable[[Obj], Any], str, str]] = [
    (
        "bad name",
        lambda p: p["metadata"].update(name="Foo_Bar"),
        "metadata.name",
        errors.INVALID_VALUE,
    ),
    ("no name", lambda p: p["metadata"].pop("name"), "metadata.name", errors.REQUIRED),
    (
        "no namespace",
        lambda p: p["metadata"].pop("namespace"),
        "metadata.namespace",
        errors.REQUIRED,
    ),
    (
        "bad label",
        lambda p: p["metadata"].update(labels={"a b": "x"}),
        "metadata.labels",
        errors.INVALID_VALUE,
    ),
    (
        "bad owner",
        lambda p: p["metadata"].update(
            ownerReferences=[{"apiVersion": "v1", "kind": "Pod", "name": "x"}]
        ),
        "metadata.ownerReferences.uid",
        errors.INVALID_VALUE,
    ),
    (
        "bad finalizer",
        lambda p: p["metadata"].update(finalizers=["foo"]),
        "metadata.finalizers[0]",
        errors.INVALID_VALUE,
    ),
    (
        "no containers",
        lambda p: p["spec"].update(containers=[]),
        "spec.containers",
        errors.REQUIRED,
    ),
    (
        "bad container name",
        lambda p: container(p).update(name="Bad_Name"),
        "spec.containers[0].name",
        errors.INVALID_VALUE,
    ),
    ("no image", lambda p: container(p).pop("image"), "spec.containers[0].image", errors.REQUIRED),
    (
        "image whitespace",
        lambda p: container(p).update(image=" nginx"),
        "spec.containers[0].image",
        errors.INVALID_VALUE,
    ),
    (
        "duplicate with init",
        lambda p: container(p).update(name="init"),
        "spec.initContainers[0].name",
        errors.DUPLICATE,
    ),
    (
        "port zero",
        lambda p: container(p)["ports"][0].update(containerPort=0),
        "spec.containers[0].ports[0].containerPort",
        errors.REQUIRED,
    ),
    (
        "port too big",
        lambda p: container(p)["ports"][0].update(containerPort=70000),
        "spec.containers[0].ports[0].containerPort",
        errors.INVALID_VALUE,
    ),
    (
        "port name too long",
        lambda p: container(p)["ports"][0].update(name="a-very-long-port-name"),
        "spec.containers[0].ports[0].name",
        errors.INVALID_VALUE,
    ),
    (
        "duplicate port name",
        lambda p: container(p)["ports"].append(
            {"name": "http", "containerPort": 81, "protocol": "TCP"}
        ),
        "spec.containers[0].ports[1].name",
        errors.DUPLICATE,
    ),
    (
        "bad protocol",
        lambda p: container(p)["ports"][0].update(protocol="HTTP"),
        "spec.containers[0].ports[0].protocol",
        errors.NOT_SUPPORTED,
    ),
    (
        "env name with =",
        lambda p: container(p)["env"].append({"name": "A=B"}),
        "spec.containers[0].env[1].name",
        errors.INVALID_VALUE,
    ),
    (
        "env without name",
        lambda p: container(p)["env"].append({"value": "x"}),
        "spec.containers[0].env[1].name",
        errors.REQUIRED,
    ),
    (
        "env value and valueFrom",
        lambda p: container(p)["env"].append(
            {
                "name": "X",
                "value": "v",
                "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}},
            }
        ),
        "spec.containers[0].env[1].valueFrom",
        errors.INVALID_VALUE,
    ),
    (
        "bad downward field",
        lambda p: container(p)["env"].append(
            {
                "name": "X",
                "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "spec.restartPolicy"}},
            }
        ),
        "spec.containers[0].env[1].valueFrom.fieldRef.fieldPath",
        errors.NOT_SUPPORTED,
    ),
    (
        "mount of missing volume",
        lambda p: container(p)["volumeMounts"].append({"name": "nope", "mountPath": "/x"}),
        "spec.containers[0].volumeMounts[1].name",
        errors.FIELD_NOT_FOUND,
    ),
    (
        "duplicate mount path",
        lambda p: container(p)["volumeMounts"].append({"name": "data", "mountPath": "/data"}),
        "spec.containers[0].volumeMounts[1].mountPath",
        errors.INVALID_VALUE,
    ),
    (
        "duplicate volume",
        lambda p: p["spec"]["volumes"].append({"name": "data", "emptyDir": {}}),
        "spec.volumes[1].name",
        errors.DUPLICATE,
    ),
    (
        "two volume sources",
        lambda p: p["spec"]["volumes"][0].update(hostPath={"path": "/x", "type": ""}),
        "spec.volumes[0].hostPath",
        errors.FIELD_FORBIDDEN,
    ),
    (
        "no volume source",
        lambda p: p["spec"]["volumes"][0].pop("emptyDir"),
        "spec.volumes[0]",
        errors.REQUIRED,
    ),
    (
        "bad volume name",
        lambda p: p["spec"]["volumes"].append({"name": "A", "emptyDir": {}}),
        "spec.volumes[1].name",
        errors.INVALID_VALUE,
    ),
    (
        "configMap without name",
        lambda p: p["spec"]["volumes"].append({"name": "c", "configMap": {"defaultMode": 420}}),
        "spec.volumes[1].configMap.name",
        errors.REQUIRED,
    ),
    (
        "secret bad mode",
        lambda p: p["spec"]["volumes"].append(
            {"name": "s", "secret": {"secretName": "s", "defaultMode": 1000}}
        ),
        "spec.volumes[1].secret.defaultMode",
        errors.INVALID_VALUE,
    ),
    (
        "hostPath bad type",
        lambda p: p["spec"]["volumes"].append(
            {"name": "h", "hostPath": {"path": "/x", "type": "Dir"}}
        ),
        "spec.volumes[1].hostPath.type",
        errors.NOT_SUPPORTED,
    ),
    (
        "requests above limits",
        lambda p: container(p)["resources"]["requests"].update(cpu="2"),
        "spec.containers[0].resources.requests",
        errors.INVALID_VALUE,
    ),
    (
        "bad quantity",
        lambda p: container(p)["resources"]["limits"].update(memory="lots"),
        "spec.containers[0].resources.limits[memory]",
        errors.INVALID_VALUE,
    ),
    (
        "negative quantity",
        lambda p: container(p)["resources"]["requests"].update(cpu="-1"),
        "spec.containers[0].resources.requests[cpu]",
        errors.INVALID_VALUE,
    ),
    (
        "unknown resource",
        lambda p: container(p)["resources"]["limits"].update(gpus="1"),
        "spec.containers[0].resources.limits[gpus]",
        errors.INVALID_VALUE,
    ),
    (
        "bad restartPolicy",
        lambda p: p["spec"].update(restartPolicy="Sometimes"),
        "spec.restartPolicy",
        errors.NOT_SUPPORTED,
    ),
    (
        "bad dnsPolicy",
        lambda p: p["spec"].update(dnsPolicy="Cluster"),
        "spec.dnsPolicy",
        errors.NOT_SUPPORTED,
    ),
    (
        "no grace period",
        lambda p: p["spec"].pop("terminationGracePeriodSeconds"),
        "spec.terminationGracePeriodSeconds",
        errors.REQUIRED,
    ),
    (
        "probe with two handlers",
        lambda p: container(p)["readinessProbe"].update(exec={"command": ["true"]}),
        "spec.containers[0].readinessProbe.tcpSocket",
        errors.FIELD_FORBIDDEN,
    ),
    (
        "probe without handler",
        lambda p: container(p).update(livenessProbe={"periodSeconds": 10, "successThreshold": 1}),
        "spec.containers[0].livenessProbe",
        errors.REQUIRED,
    ),
    (
        "liveness success threshold",
        lambda p: container(p).update(
            livenessProbe={"exec": {"command": ["x"]}, "successThreshold": 2}
        ),
        "spec.containers[0].livenessProbe.successThreshold",
        errors.INVALID_VALUE,
    ),
    (
        "init container probe",
        lambda p: p["spec"]["initContainers"][0].update(
            livenessProbe={"exec": {"command": ["x"]}, "successThreshold": 1}
        ),
        "spec.initContainers[0].livenessProbe",
        errors.FIELD_FORBIDDEN,
    ),
    (
        "bad node selector",
        lambda p: p["spec"].update(nodeSelector={"k": "bad value"}),
        "spec.nodeSelector",
        errors.INVALID_VALUE,
    ),
    (
        "toleration operator",
        lambda p: p["spec"].update(tolerations=[{"key": "k", "operator": "Like"}]),
        "spec.tolerations[0].operator",
        errors.NOT_SUPPORTED,
    ),
    (
        "toleration empty key",
        lambda p: p["spec"].update(tolerations=[{"operator": "Equal", "value": "v"}]),
        "spec.tolerations[0].operator",
        errors.INVALID_VALUE,
    ),
    (
        "toleration seconds",
        lambda p: p["spec"].update(
            tolerations=[{"key": "k", "effect": "NoSchedule", "tolerationSeconds": 5}]
        ),
        "spec.tolerations[0].effect",
        errors.INVALID_VALUE,
    ),
    (
        "toleration effect",
        lambda p: p["spec"].update(tolerations=[{"key": "k", "effect": "Never"}]),
        "spec.tolerations[0].effect",
        errors.NOT_SUPPORTED,
    ),
    (
        "affinity topology key",
        lambda p: p["spec"].update(
            affinity={
                "podAntiAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": [
                        {"labelSelector": {"matchLabels": {"a": "b"}}}
                    ]
                }
            }
        ),
        "spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey",
        errors.REQUIRED,
    ),
    (
        "node affinity terms",
        lambda p: p["spec"].update(
            affinity={
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}
                }
            }
        ),
        "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms",
        errors.REQUIRED,
    ),
    (
        "preferred weight",
        lambda p: p["spec"].update(
            affinity={
                "nodeAffinity": {
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {"weight": 0, "preference": {}}
                    ]
                }
            }
        ),
        "spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight",
        errors.INVALID_VALUE,
    ),
    (
        "spread max skew",
        lambda p: p["spec"].update(
            topologySpreadConstraints=[
                {"maxSkew": 0, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}
            ]
        ),
        "spec.topologySpreadConstraints[0].maxSkew",
        errors.INVALID_VALUE,
    ),
    (
        "spread action",
        lambda p: p["spec"].update(
            topologySpreadConstraints=[
                {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "Maybe"}
            ]
        ),
        "spec.topologySpreadConstraints[0].whenUnsatisfiable",
        errors.NOT_SUPPORTED,
    ),
    (
        "spread topology key",
        lambda p: p["spec"].update(
            topologySpreadConstraints=[{"maxSkew": 1, "whenUnsatisfiable": "ScheduleAnyway"}]
        ),
        "spec.topologySpreadConstraints[0].topologyKey",
        errors.REQUIRED,
    ),
    (
        "run as user",
        lambda p: p["spec"]["securityContext"].update(runAsUser=-1),
        "spec.securityContext.runAsUser",
        errors.INVALID_VALUE,
    ),
    (
        "container run as group",
        lambda p: container(p).update(securityContext={"runAsGroup": -5}),
        "spec.containers[0].securityContext.runAsGroup",
        errors.INVALID_VALUE,
    ),
    (
        "seccomp type",
        lambda p: p["spec"]["securityContext"].update(seccompProfile={"type": "Strict"}),
        "spec.securityContext.seccompProfile.type",
        errors.NOT_SUPPORTED,
    ),
    (
        "host port mismatch",
        lambda p: (
            p["spec"].update(hostNetwork=True),
            container(p)["ports"][0].update(hostPort=8080),
        ),
        "spec.containers[0].ports[0].hostPort",
        errors.INVALID_VALUE,
    ),
    (
        "active deadline",
        lambda p: p["spec"].update(activeDeadlineSeconds=0),
        "spec.activeDeadlineSeconds",
        errors.INVALID_VALUE,
    ),
    (
        "ephemeral on create",
        lambda p: p["spec"].update(
            ephemeralContainers=[
                {
                    "name": "debug",
                    "image": "busybox",
                    "imagePullPolicy": "Always",
                    "terminationMessagePolicy": "File",
                }
            ]
        ),
        "spec.ephemeralContainers",
        errors.FIELD_FORBIDDEN,
    ),
    (
        "dns none without config",
        lambda p: p["spec"].update(dnsPolicy="None"),
        "spec.dnsConfig",
        errors.REQUIRED,
    ),
    (
        "bad hostname",
        lambda p: p["spec"].update(hostname="a.b"),
        "spec.hostname",
        errors.INVALID_VALUE,
    ),
    (
        "bad service account",
        lambda p: p["spec"].update(serviceAccountName="Bad"),
        "spec.serviceAccountName",
        errors.INVALID_VALUE,
    ),
    (
        "token without service account",
        lambda p: p["spec"]["volumes"].append(
            {
                "name": "t",
                "projected": {
                    "defaultMode": 420,
                    "sources": [
                        {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}}
                    ],
                },
            }
        ),
        "spec.volumes[1].projected.sources[0].serviceAccountToken",
        errors.FIELD_FORBIDDEN,
    ),
    (
        "annotations too big",
        lambda p: p["metadata"].update(annotations={"a": "x" * (256 * 1024)}),
        "metadata.annotations",
        errors.TOO_LONG,
    ),
    (
        "deletion cost",
        lambda p: p["metadata"].update(
            annotations={"controller.kubernetes.io/pod-deletion-cost": "lots"}
        ),
        "metadata.annotations[controller.kubernetes.io/pod-deletion-cost]",
        errors.INVALID_VALUE,
    ),
]


@pytest.mark.parametrize(("name", "mutate", "field", "kind"), CASES, ids=[c[0] for c in CASES])
def test_invalid_pods(name: str, mutate: Callable[[Obj], Any], field: str, kind: str) -> None:
    pod = valid_pod()
    mutate(pod)
    assert (field, kind) in codes(validate_create("", "v1", "Pod", pod))


def test_messages_read_like_upstream() -> None:
    pod = valid_pod()
    container(pod).pop("image")
    container(pod)["ports"][0]["protocol"] = "HTTP"
    messages = [e.message() for e in validate_create("", "v1", "Pod", pod)]
    assert "spec.containers[0].image: Required value" in messages
    assert (
        'spec.containers[0].ports[0].protocol: Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP"'
        in messages
    )


def test_requests_above_limits_message() -> None:
    pod = valid_pod()
    container(pod)["resources"]["requests"]["cpu"] = "2"
    (error,) = [e for e in validate_create("", "v1", "Pod", pod) if e.field.endswith("requests")]
    assert (
        error.message()
        == 'spec.containers[0].resources.requests: Invalid value: "2": must be less than or equal to cpu limit of 1'
    )


def test_generic_name_rules_run_after_kind_rules() -> None:
    pod = valid_pod()
    pod["metadata"]["generateName"] = "web-"
    assert validate_create("", "v1", "Pod", pod) == []


def updated(mutate: Callable[[Obj], Any]) -> list[tuple[str, str]]:
    old = valid_pod()
    old["metadata"].update(uid="u1", resourceVersion="1", creationTimestamp="2024-01-01T00:00:00Z")
    new = copy.deepcopy(old)
    mutate(new)
    return codes(validate_update("", "v1", "Pod", new, old))


def test_allowed_pod_updates() -> None:
    assert updated(lambda p: container(p).update(image="nginx:1.26")) == []
    assert updated(lambda p: p["spec"].update(activeDeadlineSeconds=30)) == []
    assert (
        updated(lambda p: p["spec"].update(tolerations=[{"key": "k", "operator": "Exists"}])) == []
    )
    assert updated(lambda p: p["metadata"]["labels"].update(tier="web")) == []


def test_forbidden_pod_updates() -> None:
    assert ("spec", errors.FIELD_FORBIDDEN) in updated(
        lambda p: container(p).update(command=["sh"])
    )
    assert ("spec.containers", errors.FIELD_FORBIDDEN) in updated(
        lambda p: p["spec"]["containers"].append({"name": "b", "image": "b"})
    )
    assert ("metadata.name", errors.INVALID_VALUE) in updated(
        lambda p: p["metadata"].update(name="other")
    )
    assert ("metadata.uid", errors.INVALID_VALUE) in updated(
        lambda p: p["metadata"].update(uid="u2")
    )


def test_pod_update_message() -> None:
    old = valid_pod()
    new = copy.deepcopy(old)
    container(new)["command"] = ["sh"]
    (error,) = validate_update("", "v1", "Pod", new, old)
    assert error.message().startswith(
        "spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
        "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions "
        "to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was "
        "previously negative)\n"
    )
    assert "containers[0].command" in error.message()


def test_active_deadline_and_toleration_updates() -> None:
    def with_deadline(p: Obj) -> None:
        p["spec"]["activeDeadlineSeconds"] = 10

    old = valid_pod()
    with_deadline(old)
    longer = copy.deepcopy(old)
    longer["spec"]["activeDeadlineSeconds"] = 20
    assert ("spec.activeDeadlineSeconds", errors.INVALID_VALUE) in codes(
        validate_update("", "v1", "Pod", longer, old)
    )
    old["spec"]["tolerations"] = [
        {"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}
    ]
    changed = copy.deepcopy(old)
    changed["spec"]["tolerations"] = [{"key": "other", "operator": "Exists"}]
    assert ("spec.tolerations", errors.FIELD_FORBIDDEN) in codes(
        validate_update("", "v1", "Pod", changed, old)
    )
    seconds = copy.deepcopy(old)
    seconds["spec"]["tolerations"][0]["tolerationSeconds"] = 60
    assert validate_update("", "v1", "Pod", seconds, old) == []
