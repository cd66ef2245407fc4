"""The HPA controller against a real API server: the Deployment's scale subresource,
metrics from a fake resource-metrics source, conditions and events as upstream's."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from pilothouse.api import meta, resources
from pilothouse.client import rest
from pilothouse.controllers import manager
from pilothouse.controllers.podautoscaler import HorizontalPodAutoscalerController
from pilothouse.controllers.podautoscaler.metrics import FakeMetrics
from pilothouse.testing import eventually

HPA = resources.DEFAULT.by_path("autoscaling", "v2", "horizontalpodautoscalers")
HPA_V1 = resources.DEFAULT.by_path("autoscaling", "v1", "horizontalpodautoscalers")
DEPLOYMENTS = resources.DEFAULT.by_path("apps", "v1", "deployments")
PODS = resources.DEFAULT.by_path("", "v1", "pods")
EVENTS = resources.DEFAULT.by_path("", "v1", "events")
assert HPA and HPA_V1 and DEPLOYMENTS and PODS and EVENTS


@pytest.fixture
def fake_metrics() -> FakeMetrics:
    return FakeMetrics(timestamp=time.time())


@pytest.fixture
async def controller(client: rest.Client, fake_metrics: FakeMetrics) -> AsyncIterator[None]:
    cm = manager.ControllerManager(
        client,
        factories={
            "horizontalpodautoscaling": lambda ctx: HorizontalPodAutoscalerController(
                ctx, sync_period=0.2, metrics=fake_metrics
            )
        },
    )
    task = asyncio.create_task(cm.run())
    await asyncio.wait_for(cm.ready.wait(), 20)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def workload(client: rest.Client, ns: str, name: str, replicas: int) -> list[str]:
    """A Deployment of ``replicas`` and as many Running, Ready pods of it (no controllers)."""
    labels = {"app": name}
    container = {"name": "c", "image": "busybox", "resources": {"requests": {"cpu": "500m"}}}
    await client.create(
        DEPLOYMENTS,
        {
            "metadata": {"name": name},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
            },
        },
        ns,
    )
    names = []
    for i in range(replicas):
        pod = await client.create(
            PODS,
            {
                "metadata": {"name": f"{name}-{i}", "labels": labels},
                "spec": {"containers": [container]},
            },
            ns,
        )
        started = meta.format_time(time.time() - 600)
        pod["status"] = {
            "phase": "Running",
            "startTime": started,
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": started}],
        }
        await client.update_status(PODS, pod)
        names.append(pod["metadata"]["name"])
    return names


def hpa(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": 1,
            "maxReplicas": 10,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 50},
                    },
                }
            ],
            **spec,
        },
    }


async def replicas_of(client: rest.Client, ns: str, name: str) -> int:
    return int((await client.get(DEPLOYMENTS, name, ns))["spec"]["replicas"])


async def events_of(client: rest.Client, ns: str, name: str) -> list[tuple[str, str]]:
    items = (await client.list(EVENTS, ns))["items"]
    return [(e["reason"], e["message"]) for e in items if e["involvedObject"]["name"] == name]


async def has_event(client: rest.Client, ns: str, name: str, event: tuple[str, str]) -> None:
    """Events are written in the background: wait for this one."""

    async def seen() -> bool:
        return event in await events_of(client, ns, name)

    await eventually(seen, timeout=10)


def conditions(obj: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    return {
        c["type"]: (c["status"], c["reason"], c["message"])
        for c in (obj.get("status") or {}).get("conditions") or []
    }


async def test_scales_out_on_high_cpu_within_the_scale_up_limit(
    client: rest.Client, ns: str, fake_metrics: FakeMetrics, controller: None
) -> None:
    pods = await workload(client, ns, "web", 2)
    fake_metrics.usage[ns] = {p: {"cpu": 900} for p in pods}  # 180 % of 500m
    await client.create(HPA, hpa("web"), ns)

    async def scaled() -> bool:
        return await replicas_of(client, ns, "web") == 4

    await eventually(scaled, timeout=10)

    async def status_written() -> dict[str, Any] | None:
        # The scale is written first, the HPA's status right after.
        status = (await client.get(HPA, "web", ns)).get("status") or {}
        return status if status.get("desiredReplicas") == 4 else None

    status = await eventually(status_written, timeout=10)
    assert status["currentMetrics"] == [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "current": {"averageUtilization": 180, "averageValue": "900m"},
            },
        }
    ]
    assert status["desiredReplicas"] == 4 and status["lastScaleTime"]
    c = conditions({"status": status})
    assert c["AbleToScale"][:2] == ("True", "SucceededRescale")
    assert c["ScalingActive"] == (
        "True",
        "ValidMetricFound",
        "the HPA was able to successfully calculate a replica count from cpu resource utilization (percentage of request)",
    )
    assert c["ScalingLimited"] == (
        "True",
        "ScaleUpLimit",
        "the desired replica count is increasing faster than the maximum scale rate",
    )
    await has_event(
        client,
        ns,
        "web",
        (
            "SuccessfulRescale",
            "New size: 4; reason: cpu resource utilization (percentage of request) above target",
        ),
    )
    # The v1 view shows the same autoscaler.
    v1 = await client.get(HPA_V1, "web", ns)
    assert v1["spec"]["targetCPUUtilizationPercentage"] == 50
    assert v1["status"]["currentCPUUtilizationPercentage"] == 180


async def test_scales_in_with_behavior_after_its_window(
    client: rest.Client, ns: str, fake_metrics: FakeMetrics, controller: None
) -> None:
    pods = await workload(client, ns, "idle", 4)
    fake_metrics.usage[ns] = {p: {"cpu": 50} for p in pods}  # 10 %
    behavior = {
        "scaleDown": {
            "stabilizationWindowSeconds": 1,
            "policies": [{"type": "Pods", "value": 2, "periodSeconds": 60}],
        }
    }
    await client.create(HPA, hpa("idle", behavior=behavior), ns)

    async def scaled_in() -> bool:
        return await replicas_of(client, ns, "idle") == 2

    await eventually(scaled_in, timeout=10)
    await asyncio.sleep(1.0)
    # Two pods a minute at most: it stays at 2 although 1 is recommended.
    assert await replicas_of(client, ns, "idle") == 2

    async def limited() -> bool:
        c = conditions(await client.get(HPA, "idle", ns))
        return c.get("ScalingLimited", ("", "", ""))[1] == "ScaleDownLimit"

    await eventually(limited, timeout=10)


async def test_missing_metrics_are_reported(
    client: rest.Client, ns: str, fake_metrics: FakeMetrics, controller: None
) -> None:
    await workload(client, ns, "dark", 1)
    fake_metrics.error = "no metrics returned from resource metrics API"
    await client.create(HPA, hpa("dark"), ns)
    message = (
        "failed to get cpu utilization: unable to get metrics for resource cpu: "
        "no metrics returned from resource metrics API"
    )

    async def reported() -> dict[str, Any] | None:
        c = conditions(await client.get(HPA, "dark", ns))
        return c if "ScalingActive" in c else None

    c = await eventually(reported, timeout=10)
    assert c["ScalingActive"] == (
        "False",
        "FailedGetResourceMetric",
        f"the HPA was unable to compute the replica count: {message}",
    )
    await has_event(client, ns, "dark", ("FailedGetResourceMetric", message))
    await has_event(
        client,
        ns,
        "dark",
        (
            "FailedComputeMetricsReplicas",
            f"invalid metrics (1 invalid out of 1), first error is: failed to get cpu resource metric value: {message}",
        ),
    )
    assert await replicas_of(client, ns, "dark") == 1


async def test_unknown_target_kind_cannot_scale(
    client: rest.Client, ns: str, controller: None
) -> None:
    bad = hpa("ghost")
    bad["spec"]["scaleTargetRef"] = {"apiVersion": "example.com/v1", "kind": "Widget", "name": "w"}
    await client.create(HPA, bad, ns)

    async def reported() -> dict[str, Any] | None:
        c = conditions(await client.get(HPA, "ghost", ns))
        return c if "AbleToScale" in c else None

    c = await eventually(reported, timeout=10)
    assert c["AbleToScale"] == (
        "False",
        "FailedGetScale",
        "the HPA controller was unable to get the target's current scale: unable to determine "
        'resource for scale target reference: no matches for kind "Widget" in group "example.com"',
    )
