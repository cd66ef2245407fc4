"""Deletion protocol (grace periods, finalizers, propagation) and the scale,
binding, eviction and finalize subresources, over the raw API."""

from __future__ import annotations

DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web"},
    "spec": {
        "replicas": 3,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "busybox"}]},
        },
    },
}


def pod(name: str, **labels: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }


def test_scale_subresource_reads_and_writes_replicas(api, namespace: str) -> None:
    base = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    assert api.json("POST", base, DEPLOYMENT)[0] == 201
    code, scale = api.json("GET", f"{base}/web/scale")
    assert code == 200
    assert scale["kind"] == "Scale" and scale["apiVersion"] == "autoscaling/v1"
    assert scale["spec"] == {"replicas": 3}
    assert scale["status"]["selector"] == "app=web"
    scale["spec"]["replicas"] = 5
    code, out = api.json("PUT", f"{base}/web/scale", scale)
    assert code == 200 and out["spec"]["replicas"] == 5
    code, dep = api.json("GET", f"{base}/web")
    assert dep["spec"]["replicas"] == 5 and dep["metadata"]["generation"] == 2
    scale["spec"]["replicas"] = -1
    code, st = api.json("PUT", f"{base}/web/scale", scale)
    assert code in (409, 422), st  # stale resourceVersion or invalid: either way refused
    code, fresh = api.json("GET", f"{base}/web/scale")
    fresh["spec"]["replicas"] = -1
    code, st = api.json("PUT", f"{base}/web/scale", fresh)
    assert code == 422 and st["details"]["causes"][0]["field"] == "spec.replicas"


def test_binding_assigns_a_node_once(api, namespace: str) -> None:
    base = f"/api/v1/namespaces/{namespace}/pods"
    assert api.json("POST", base, pod("p1"))[0] == 201
    binding = {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": "p1"},
        "target": {"apiVersion": "v1", "kind": "Node", "name": "node-a"},
    }
    code, st = api.json("POST", f"{base}/p1/binding", binding)
    assert code == 201 and st["status"] == "Success"
    code, got = api.json("GET", f"{base}/p1")
    assert got["spec"]["nodeName"] == "node-a"
    assert any(
        c["type"] == "PodScheduled" and c["status"] == "True" for c in got["status"]["conditions"]
    )
    code, st = api.json("POST", f"{base}/p1/binding", {**binding, "target": {"name": "node-b"}})
    assert code == 409 and "already assigned" in st["message"]
    # The top-level bindings resource does the same.
    assert api.json("POST", base, pod("p2"))[0] == 201
    code, _ = api.json(
        "POST", f"/api/v1/namespaces/{namespace}/bindings", {**binding, "metadata": {"name": "p2"}}
    )
    assert code == 201


def _bound_running_pod(api, namespace: str, name: str, **labels: str) -> None:
    base = f"/api/v1/namespaces/{namespace}/pods"
    assert api.json("POST", base, pod(name, **labels))[0] == 201
    assert (
        api.json(
            "POST",
            f"{base}/{name}/binding",
            {"metadata": {"name": name}, "target": {"name": "node-a"}},
        )[0]
        == 201
    )
    _, got = api.json("GET", f"{base}/{name}")
    got["status"]["phase"] = "Running"
    got["status"]["conditions"].append({"type": "Ready", "status": "True"})
    assert api.json("PUT", f"{base}/{name}/status", got)[0] == 200


def test_graceful_pod_deletion(api, namespace: str) -> None:
    base = f"/api/v1/namespaces/{namespace}/pods"
    assert api.json("POST", base, pod("unbound"))[0] == 201
    code, gone = api.json("DELETE", f"{base}/unbound")
    assert code == 200 and gone["metadata"]["name"] == "unbound"  # pods answer with the object
    assert api.json("GET", f"{base}/unbound")[0] == 404  # never scheduled: removed at once

    _bound_running_pod(api, namespace, "bound")
    code, marked = api.json("DELETE", f"{base}/bound")
    assert code == 200
    assert marked["metadata"]["deletionGracePeriodSeconds"] == 30
    assert marked["metadata"]["deletionTimestamp"]
    code, still = api.json("GET", f"{base}/bound")
    assert code == 200 and still["metadata"]["deletionTimestamp"]
    # A status update from the node does not remove it...
    still["status"]["phase"] = "Running"
    assert api.json("PUT", f"{base}/bound/status", still)[0] == 200
    # ...the node's final delete with grace 0 does.
    code, _ = api.json("DELETE", f"{base}/bound", {"gracePeriodSeconds": 0})
    assert code == 200
    assert api.json("GET", f"{base}/bound")[0] == 404


def test_finalizers_hold_an_object_until_removed(api, namespace: str) -> None:
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    cm = {"metadata": {"name": "held", "finalizers": ["example.com/hold"]}, "data": {"a": "b"}}
    assert api.json("POST", base, cm)[0] == 201
    code, marked = api.json("DELETE", f"{base}/held")
    assert code == 200 and marked["metadata"]["deletionTimestamp"]
    code, current = api.json("GET", f"{base}/held")
    assert code == 200
    current["metadata"]["finalizers"].append("example.com/another")
    code, st = api.json("PUT", f"{base}/held", current)
    assert code == 422 and "no new finalizers" in st["message"]
    code, current = api.json("GET", f"{base}/held")
    current["metadata"]["finalizers"] = []
    code, _ = api.json("PUT", f"{base}/held", current)
    assert code == 200
    assert api.json("GET", f"{base}/held")[0] == 404


def test_propagation_policies_add_gc_finalizers(api, namespace: str) -> None:
    base = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    assert api.json("POST", base, DEPLOYMENT)[0] == 201
    code, marked = api.json("DELETE", f"{base}/web", {"propagationPolicy": "Orphan"})
    assert code == 200 and marked["metadata"]["finalizers"] == ["orphan"]
    code, marked = api.json("DELETE", f"{base}/web", {"propagationPolicy": "Foreground"})
    assert code == 200 and marked["metadata"]["finalizers"] == ["foregroundDeletion"]
    code, st = api.json("DELETE", f"{base}/web?propagationPolicy=Sideways")
    assert code == 422 and "propagationPolicy" in st["message"]


def test_eviction_honours_disruption_budgets(api, namespace: str) -> None:
    base = f"/api/v1/namespaces/{namespace}/pods"
    _bound_running_pod(api, namespace, "free")
    code, st = api.json(
        "POST",
        f"{base}/free/eviction",
        {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "free"}},
    )
    assert code == 201
    code, got = api.json("GET", f"{base}/free")
    assert got["metadata"].get("deletionTimestamp")

    _bound_running_pod(api, namespace, "guarded", app="db")
    pdbs = f"/apis/policy/v1/namespaces/{namespace}/poddisruptionbudgets"
    pdb = {
        "metadata": {"name": "db"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "db"}}},
    }
    assert api.json("POST", pdbs, pdb)[0] == 201
    code, current = api.json("GET", f"{pdbs}/db")
    current["status"] = {
        "observedGeneration": current["metadata"]["generation"],
        "disruptionsAllowed": 0,
        "currentHealthy": 1,
        "desiredHealthy": 1,
        "expectedPods": 1,
    }
    assert api.json("PUT", f"{pdbs}/db/status", current)[0] == 200
    code, st = api.json("POST", f"{base}/guarded/eviction", {"metadata": {"name": "guarded"}})
    assert code == 429 and st["reason"] == "TooManyRequests"
    assert "disruption budget" in st["message"]
    assert st["details"]["causes"][0]["reason"] == "DisruptionBudget"
    code, got = api.json("GET", f"{base}/guarded")
    assert not got["metadata"].get("deletionTimestamp")
    current = api.json("GET", f"{pdbs}/db")[1]
    current["status"]["disruptionsAllowed"] = 1
    assert api.json("PUT", f"{pdbs}/db/status", current)[0] == 200
    assert api.json("POST", f"{base}/guarded/eviction", {"metadata": {"name": "guarded"}})[0] == 201
    after = api.json("GET", f"{pdbs}/db")[1]
    assert (
        after["status"]["disruptionsAllowed"] == 0 and "guarded" in after["status"]["disruptedPods"]
    )


def test_namespace_deletion_and_finalize(api) -> None:
    assert api.json("POST", "/api/v1/namespaces", {"metadata": {"name": "doomed"}})[0] == 201
    code, ns = api.json("DELETE", "/api/v1/namespaces/doomed")
    assert code == 200 and ns["status"]["phase"] == "Terminating"
    code, st = api.json(
        "POST", "/api/v1/namespaces/doomed/configmaps", {"metadata": {"name": "late"}}
    )
    assert code == 403 and "because it is being terminated" in st["message"]
    # The cause controllers test for (upstream's v1.NamespaceTerminatingCause).
    assert st["details"]["causes"] == [
        {
            "reason": "NamespaceTerminating",
            "message": "namespace doomed is being terminated",
            "field": "metadata.namespace",
        }
    ]
    code, ns = api.json("GET", "/api/v1/namespaces/doomed")
    ns["spec"]["finalizers"] = []
    code, _ = api.json("PUT", "/api/v1/namespaces/doomed/finalize", ns)
    assert code == 200
    assert api.json("GET", "/api/v1/namespaces/doomed")[0] == 404
    for system in ("default", "kube-system", "kube-public", "kube-node-lease"):
        code, st = api.json("DELETE", f"/api/v1/namespaces/{system}")
        assert code == 403 and "may not be deleted" in st["message"]
