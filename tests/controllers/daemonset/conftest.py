"""A DaemonSet controller on an in-memory API and a fake clock, stepped one sync at a time
(see the StatefulSet tests' harness: the same idea)."""

from __future__ import annotations

import types
from typing import Any

import pytest

from pilothouse.api import meta, resources
from pilothouse.api.meta import Obj
from pilothouse.client import events, fake, informer, lister
from pilothouse.client.clock import FakeClock
from pilothouse.controllers import daemonset
from pilothouse.controllers.daemonset import util

NS = "default"


def r(group: str, plural: str) -> resources.Resource:
    res = resources.DEFAULT.by_path(group, "v1", plural)
    assert res is not None
    return res


SETS = r("apps", "daemonsets")
PODS = r("", "pods")
NODES = r("", "nodes")
REVISIONS = r("apps", "controllerrevisions")


def daemon_set(name: str = "agent", *, image: str = "v1", **spec: Any) -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {
            "name": name,
            "namespace": NS,
            "annotations": {util.TEMPLATE_GENERATION_ANNOTATION: "1"},
        },
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "updateStrategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0},
            },
            "revisionHistoryLimit": 10,
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": image}]},
            },
            **spec,
        },
    }


class Harness:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.client = fake.FakeClient(clock=self.clock)
        client: Any = self.client
        factory = informer.InformerFactory(client)
        recorder = events.EventRecorder(client, component="daemonset-controller", clock=self.clock)
        self.events: list[tuple[str, str, str]] = []

        def record(obj: Obj, type: str, reason: str, message: str, **_: Any) -> None:
            self.events.append((type, reason, message))

        recorder.event = record  # type: ignore[method-assign]
        ctx = types.SimpleNamespace(
            client=client,
            informers=factory,
            clock=self.clock,
            resource=lambda g, v, p: resources.DEFAULT.by_path(g, v, p),
            recorder=lambda component: recorder,
        )
        self.ctrl = daemonset.DaemonSetController(ctx)

    def refresh(self) -> None:
        for inf, res in (
            (self.ctrl.sets, SETS),
            (self.ctrl.pods, PODS),
            (self.ctrl.nodes, NODES),
            (self.ctrl.revisions, REVISIONS),
        ):
            fresh = {lister.key_of(o): o for o in self.client.objects_of(res)}
            old = inf.indexer.replace(fresh)
            # The handlers run as the informer would run them (expectations depend on it).
            for key, obj in fresh.items():
                if key not in old:
                    inf._dispatch_add(obj)
                elif old[key]["metadata"].get("resourceVersion") != obj["metadata"].get(
                    "resourceVersion"
                ):
                    inf._dispatch_update(old[key], obj)
            for key, obj in old.items():
                if key not in fresh:
                    inf._dispatch_delete(obj)

    def node(
        self, name: str, *, labels: dict[str, str] | None = None, taints: list[Obj] | None = None
    ) -> None:
        body: Obj = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": {"kubernetes.io/hostname": name, **(labels or {})},
            },
            "spec": {"taints": taints} if taints else {},
        }
        self.client.put(NODES, body)
        self.refresh()

    def remove_node(self, name: str) -> None:
        del self.client.objects[("", "nodes", "", name)]
        self.refresh()

    async def create(self, ds: Obj) -> Obj:
        out: Obj = await self.client.create(SETS, ds, NS)
        self.refresh()
        return out

    async def step(self, name: str = "agent", *, refresh: bool = True) -> None:
        if refresh:
            self.refresh()
        self.client.writes.clear()
        await self.ctrl.sync(f"{NS}/{name}")
        if refresh:
            self.refresh()

    def get(self, res: resources.Resource, name: str) -> Obj:
        obj = self.client.objects.get((res.group, res.plural, NS, name))
        assert obj is not None, f"{res.plural}/{name} does not exist"
        return obj

    def pods(self) -> list[Obj]:
        return self.client.objects_of(PODS)

    def pods_by_node(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for p in self.pods():
            node = util.target_node_name(p) or ""
            out.setdefault(node, []).append(p["metadata"]["name"])
        return {k: sorted(v) for k, v in sorted(out.items())}

    def status(self, name: str = "agent") -> Obj:
        result: Obj = self.get(SETS, name).get("status") or {}
        return result

    def created_nodes(self) -> list[str]:
        return sorted(util.target_node_name(p) or "" for p in self.client.verbs("create", "pods"))

    def deleted(self) -> list[str]:
        return sorted(o["metadata"]["name"] for o in self.client.verbs("delete", "pods"))

    def schedule_and_run(self, *, ready: bool = True, ready_for: float = 3600.0) -> None:
        """What the scheduler and the nodes would do: bind every pod to its node, and
        mark pending ones Running (Ready since ``ready_for`` seconds ago)."""
        for p in self.pods():
            if p["metadata"].get("deletionTimestamp"):
                continue
            changed = meta.deep_copy(p)
            changed["spec"]["nodeName"] = util.target_node_name(p)
            if (p.get("status") or {}).get("phase") in (None, "Pending"):
                changed["status"] = {
                    "phase": "Running",
                    "conditions": [
                        {
                            "type": "Ready",
                            "status": "True" if ready else "False",
                            "lastTransitionTime": meta.format_time(self.clock.now() - ready_for),
                        }
                    ],
                }
            self.client.put(PODS, changed)
        self.refresh()

    def set_phase(self, pod_name: str, phase: str) -> None:
        p = meta.deep_copy(self.get(PODS, pod_name))
        p["status"] = {"phase": phase}
        self.client.put(PODS, p)
        self.refresh()

    async def update_template(self, name: str = "agent", **changes: Any) -> Obj:
        """Change the template as the API server would (bumping the template generation)."""
        ds = meta.deep_copy(self.get(SETS, name))
        ds["metadata"].pop("resourceVersion", None)
        container = ds["spec"]["template"]["spec"]["containers"][0]
        container.update(changes)
        generation = int(ds["metadata"]["annotations"][util.TEMPLATE_GENERATION_ANNOTATION]) + 1
        ds["metadata"]["annotations"][util.TEMPLATE_GENERATION_ANNOTATION] = str(generation)
        out: Obj = await self.client.update(SETS, ds)
        self.refresh()
        return out

    async def edit_spec(self, name: str = "agent", **spec: Any) -> Obj:
        ds = meta.deep_copy(self.get(SETS, name))
        ds["metadata"].pop("resourceVersion", None)
        ds["spec"].update(spec)
        out: Obj = await self.client.update(SETS, ds)
        self.refresh()
        return out


@pytest.fixture
def h() -> Harness:
    return Harness()


@pytest.fixture
def ds_obj() -> Any:
    return daemon_set
