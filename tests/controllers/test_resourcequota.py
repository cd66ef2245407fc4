"""The ResourceQuota controller: status from the objects, recounts when objects go, scopes,
object counts of any resource, and names no evaluator knows left out."""

from __future__ import annotations

from typing import Any

import pytest

from pilothouse.api import errors, resources
from pilothouse.client import rest
from pilothouse.controllers import resourcequota
from pilothouse.testing import eventually, namespace_set_up, running_controllers

Obj = dict[str, Any]


def r(group: str, plural: str, version: str = "v1") -> resources.Resource:
    res = resources.DEFAULT.by_path(group, version, plural)
    assert res is not None
    return res


QUOTAS = r("", "resourcequotas")


def pod(name: str, cpu: str = "", **spec: Any) -> Obj:
    c: Obj = {"name": "c", "image": "busybox"}
    if cpu:
        c["resources"] = {"requests": {"cpu": cpu}, "limits": {"cpu": cpu}}
    return {"metadata": {"name": name}, "spec": {"containers": [c], **spec}}


async def status_of(client: rest.Client, ns: str, name: str) -> Obj:
    quota = await client.get(QUOTAS, name, ns)
    status: Obj = quota.get("status") or {}
    return status


async def wait_used(client: rest.Client, ns: str, name: str, used: dict[str, str]) -> None:
    async def check() -> bool:
        status = await status_of(client, ns, name)
        return bool(status.get("used") == used)

    await eventually(check)


@pytest.fixture
async def controller(client: rest.Client) -> Any:
    async with running_controllers(
        client, {"resourcequota": resourcequota.ResourceQuotaController}
    ) as cm:
        yield cm


async def test_status_counts_what_is_there(client: rest.Client, ns: str, controller: Any) -> None:
    await namespace_set_up(client, ns)  # the server's kube-root-ca.crt ConfigMap is there
    await client.create(r("", "pods"), pod("a", "250m"), ns)
    await client.create(r("", "configmaps"), {"metadata": {"name": "cm"}}, ns)
    await client.create(
        r("", "services"),
        {"metadata": {"name": "s"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}},
        ns,
    )
    hard = {
        "pods": "10",
        "requests.cpu": "2",
        "limits.cpu": "4",
        "count/configmaps": "5",
        "services.nodeports": "3",
        "count/widgets.example.com": "1",
    }
    await client.create(QUOTAS, {"metadata": {"name": "q"}, "spec": {"hard": hard}}, ns)
    await wait_used(
        client,
        ns,
        "q",
        {
            "count/configmaps": "2",  # cm and the server's kube-root-ca.crt
            "limits.cpu": "250m",
            "pods": "1",
            "requests.cpu": "250m",
            "services.nodeports": "1",
        },
    )
    status = await status_of(client, ns, "q")
    assert status["hard"] == dict(sorted(hard.items()))  # unknown names stay in hard only


async def test_deletions_give_room_back(client: rest.Client, ns: str, controller: Any) -> None:
    await client.create(QUOTAS, {"metadata": {"name": "q"}, "spec": {"hard": {"pods": "1"}}}, ns)
    await wait_used(client, ns, "q", {"pods": "0"})
    await client.create(r("", "pods"), pod("first"), ns)
    with pytest.raises(errors.StatusError) as exc:
        await client.create(r("", "pods"), pod("second"), ns)
    assert exc.value.message == (
        'pods "second" is forbidden: exceeded quota: q, requested: pods=1, used: pods=1, '
        "limited: pods=1"
    )
    await client.delete(r("", "pods"), "first", ns, grace_period_seconds=0)
    await wait_used(client, ns, "q", {"pods": "0"})
    await client.create(r("", "pods"), pod("second"), ns)


async def test_finished_pods_stop_counting(client: rest.Client, ns: str, controller: Any) -> None:
    await client.create(
        QUOTAS, {"metadata": {"name": "q"}, "spec": {"hard": {"pods": "2", "count/pods": "5"}}}, ns
    )
    # Made before the quota has a status: admission charged nothing, the controller's
    # second count finds it.
    created = await client.create(r("", "pods"), pod("job"), ns)
    await wait_used(client, ns, "q", {"count/pods": "1", "pods": "1"})
    created["status"] = {"phase": "Succeeded"}
    await client.update_status(r("", "pods"), created)
    await wait_used(client, ns, "q", {"count/pods": "1", "pods": "0"})


async def test_scopes_and_changed_limits(client: rest.Client, ns: str, controller: Any) -> None:
    await client.create(r("", "pods"), pod("be"), ns)
    await client.create(r("", "pods"), pod("burst", "100m"), ns)
    await client.create(r("", "pods"), pod("deadline", activeDeadlineSeconds=60), ns)
    await client.create(
        QUOTAS,
        {"metadata": {"name": "be"}, "spec": {"hard": {"pods": "5"}, "scopes": ["BestEffort"]}},
        ns,
    )
    await client.create(
        QUOTAS,
        {
            "metadata": {"name": "term"},
            "spec": {
                "hard": {"pods": "5"},
                "scopeSelector": {
                    "matchExpressions": [{"scopeName": "Terminating", "operator": "Exists"}]
                },
            },
        },
        ns,
    )
    await wait_used(client, ns, "be", {"pods": "2"})
    await wait_used(client, ns, "term", {"pods": "1"})
    quota = await client.get(QUOTAS, "be", ns)
    quota["spec"]["hard"] = {"pods": "5", "count/pods": "9"}
    await client.update(QUOTAS, quota)
    await wait_used(client, ns, "be", {"count/pods": "2", "pods": "2"})


async def test_object_counts_of_other_resources(
    client: rest.Client, ns: str, controller: Any
) -> None:
    await client.create(
        QUOTAS,
        {"metadata": {"name": "q"}, "spec": {"hard": {"count/deployments.apps": "1"}}},
        ns,
    )
    await wait_used(client, ns, "q", {"count/deployments.apps": "0"})
    deployment = {
        "metadata": {"name": "d"},
        "spec": {
            "selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "b"}}, "spec": pod("x")["spec"]},
        },
    }
    await client.create(r("apps", "deployments"), deployment, ns)
    await wait_used(client, ns, "q", {"count/deployments.apps": "1"})
    deployment["metadata"]["name"] = "e"
    with pytest.raises(errors.StatusError) as exc:
        await client.create(r("apps", "deployments"), deployment, ns)
    assert exc.value.message == (
        'deployments.apps "e" is forbidden: exceeded quota: q, requested: '
        "count/deployments.apps=1, used: count/deployments.apps=1, limited: "
        "count/deployments.apps=1"
    )
    await client.delete(r("apps", "deployments"), "d", ns)
    await wait_used(client, ns, "q", {"count/deployments.apps": "0"})
