"""The default admission plugins through the HTTP API: what they change, what they refuse,
and their words (upstream's)."""

from __future__ import annotations

import uuid
from typing import Any

from ...conftest import API

Obj = dict[str, Any]


def pod(name: str, **spec: Any) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec},
    }


def create_pod(api: API, ns: str, body: Obj) -> tuple[int, Any]:
    return api.json("POST", f"/api/v1/namespaces/{ns}/pods", body)


# --- NamespaceLifecycle ------------------------------------------------------------------


def test_namespace_must_exist_and_system_ones_stay(api: API) -> None:
    status, body = create_pod(api, "no-such-ns", pod("p"))
    assert status == 404
    assert body["message"] == 'namespaces "no-such-ns" not found'
    status, body = api.json("DELETE", "/api/v1/namespaces/kube-system")
    assert (status, body["reason"]) == (403, "Forbidden")
    assert (
        body["message"]
        == 'namespaces "kube-system" is forbidden: this namespace may not be deleted'
    )


# --- Priority and DefaultTolerationSeconds ----------------------------------------------


def test_pods_get_priority_and_default_tolerations(api: API, namespace: str) -> None:
    status, body = create_pod(api, namespace, pod("plain"))
    assert status == 201, body
    spec = body["spec"]
    assert spec["priority"] == 0
    assert spec["preemptionPolicy"] == "PreemptLowerPriority"
    assert spec["serviceAccountName"] == "default"
    assert {
        "key": "node.kubernetes.io/not-ready",
        "operator": "Exists",
        "effect": "NoExecute",
        "tolerationSeconds": 300,
    } in spec["tolerations"]
    assert sum(t["key"].startswith("node.kubernetes.io/") for t in spec["tolerations"]) == 2
    # Tolerating every NoExecute taint already covers both.
    status, body = create_pod(
        api, namespace, pod("tolerant", tolerations=[{"operator": "Exists", "effect": "NoExecute"}])
    )
    assert status == 201 and body["spec"]["tolerations"] == [
        {"operator": "Exists", "effect": "NoExecute"}
    ]


def test_priority_classes(api: API, namespace: str) -> None:
    status, body = create_pod(api, namespace, pod("crit", priorityClassName="system-node-critical"))
    assert status == 201 and body["spec"]["priority"] == 2000001000
    status, body = create_pod(api, namespace, pod("ghost", priorityClassName="nope"))
    assert status == 403
    assert body["message"] == 'pods "ghost" is forbidden: no PriorityClass with name nope was found'
    status, body = create_pod(
        api, namespace, pod("wrong", priorityClassName="system-node-critical", priority=5)
    )
    assert body["message"] == (
        'pods "wrong" is forbidden: the integer value of priority (5) must not be provided in '
        "pod spec; priority admission controller computed 2000001000 from the given "
        "PriorityClass name"
    )
    status, body = api.json(
        "DELETE", "/apis/scheduling.k8s.io/v1/priorityclasses/system-node-critical"
    )
    assert (status, body["message"]) == (
        403,
        'priorityclasses.scheduling.k8s.io "system-node-critical" is forbidden: this is a system '
        "priority class and cannot be deleted",
    )
    names = ["d-" + uuid.uuid4().hex[:6] for _ in range(2)]
    path = "/apis/scheduling.k8s.io/v1/priorityclasses"
    first = {
        "metadata": {"name": names[0]},
        "value": 7,
        "globalDefault": True,
        "preemptionPolicy": "Never",
    }
    try:
        assert api.json("POST", path, first)[0] == 201
        status, body = api.json(
            "POST", path, {"metadata": {"name": names[1]}, "value": 8, "globalDefault": True}
        )
        assert status == 403
        assert body["message"] == (
            f'priorityclasses.scheduling.k8s.io "{names[1]}" is forbidden: PriorityClass '
            f"{names[0]} is already marked as default. Only one default can exist"
        )
        status, body = create_pod(api, namespace, pod("defaulted"))
        assert body["spec"]["priorityClassName"] == names[0]
        assert body["spec"]["priority"] == 7
        assert body["spec"]["preemptionPolicy"] == "Never"
    finally:
        for name in names:
            api.request("DELETE", f"{path}/{name}")


# --- LimitRanger ---------------------------------------------------------------------------


def test_limit_range_defaults_and_limits(api: API, namespace: str) -> None:
    limits = {
        "metadata": {"name": "limits"},
        "spec": {
            "limits": [
                {
                    "type": "Container",
                    "default": {"cpu": "500m", "memory": "128Mi"},
                    "defaultRequest": {"cpu": "100m"},
                    "max": {"cpu": "1"},
                }
            ]
        },
    }
    status, body = api.json("POST", f"/api/v1/namespaces/{namespace}/limitranges", limits)
    assert status == 201, body
    assert body["spec"]["limits"][0]["defaultRequest"] == {"cpu": "100m", "memory": "128Mi"}
    status, body = create_pod(api, namespace, pod("defaulted"))
    assert status == 201, body
    assert body["spec"]["containers"][0]["resources"] == {
        "limits": {"cpu": "500m", "memory": "128Mi"},
        "requests": {"cpu": "100m", "memory": "128Mi"},
    }
    assert body["metadata"]["annotations"]["kubernetes.io/limit-ranger"] == (
        "LimitRanger plugin set: cpu, memory request for container c; cpu, memory limit for "
        "container c"
    )
    big = pod("big")
    big["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "2"}, "requests": {"cpu": "1"}}
    status, body = create_pod(api, namespace, big)
    assert (status, body["reason"]) == (403, "Forbidden")
    assert body["message"] == (
        'pods "big" is forbidden: maximum cpu usage per Container is 1, but limit is 2'
    )


# --- PodSecurity ---------------------------------------------------------------------------


def label_namespace(api: API, ns: str, labels: dict[str, str]) -> tuple[int, Any]:
    return api.json(
        "PATCH",
        f"/api/v1/namespaces/{ns}",
        {"metadata": {"labels": labels}},
        content_type="application/merge-patch+json",
    )


def test_pod_security_enforce_warn_and_bad_labels(api: API, namespace: str) -> None:
    status, body = label_namespace(api, namespace, {"pod-security.kubernetes.io/enforce": "strict"})
    assert (status, body["reason"]) == (422, "Invalid")
    assert body["message"] == (
        f'Namespace "{namespace}" is invalid: metadata.labels[pod-security.kubernetes.io/enforce]: '
        'Invalid value: "strict": must be one of privileged, baseline, restricted'
    )
    status, _ = label_namespace(
        api,
        namespace,
        {
            "pod-security.kubernetes.io/enforce": "baseline",
            "pod-security.kubernetes.io/warn": "restricted",
        },
    )
    assert status == 200
    privileged = pod("priv")
    privileged["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    status, body = create_pod(api, namespace, privileged)
    assert status == 403
    assert body["message"] == (
        'pods "priv" is forbidden: violates PodSecurity "baseline:latest": privileged '
        '(container "c" must not set securityContext.privileged=true)'
    )
    resp = api.request("POST", f"/api/v1/namespaces/{namespace}/pods", pod("warned"))
    assert resp.status == 201
    warnings = resp.headers.getlist("Warning")
    assert warnings == [
        '299 - "would violate PodSecurity \\"restricted:latest\\": allowPrivilegeEscalation != '
        'false (container \\"c\\" must set securityContext.allowPrivilegeEscalation=false), '
        'unrestricted capabilities (container \\"c\\" must set '
        'securityContext.capabilities.drop=[\\"ALL\\"]), runAsNonRoot != true (pod or container '
        '\\"c\\" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container '
        '\\"c\\" must set securityContext.seccompProfile.type to \\"RuntimeDefault\\" or '
        '\\"Localhost\\")"'
    ]
    # Workloads are only warned about: their pods are what enforce refuses.
    deployment = {
        "metadata": {"name": "d"},
        "spec": {
            "selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "b"}}, "spec": privileged["spec"]},
        },
    }
    resp = api.request("POST", f"/apis/apps/v1/namespaces/{namespace}/deployments", deployment)
    assert resp.status == 201
    assert resp.headers.getlist("Warning")[0].startswith(
        '299 - "would violate PodSecurity \\"restricted:latest\\": privileged'
    )
    # Tightening enforce tells which running pods would not pass.
    status, _ = label_namespace(
        api, namespace, {"pod-security.kubernetes.io/enforce": "restricted"}
    )
    resp = api.request(
        "PATCH",
        f"/api/v1/namespaces/{namespace}",
        {"metadata": {"labels": {"pod-security.kubernetes.io/enforce-version": "v1.30"}}},
        content_type="application/merge-patch+json",
    )
    assert resp.status == 200
    assert resp.headers.getlist("Warning") == [
        f'299 - "existing pods in namespace \\"{namespace}\\" violate the new PodSecurity enforce '
        'level \\"restricted:v1.30\\""',
        '299 - "warned: allowPrivilegeEscalation != false, unrestricted capabilities, '
        'runAsNonRoot != true, seccompProfile"',
    ]


# --- ResourceQuota -------------------------------------------------------------------------


def make_quota(
    api: API, ns: str, name: str, hard: dict[str, str], used: dict[str, str], **spec: Any
) -> None:
    """A quota with the status the controller would write (this server runs no controllers)."""
    base = f"/api/v1/namespaces/{ns}/resourcequotas"
    status, body = api.json(
        "POST", base, {"metadata": {"name": name}, "spec": {"hard": hard, **spec}}
    )
    assert status == 201, body
    body["status"] = {"hard": hard, "used": used}
    status, body = api.json("PUT", f"{base}/{name}/status", body)
    assert status == 200, body


def quota_used(api: API, ns: str, name: str) -> dict[str, str]:
    status, body = api.json("GET", f"/api/v1/namespaces/{ns}/resourcequotas/{name}")
    assert status == 200
    used: dict[str, str] = body["status"]["used"]
    return used


def test_quota_charges_and_refuses_with_upstreams_words(api: API, namespace: str) -> None:
    make_quota(
        api,
        namespace,
        "compute",
        {"pods": "2", "requests.cpu": "1"},
        {"pods": "0", "requests.cpu": "0"},
    )
    p = pod("a")
    p["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "600m"}}
    assert create_pod(api, namespace, p)[0] == 201
    assert quota_used(api, namespace, "compute") == {"pods": "1", "requests.cpu": "600m"}
    p["metadata"]["name"] = "b"
    status, body = create_pod(api, namespace, p)
    assert (status, body["reason"]) == (403, "Forbidden")
    assert body["message"] == (
        'pods "b" is forbidden: exceeded quota: compute, requested: requests.cpu=600m, '
        "used: requests.cpu=600m, limited: requests.cpu=1"
    )
    # A container without a cpu request cannot be charged against requests.cpu.
    status, body = create_pod(api, namespace, pod("c"))
    assert body["message"] == (
        'pods "c" is forbidden: failed quota: compute: must specify requests.cpu for: c'
    )
    # Dry runs are checked but not charged.
    p["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "100m"}}
    status, _ = api.json("POST", f"/api/v1/namespaces/{namespace}/pods?dryRun=All", p)
    assert status == 201
    assert quota_used(api, namespace, "compute") == {"pods": "1", "requests.cpu": "600m"}
    assert create_pod(api, namespace, p)[0] == 201
    assert quota_used(api, namespace, "compute") == {"pods": "2", "requests.cpu": "700m"}
    p["metadata"]["name"] = "third"
    status, body = create_pod(api, namespace, p)
    assert body["message"] == (
        'pods "third" is forbidden: exceeded quota: compute, requested: pods=1, used: pods=2, '
        "limited: pods=2"
    )


def test_quota_without_status_refuses_until_counted(api: API, namespace: str) -> None:
    base = f"/api/v1/namespaces/{namespace}/resourcequotas"
    body = {"metadata": {"name": "counts"}, "spec": {"hard": {"configmaps": "1"}}}
    status, quota = api.json("POST", base, body)
    assert status == 201
    assert quota["status"] == {}  # users may not set it; the controller fills it in
    # Not enforced until the controller set status.hard (upstream's behaviour too).
    cm = {"metadata": {"name": "cm0"}}
    assert api.json("POST", f"/api/v1/namespaces/{namespace}/configmaps", cm)[0] == 201
    quota["status"] = {"hard": {"configmaps": "1"}}
    assert api.json("PUT", f"{base}/counts/status", quota)[0] == 200
    status, body = api.json(
        "POST", f"/api/v1/namespaces/{namespace}/configmaps", {"metadata": {"name": "cm1"}}
    )
    assert status == 403
    assert body["message"] == (
        'configmaps "cm1" is forbidden: status unknown for quota: counts, resources: configmaps'
    )


def test_concurrent_creates_never_pass_the_quota(api: API, namespace: str) -> None:
    import concurrent.futures

    make_quota(api, namespace, "few", {"count/configmaps": "5"}, {"count/configmaps": "0"})

    def create(i: int) -> int:
        status, _ = api.json(
            "POST", f"/api/v1/namespaces/{namespace}/configmaps", {"metadata": {"name": f"c{i}"}}
        )
        return status

    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        statuses = list(pool.map(create, range(12)))
    assert statuses.count(201) == 5 and statuses.count(403) == 7
    assert quota_used(api, namespace, "few") == {"count/configmaps": "5"}


def test_quota_scopes_select_what_is_charged(api: API, namespace: str) -> None:
    make_quota(api, namespace, "besteffort", {"pods": "1"}, {"pods": "0"}, scopes=["BestEffort"])
    assert create_pod(api, namespace, pod("be"))[0] == 201
    _, body = create_pod(api, namespace, pod("be2"))
    assert body["message"].endswith(
        "exceeded quota: besteffort, requested: pods=1, used: pods=1, limited: pods=1"
    )
    burstable = pod("burst")
    burstable["spec"]["containers"][0]["resources"] = {"requests": {"memory": "10Mi"}}
    assert create_pod(api, namespace, burstable)[0] == 201
