"""The Deployment controller's sync logic against a fake API and a fake clock
(no server): what it writes for a given cache, step by step."""

from __future__ import annotations

import itertools
import types
from typing import Any

from pilothouse.api import errors, meta, resources
from pilothouse.client import events, informer, lister
from pilothouse.client.clock import FakeClock
from pilothouse.controllers.deployment import DeploymentController
from pilothouse.controllers.deployment import hash as template_hash

Obj = dict[str, Any]
NS = "default"


class FakeClient:
    """Records writes; answers them as the API would (new resourceVersion)."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, str, Obj]] = []
        self.objects: dict[str, Obj] = {}
        self._rv = itertools.count(100)

    def _stamp(self, obj: Obj) -> Obj:
        out = meta.deep_copy(obj)
        out["metadata"]["resourceVersion"] = str(next(self._rv))
        return out

    async def get(self, resource: resources.Resource, name: str, namespace: str = "") -> Obj:
        obj = self.objects.get(f"{resource.plural}/{namespace}/{name}")
        if obj is None:
            raise errors.StatusError(404, "NotFound", f'{resource.plural} "{name}" not found')
        return obj

    async def create(
        self, resource: resources.Resource, obj: Obj, namespace: str = "", **_: Any
    ) -> Obj:
        self.writes.append(("create", resource.plural, obj))
        out = self._stamp(obj)
        out["metadata"].setdefault("uid", f"uid-{obj['metadata']['name']}")
        out["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
        return out

    async def update(self, resource: resources.Resource, obj: Obj, **_: Any) -> Obj:
        self.writes.append(("update", resource.plural, meta.deep_copy(obj)))
        return self._stamp(obj)

    async def update_status(self, resource: resources.Resource, obj: Obj) -> Obj:
        self.writes.append(("status", resource.plural, meta.deep_copy(obj)))
        return self._stamp(obj)

    async def patch(
        self, resource: resources.Resource, name: str, patch: Any, namespace: str = "", **_: Any
    ) -> Obj:
        self.writes.append(("patch", resource.plural, patch))
        return {"metadata": {"name": name}}

    async def delete(
        self, resource: resources.Resource, name: str, namespace: str = "", **_: Any
    ) -> Obj:
        self.writes.append(("delete", resource.plural, {"metadata": {"name": name}}))
        return {}


class Harness:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.client = FakeClient()
        factory = informer.InformerFactory(self.client)  # type: ignore[arg-type]
        client: Any = self.client
        recorder = events.EventRecorder(client, component="deployment-controller", clock=self.clock)
        self.events: list[tuple[str, str]] = []

        def record(obj: Obj, type: str, reason: str, message: str, **_: Any) -> None:
            self.events.append((reason, message))

        recorder.event = record  # type: ignore[method-assign]
        ctx = types.SimpleNamespace(
            client=self.client,
            informers=factory,
            clock=self.clock,
            resource=lambda g, v, p: resources.DEFAULT.by_path(g, v, p),
            recorder=lambda component: recorder,
        )
        self.dc = DeploymentController(ctx)

    def add(self, inf: informer.Informer, obj: Obj) -> None:
        inf.indexer.upsert(lister.key_of(obj), obj)

    def writes(self, verb: str, plural: str) -> list[Obj]:
        return [o for v, p, o in self.client.writes if v == verb and p == plural]


def deployment(replicas: int = 10, **spec: Any) -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": NS,
            "uid": "d-uid",
            "generation": 1,
            "resourceVersion": "1",
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 2, "maxUnavailable": 1},
            },
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "v1"}]},
            },
            **spec,
        },
    }


def replica_set(
    d: Obj, image: str, replicas: int, available: int, revision: int, created: str
) -> Obj:
    template = meta.deep_copy(d["spec"]["template"])
    template["spec"]["containers"][0]["image"] = image
    pod_hash = template_hash.compute_hash(template, None)
    template["metadata"]["labels"]["pod-template-hash"] = pod_hash
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": f"web-{pod_hash}",
            "namespace": NS,
            "uid": f"rs-{image}",
            "resourceVersion": "5",
            "generation": 1,
            "creationTimestamp": created,
            "labels": dict(template["metadata"]["labels"]),
            "annotations": {
                "deployment.kubernetes.io/revision": str(revision),
                "deployment.kubernetes.io/desired-replicas": str(d["spec"]["replicas"]),
                "deployment.kubernetes.io/max-replicas": str(d["spec"]["replicas"] + 2),
            },
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": "web",
                    "uid": "d-uid",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web", "pod-template-hash": pod_hash}},
            "template": template,
        },
        "status": {
            "replicas": replicas,
            "readyReplicas": available,
            "availableReplicas": available,
            "observedGeneration": 1,
        },
    }


async def test_new_deployment_creates_its_replica_set_and_reports_it() -> None:
    h = Harness()
    d = deployment(
        replicas=3,
        strategy={
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
        },
    )
    d["metadata"]["annotations"] = {
        "kubernetes.io/change-cause": "first",
        "kubectl.kubernetes.io/last-applied-configuration": "{}",
    }
    h.add(h.dc.deployments, d)
    await h.dc.sync(f"{NS}/web")
    (rs,) = h.writes("create", "replicasets")
    pod_hash = template_hash.compute_hash(d["spec"]["template"], None)
    assert rs["metadata"]["name"] == f"web-{pod_hash}"
    assert rs["spec"]["replicas"] == 3
    assert rs["metadata"]["annotations"] == {
        "kubernetes.io/change-cause": "first",  # copied; last-applied is not
        "deployment.kubernetes.io/revision": "1",
        "deployment.kubernetes.io/desired-replicas": "3",
        "deployment.kubernetes.io/max-replicas": "4",
    }
    assert ("ScalingReplicaSet", f"Scaled up replica set web-{pod_hash} from 0 to 3") in h.events
    first = h.writes("status", "deployments")[0]
    assert first["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    (cond,) = first["status"]["conditions"]
    assert (cond["type"], cond["reason"], cond["message"]) == (
        "Progressing",
        "NewReplicaSetCreated",
        f'Created new replica set "web-{pod_hash}"',
    )
    last = h.writes("status", "deployments")[-1]["status"]
    assert [c["type"] for c in last["conditions"]] == ["Progressing", "Available"]
    assert last["unavailableReplicas"] == 3 and last["observedGeneration"] == 1


async def test_rolling_step_surges_then_scales_old_down_within_budget() -> None:
    h = Harness()
    d = deployment()
    d["spec"]["template"]["spec"]["containers"][0]["image"] = "v2"
    old = replica_set(d, "v1", 10, 10, 1, "2026-01-01T00:00:00Z")
    h.add(h.dc.deployments, d)
    h.add(h.dc.sets, old)
    await h.dc.sync(f"{NS}/web")
    (new,) = h.writes("create", "replicasets")
    assert new["spec"]["replicas"] == 2  # 10 + maxSurge 2 - 10
    assert new["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"

    # The new pods are up: old may go down to 9 available (maxUnavailable 1).
    h2 = Harness()
    new_rs = replica_set(d, "v2", 2, 2, 2, "2026-01-01T00:01:00Z")
    h2.add(h2.dc.deployments, d)
    h2.add(h2.dc.sets, old)
    h2.add(h2.dc.sets, new_rs)
    await h2.dc.sync(f"{NS}/web")
    (scaled,) = h2.writes("update", "replicasets")
    assert scaled["metadata"]["name"] == old["metadata"]["name"]
    assert scaled["spec"]["replicas"] == 7  # 12 available - 9 minimum
    assert (
        "ScalingReplicaSet",
        f"Scaled down replica set {old['metadata']['name']} from 10 to 7",
    ) in h2.events

    # New pods not yet available: they count against the budget, one old pod may go.
    h3 = Harness()
    pending = replica_set(d, "v2", 2, 0, 2, "2026-01-01T00:01:00Z")
    h3.add(h3.dc.deployments, d)
    h3.add(h3.dc.sets, old)
    h3.add(h3.dc.sets, pending)
    await h3.dc.sync(f"{NS}/web")
    assert [rs["spec"]["replicas"] for rs in h3.writes("update", "replicasets")] == [9]


async def test_scaling_mid_rollout_is_proportional() -> None:
    h = Harness()
    d = deployment(
        replicas=20,
        strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 3, "maxUnavailable": 2}},
    )
    d["spec"]["template"]["spec"]["containers"][0]["image"] = "v2"
    old = replica_set(d, "v1", 8, 8, 1, "2026-01-01T00:00:00Z")
    new = replica_set(d, "v2", 5, 0, 2, "2026-01-01T00:01:00Z")
    for rs in (old, new):  # sized for 10 replicas + 3 surge
        rs["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] = "10"
        rs["metadata"]["annotations"]["deployment.kubernetes.io/max-replicas"] = "13"
    h.add(h.dc.deployments, d)
    h.add(h.dc.sets, old)
    h.add(h.dc.sets, new)
    await h.dc.sync(f"{NS}/web")
    sizes = {
        rs["metadata"]["name"]: rs["spec"]["replicas"] for rs in h.writes("update", "replicasets")
    }
    # 23 allowed, 10 to add: 8*23/13 → 14, 5*23/13 → 9 (upstream's documented example).
    assert sizes == {old["metadata"]["name"]: 14, new["metadata"]["name"]: 9}


async def test_progress_deadline_with_a_fake_clock() -> None:
    h = Harness()
    d = deployment(replicas=3)
    d["spec"]["template"]["spec"]["containers"][0]["image"] = "v2"
    old = replica_set(d, "v1", 2, 2, 1, "2026-01-01T00:00:00Z")
    new = replica_set(d, "v2", 3, 0, 2, "2026-01-01T00:01:00Z")
    d["metadata"]["annotations"] = {"deployment.kubernetes.io/revision": "2"}
    stamp = meta.format_time(h.clock.now() - 100)
    d["status"] = {
        "observedGeneration": 1,
        "replicas": 5,
        "updatedReplicas": 3,
        "readyReplicas": 2,
        "availableReplicas": 2,
        "unavailableReplicas": 3,
        "conditions": [
            {
                "type": "Available",
                "status": "True",
                "lastUpdateTime": stamp,
                "lastTransitionTime": stamp,
                "reason": "MinimumReplicasAvailable",
                "message": "Deployment has minimum availability.",
            },
            {
                "type": "Progressing",
                "status": "True",
                "lastUpdateTime": stamp,
                "lastTransitionTime": stamp,
                "reason": "ReplicaSetUpdated",
                "message": f'ReplicaSet "{new["metadata"]["name"]}" is progressing.',
            },
        ],
    }
    h.add(h.dc.deployments, d)
    h.add(h.dc.sets, old)
    h.add(h.dc.sets, new)
    await h.dc.sync(f"{NS}/web")
    # Nothing to do and no progress: no write, but a check when the deadline passes.
    assert h.client.writes == []
    assert [
        round(t - h.clock.monotonic()) for t, _, k in h.dc.queue._waiting if k == f"{NS}/web"
    ] == [501]

    h.clock.advance(501)
    await h.dc.sync(f"{NS}/web")
    (written,) = h.writes("status", "deployments")
    cond = next(c for c in written["status"]["conditions"] if c["type"] == "Progressing")
    assert (cond["status"], cond["reason"], cond["message"]) == (
        "False",
        "ProgressDeadlineExceeded",
        f'ReplicaSet "{new["metadata"]["name"]}" has timed out progressing.',
    )
    assert cond["lastUpdateTime"] == meta.format_time(h.clock.now())


async def test_pausing_records_an_unknown_progressing_condition() -> None:
    h = Harness()
    d = deployment(replicas=1, paused=True)
    rs = replica_set(d, "v1", 1, 1, 1, "2026-01-01T00:00:00Z")
    h.add(h.dc.deployments, d)
    h.add(h.dc.sets, rs)
    await h.dc.sync(f"{NS}/web")
    first = h.writes("status", "deployments")[0]["status"]
    (cond,) = [c for c in first["conditions"] if c["type"] == "Progressing"]
    assert (cond["status"], cond["reason"], cond["message"]) == (
        "Unknown",
        "DeploymentPaused",
        "Deployment is paused",
    )
    assert h.writes("create", "replicasets") == []


async def test_history_beyond_the_limit_is_deleted_oldest_first() -> None:
    h = Harness()
    d = deployment(replicas=1, revisionHistoryLimit=1)
    d["spec"]["template"]["spec"]["containers"][0]["image"] = "v4"
    sets = [replica_set(d, f"v{i}", 0, 0, i, f"2026-01-01T00:0{i}:00Z") for i in (1, 2, 3)]
    current = replica_set(d, "v4", 1, 1, 4, "2026-01-01T00:04:00Z")
    current["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] = "1"
    current["metadata"]["annotations"]["deployment.kubernetes.io/max-replicas"] = "3"
    d["status"] = {
        "observedGeneration": 1,
        "replicas": 1,
        "updatedReplicas": 1,
        "readyReplicas": 1,
        "availableReplicas": 1,
    }
    for obj in sets:
        h.add(h.dc.sets, obj)
    h.add(h.dc.sets, current)
    h.add(h.dc.deployments, d)
    await h.dc.sync(f"{NS}/web")
    deleted = [o["metadata"]["name"] for o in h.writes("delete", "replicasets")]
    assert deleted == [sets[0]["metadata"]["name"], sets[1]["metadata"]["name"]]
