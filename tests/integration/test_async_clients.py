"""The asyncio clients the mission names — ``kubernetes-asyncio`` and ``kr8s`` —
against a real server, unchanged: create, list with selectors, watch, patch,
scale, stale-update conflicts and delete.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import kr8s.asyncio as kr8s
import pytest
from kr8s.asyncio.objects import ConfigMap, Deployment
from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.rest import ApiException

from pilothouse import testing


def _deployment(name: str) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "web", "image": "busybox:1.36"}]},
            },
        },
    }


@pytest.fixture
async def k8s(api_server: testing.ServerThread) -> AsyncIterator[client.ApiClient]:
    cfg = client.Configuration()
    await config.load_kube_config(config_file=str(api_server.kubeconfig), client_configuration=cfg)
    async with client.ApiClient(cfg) as api_client:
        yield api_client


async def test_kubernetes_asyncio(k8s: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(k8s)
    created = await core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="one", labels={"env": "prod"}), data={"k": "1"}
        ),
    )
    await core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "two", "labels": {"env": "dev"}}}
    )
    prod = await core.list_namespaced_config_map(namespace, label_selector="env=prod")
    assert [i.metadata.name for i in prod.items] == ["one"]

    # Watch from the create's resourceVersion: the patch below, and nothing older.
    seen: list[tuple[str, str]] = []

    async def follow() -> None:
        w = watch.Watch()
        async with w.stream(
            core.list_namespaced_config_map,
            namespace,
            resource_version=created.metadata.resource_version,
            timeout_seconds=10,
        ) as stream:
            async for event in stream:
                seen.append((event["type"], event["object"].metadata.name))
                if event["type"] == "MODIFIED":
                    w.stop()

    follower = asyncio.create_task(follow())
    await asyncio.sleep(0.3)
    patched = await core.patch_namespaced_config_map(
        "one", namespace, {"data": {"k": "2"}, "metadata": {"labels": {"patched": "yes"}}}
    )
    assert patched.data == {"k": "2"} and patched.metadata.labels["patched"] == "yes"
    await asyncio.wait_for(follower, 10)
    assert ("ADDED", "two") in seen and ("MODIFIED", "one") in seen
    assert ("ADDED", "one") not in seen  # older than the watch's resourceVersion

    stale = created
    stale.data = {"k": "stale"}
    with pytest.raises(ApiException) as conflict:
        await core.replace_namespaced_config_map("one", namespace, stale)
    assert conflict.value.status == 409

    apps = client.AppsV1Api(k8s)
    await apps.create_namespaced_deployment(namespace, _deployment("web"))
    await apps.patch_namespaced_deployment_scale("web", namespace, {"spec": {"replicas": 3}})
    scale = await apps.read_namespaced_deployment_scale("web", namespace)
    assert scale.spec.replicas == 3

    await core.delete_namespaced_config_map("one", namespace)
    with pytest.raises(ApiException) as missing:
        await core.read_namespaced_config_map("one", namespace)
    assert missing.value.status == 404


async def test_kr8s(api_server: testing.ServerThread, namespace: str) -> None:
    api = await kr8s.api(kubeconfig=str(api_server.kubeconfig))
    version = await api.version()
    assert version["major"] == "1" and version["minor"] == "32"

    cm = await ConfigMap(
        {"metadata": {"name": "settings", "labels": {"team": "a"}}, "data": {"mode": "fast"}},
        namespace=namespace,
        api=api,
    )
    await cm.create()
    await ConfigMap(
        {"metadata": {"name": "other", "labels": {"team": "b"}}}, namespace=namespace, api=api
    ).create()
    found = [
        o
        async for o in kr8s.get(
            "configmaps", namespace=namespace, label_selector={"team": "a"}, api=api
        )
    ]
    assert [o.name for o in found] == ["settings"]

    await cm.patch({"data": {"mode": "slow"}})
    await cm.label({"reviewed": "true"})
    await cm.refresh()
    assert cm.raw["data"] == {"mode": "slow"} and cm.labels["reviewed"] == "true"

    deploy = await Deployment(_deployment("api"), namespace=namespace, api=api)
    await deploy.create()
    await deploy.scale(2)
    await deploy.refresh()
    assert deploy.raw["spec"]["replicas"] == 2

    await cm.delete()
    assert not await cm.exists()
