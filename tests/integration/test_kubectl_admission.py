"""The real kubectl against admission and the audit log: a quota of two pods refuses the third,
LimitRange defaults fill in a pod that asked for nothing, PodSecurity refuses a privileged pod
and warns, a quota of an unknown resource is refused, and a create is recorded at each
audit level."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pilothouse import testing
from pilothouse.apiserver.audit import backend

from ..conftest import Kubectl

pytestmark = pytest.mark.kubectl


def wait_for(check: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


def quota_counted(kubectl: Kubectl, ns: str, name: str) -> bool:
    status = kubectl.json("-n", ns, "get", "resourcequota", name).get("status") or {}
    return bool(status.get("used"))


def test_a_quota_of_two_pods_refuses_the_third(
    cluster_kubectl: Kubectl, cluster_namespace: str
) -> None:
    k, ns = cluster_kubectl, cluster_namespace
    assert k("-n", ns, "create", "quota", "pods", "--hard=pods=2").stdout.strip() == (
        "resourcequota/pods created"
    )
    assert wait_for(lambda: quota_counted(k, ns, "pods"))  # as upstream's e2e waits
    for name in ("one", "two"):
        k("-n", ns, "run", name, "--image=busybox", "--restart=Never")
    third = k("-n", ns, "run", "three", "--image=busybox", "--restart=Never", check=False)
    assert third.returncode == 1
    assert third.stderr.strip() == (
        'Error from server (Forbidden): pods "three" is forbidden: exceeded quota: pods, '
        "requested: pods=1, used: pods=2, limited: pods=2"
    )
    table = k("-n", ns, "get", "quota").stdout.splitlines()
    assert table[0].split() == ["NAME", "AGE", "REQUEST", "LIMIT"]
    assert table[1].split()[0] == "pods" and "pods: 2/2" in table[1]
    describe = [
        line.split() for line in k("-n", ns, "describe", "quota", "pods").stdout.splitlines()
    ]
    assert ["Resource", "Used", "Hard"] in describe and ["pods", "2", "2"] in describe
    # Deleting a pod gives its place back (the controller recounts).
    k("-n", ns, "delete", "pod", "one", "--wait=false")
    assert wait_for(
        lambda: (
            k(
                "-n", ns, "run", "three", "--image=busybox", "--restart=Never", check=False
            ).returncode
            == 0
        )
    )


def test_limit_range_defaults_appear_on_a_pod_that_had_none(
    cluster_kubectl: Kubectl, cluster_namespace: str
) -> None:
    k, ns = cluster_kubectl, cluster_namespace
    k(
        "-n",
        ns,
        "apply",
        "-f",
        "-",
        input="""\
apiVersion: v1
kind: LimitRange
metadata: {name: defaults}
spec:
  limits:
  - type: Container
    default: {cpu: 300m, memory: 96Mi}
    defaultRequest: {cpu: 150m, memory: 64Mi}
    max: {cpu: "1"}
""",
    )
    k("-n", ns, "run", "bare", "--image=busybox", "--restart=Never")
    pod = k.json("-n", ns, "get", "pod", "bare")
    assert pod["spec"]["containers"][0]["resources"] == {
        "limits": {"cpu": "300m", "memory": "96Mi"},
        "requests": {"cpu": "150m", "memory": "64Mi"},
    }
    assert pod["metadata"]["annotations"]["kubernetes.io/limit-ranger"] == (
        "LimitRanger plugin set: cpu, memory request for container bare; cpu, memory limit "
        "for container bare"
    )
    greedy = k(
        "-n", ns, "run", "greedy", "--image=busybox", "--restart=Never",
        "--overrides", json.dumps({"spec": {"containers": [{"name": "greedy", "image": "busybox", "resources": {"limits": {"cpu": "2"}}}]}}),
        check=False,
    )  # fmt: skip
    assert greedy.stderr.strip() == (
        'Error from server (Forbidden): pods "greedy" is forbidden: maximum cpu usage per '
        "Container is 1, but limit is 2"
    )
    assert "defaults   " in k("-n", ns, "get", "limits").stdout


def test_pod_security_restricted_refuses_a_privileged_pod_and_warns(
    kubectl: Kubectl, namespace: str
) -> None:
    k, ns = kubectl, namespace
    labelled = k("label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted")
    assert labelled.stdout.strip() == f"namespace/{ns} labeled"
    refused = k("-n", ns, "run", "priv", "--image=busybox", "--privileged", check=False)
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        'Error from server (Forbidden): pods "priv" is forbidden: violates PodSecurity '
        '"restricted:latest": privileged (container "priv" must not set '
        'securityContext.privileged=true), allowPrivilegeEscalation != false (container "priv" '
        "must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities "
        '(container "priv" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != '
        'true (pod or container "priv" must set securityContext.runAsNonRoot=true), '
        'seccompProfile (pod or container "priv" must set securityContext.seccompProfile.type '
        'to "RuntimeDefault" or "Localhost")'
    )
    # A workload is admitted with a warning kubectl prints: its pods are what enforce refuses.
    created = k("-n", ns, "create", "deployment", "web", "--image=busybox")
    assert created.stdout.strip() == "deployment.apps/web created"
    assert created.stderr.strip() == (
        'Warning: would violate PodSecurity "restricted:latest": allowPrivilegeEscalation != '
        'false (container "busybox" must set securityContext.allowPrivilegeEscalation=false), '
        'unrestricted capabilities (container "busybox" must set '
        'securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or container '
        '"busybox" must set securityContext.runAsNonRoot=true), seccompProfile (pod or '
        'container "busybox" must set securityContext.seccompProfile.type to "RuntimeDefault" '
        'or "Localhost")'
    )
    # A pod that meets restricted is admitted without a word.
    ok = k(
        "-n", ns, "run", "ok", "--image=busybox", "--restart=Never", "--overrides",
        json.dumps({"spec": {"securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
                             "containers": [{"name": "ok", "image": "busybox", "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}]}}),
    )  # fmt: skip
    assert ok.stdout.strip() == "pod/ok created" and ok.stderr == ""
    bad = k(
        "label",
        "namespace",
        ns,
        "--overwrite",
        "pod-security.kubernetes.io/enforce=strict",
        check=False,
    )
    assert bad.stderr.strip() == (
        f'The Namespace "{ns}" is invalid: metadata.labels[pod-security.kubernetes.io/enforce]: '
        'Invalid value: "strict": must be one of privileged, baseline, restricted'
    )


def test_a_quota_of_a_resource_the_cluster_does_not_know(kubectl: Kubectl, namespace: str) -> None:
    out = kubectl("-n", namespace, "create", "quota", "odd", "--hard=widgets=3", check=False)
    assert out.returncode == 1
    # kubectl's `create quota` prefixes the server's Status message with its own words.
    assert out.stderr.strip() == (
        'error: failed to create quota: ResourceQuota "odd" is invalid: [spec.hard[widgets]: '
        'Invalid value: "widgets": must be a standard resource type or fully qualified, '
        'spec.hard[widgets]: Invalid value: "widgets": must be a standard resource for quota]'
    )
    # From a manifest, kubectl prints the Status as it prints every invalid object.
    manifest = (
        "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: odd}\nspec: {hard: {widgets: '3'}}\n"
    )
    out = kubectl("-n", namespace, "create", "-f", "-", input=manifest, check=False)
    assert out.stderr.strip() == (
        'The ResourceQuota "odd" is invalid: \n'
        '* spec.hard[widgets]: Invalid value: "widgets": must be a standard resource type or '
        "fully qualified\n"
        '* spec.hard[widgets]: Invalid value: "widgets": must be a standard resource for quota'
    )


AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  namespaces: [level-none]
- level: Metadata
  namespaces: [level-metadata]
- level: Request
  namespaces: [level-request]
- level: RequestResponse
  namespaces: [level-requestresponse]
"""
LEVELS = ("None", "Metadata", "Request", "RequestResponse")


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Kubectl, Path]]:
    tmp = tmp_path_factory.mktemp("kubectl-audit")
    (tmp / "policy.yaml").write_text(AUDIT_POLICY)
    log = tmp / "audit.log"
    with testing.server_thread(
        tmp / "data",
        audit_policy_file=tmp / "policy.yaml",
        audit_log=backend.Options(path=str(log)),
    ) as srv:
        yield Kubectl(srv.kubeconfig), log


def test_a_create_is_recorded_at_each_level(audited: tuple[Kubectl, Path]) -> None:
    k, log = audited
    name = "cm-" + uuid.uuid4().hex[:6]
    for level in LEVELS:
        ns = f"level-{level.lower()}"
        k("create", "namespace", ns)
        k("-n", ns, "create", "configmap", name, "--from-literal=k=v")
    events = [json.loads(line) for line in log.read_text().splitlines()]
    by_level: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        ref = e.get("objectRef") or {}
        if (
            e["verb"] == "create"
            and ref.get("resource") == "configmaps"
            and ref.get("name") == name
        ):
            by_level.setdefault(e["level"], []).append(e)
    assert sorted(by_level) == ["Metadata", "Request", "RequestResponse"]  # None: no line
    for level, recorded in by_level.items():
        (e,) = recorded  # RequestReceived is omitted by the policy
        assert e["stage"] == "ResponseComplete"
        assert e["user"]["username"] == "admin"
        assert e["userAgent"].startswith("kubectl/v1.32")
        assert e["objectRef"] == {
            "resource": "configmaps",
            "namespace": f"level-{level.lower()}",
            "name": name,
            "apiVersion": "v1",
        }
        assert e["responseStatus"] == {"metadata": {}, "code": 201}
        assert ("requestObject" in e) == (level in ("Request", "RequestResponse"))
        assert ("responseObject" in e) == (level == "RequestResponse")
    sent = by_level["Request"][0]["requestObject"]
    assert sent["kind"] == "ConfigMap" and sent["data"] == {"k": "v"}
    answered = by_level["RequestResponse"][0]["responseObject"]
    assert answered["metadata"]["name"] == name and answered["metadata"]["uid"]
