"""The spreading defaults' selector (upstream's ``DefaultSelector``): what the pod's
Services and controlling ReplicaSet or StatefulSet select, merged — the owner's
selector parsed once per version of the owner."""

from __future__ import annotations

from typing import Any

from pilothouse.client import config, informer, rest
from pilothouse.scheduler import scheduler, types

from .builders import pod


def _rs(version: str, selector: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "web",
            "namespace": "default",
            "uid": "rs-uid",
            "resourceVersion": version,
        },
        "spec": {"selector": selector},
    }


def _owned(name: str) -> types.PodInfo:
    obj = pod(name, labels={"app": "web", "tier": "a"})
    obj["metadata"]["ownerReferences"] = [
        {"kind": "ReplicaSet", "name": "web", "uid": "rs-uid", "controller": True}
    ]
    return types.make_pod_info(obj)


async def test_the_owner_selector_follows_the_owner_version() -> None:
    client = rest.Client(config.local_socket("/nonexistent"))  # never asked
    sched = scheduler.Scheduler(client)
    sched._services = informer.Informer(client, scheduler.SERVICES)
    sched._replica_sets = informer.Informer(client, scheduler.REPLICA_SETS)
    sched._replica_sets.indexer.upsert("default/web", _rs("1", {"matchLabels": {"app": "web"}}))

    first = sched._default_selector(_owned("p1"))
    second = sched._default_selector(_owned("p2"))
    assert first is not None and second is not None
    assert str(first) == str(second) == "app=web"

    # The owner changed (a new resourceVersion): its selector is read again.
    sched._replica_sets.indexer.upsert(
        "default/web",
        _rs("2", {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["a"]}]}),
    )
    third = sched._default_selector(_owned("p3"))
    assert third is not None and str(third) == "tier in (a)"

    # A Service selecting the pod adds its labels.
    sched._services.indexer.upsert(
        "default/svc",
        {"metadata": {"name": "svc", "namespace": "default"}, "spec": {"selector": {"x": "1"}}},
    )
    assert str(sched._default_selector(_owned("p4"))) == "tier in (a)"
    sched._services.indexer.upsert(
        "default/svc",
        {"metadata": {"name": "svc", "namespace": "default"}, "spec": {"selector": {"app": "web"}}},
    )
    assert str(sched._default_selector(_owned("p5"))) == "app=web,tier in (a)"
    await client.close()
