"""A StatefulSet controller on an in-memory API and a fake clock, stepped one sync at a time.

``Harness.step()`` copies what the fake API holds into the controller's caches, runs
one ``sync`` and copies again — so each test sees exactly what one sync decides, as
upstream's controller tests do with their fake object manager.
"""

from __future__ import annotations

import types
from typing import Any

import pytest

from pilothouse.api import meta, resources
from pilothouse.api.meta import Obj
from pilothouse.client import events, fake, informer, lister
from pilothouse.client.clock import FakeClock
from pilothouse.controllers import statefulset

NS = "default"


def r(group: str, plural: str) -> resources.Resource:
    res = resources.DEFAULT.by_path(group, "v1", plural)
    assert res is not None
    return res


SETS = r("apps", "statefulsets")
PODS = r("", "pods")
CLAIMS = r("", "persistentvolumeclaims")
REVISIONS = r("apps", "controllerrevisions")


def stateful_set(
    name: str = "web",
    replicas: int = 3,
    *,
    image: str = "v1",
    policy: str = "OrderedReady",
    claims: bool = True,
    **spec: Any,
) -> Obj:
    body: Obj = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "podManagementPolicy": policy,
            "selector": {"matchLabels": {"app": name}},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
            "revisionHistoryLimit": 10,
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": image}]},
            },
            **spec,
        },
    }
    if claims:
        body["spec"]["volumeClaimTemplates"] = [
            {
                "metadata": {"name": "data", "labels": {"tier": "db"}},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "1Gi"}},
                },
                "status": {"phase": "Pending"},
            }
        ]
    return body


class Harness:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.client = fake.FakeClient(clock=self.clock)
        client: Any = self.client
        factory = informer.InformerFactory(client)
        recorder = events.EventRecorder(
            client, component="statefulset-controller", clock=self.clock
        )
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
        self.ctrl = statefulset.StatefulSetController(ctx)

    # --- the API and the caches --------------------------------------------------------
    def refresh(self) -> None:
        for inf, res in (
            (self.ctrl.sets, SETS),
            (self.ctrl.pods, PODS),
            (self.ctrl.claims, CLAIMS),
            (self.ctrl.revisions, REVISIONS),
        ):
            inf.indexer.replace({lister.key_of(o): o for o in self.client.objects_of(res)})

    async def create(self, sts: Obj) -> Obj:
        out: Obj = await self.client.create(SETS, sts, NS)
        self.refresh()
        return out

    async def step(self, name: str = "web") -> None:
        """One sync of the set, then a write count reset."""
        self.refresh()
        self.client.writes.clear()
        await self.ctrl.sync(f"{NS}/{name}")
        self.refresh()

    def get(self, res: resources.Resource, name: str) -> Obj:
        obj = self.client.objects.get((res.group, res.plural, NS, name))
        assert obj is not None, f"{res.plural}/{name} does not exist"
        return obj

    def pods(self) -> list[str]:
        return sorted(o["metadata"]["name"] for o in self.client.objects_of(PODS))

    def claims(self) -> list[str]:
        return sorted(o["metadata"]["name"] for o in self.client.objects_of(CLAIMS))

    def status(self, name: str = "web") -> Obj:
        result: Obj = self.get(SETS, name).get("status") or {}
        return result

    def writes(self, verb: str, plural: str) -> list[str]:
        return [o["metadata"]["name"] for o in self.client.verbs(verb, plural)]

    def reasons(self) -> list[str]:
        return [reason for _t, reason, _m in self.events]

    # --- what the node agent would do ----------------------------------------------------
    def run(self, *names: str, ready: bool = True, ready_for: float = 3600.0) -> None:
        """Mark pods Running (and Ready since ``ready_for`` seconds ago)."""
        for name in names:
            pod = meta.deep_copy(self.get(PODS, name))
            since = meta.format_time(self.clock.now() - ready_for)
            pod["status"] = {
                "phase": "Running",
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True" if ready else "False",
                        "lastTransitionTime": since,
                    }
                ],
            }
            self.client.put(PODS, pod)
        self.refresh()

    def set_phase(self, name: str, phase: str) -> None:
        pod = meta.deep_copy(self.get(PODS, name))
        pod["status"] = {"phase": phase}
        self.client.put(PODS, pod)
        self.refresh()

    def terminate(self, name: str) -> None:
        """The pod is being deleted (graceful): it has a deletionTimestamp."""
        pod = meta.deep_copy(self.get(PODS, name))
        pod["metadata"]["deletionTimestamp"] = meta.format_time(self.clock.now())
        self.client.put(PODS, pod)
        self.refresh()

    async def edit(self, name: str = "web", **spec: Any) -> Obj:
        sts = meta.deep_copy(self.get(SETS, name))
        sts["metadata"].pop("resourceVersion", None)
        sts["spec"].update(spec)
        out: Obj = await self.client.update(SETS, sts)
        self.refresh()
        return out

    async def set_image(self, image: str, name: str = "web") -> Obj:
        sts = meta.deep_copy(self.get(SETS, name))
        template = sts["spec"]["template"]
        template["spec"]["containers"][0]["image"] = image
        return await self.edit(name, template=template)


@pytest.fixture
def h() -> Harness:
    return Harness()


@pytest.fixture
def sts_obj() -> Any:
    """The StatefulSet builder."""
    return stateful_set
