"""The replica calculator and the normalization of recommendations, as upstream's."""

from __future__ import annotations

from typing import Any

import pytest

from pilothouse.api import meta
from pilothouse.controllers.podautoscaler import normalize, replicas
from pilothouse.controllers.podautoscaler.metrics import PodMetric

NOW = 1_800_000_000.0


def pod(
    name: str, *, cpu: str = "500m", phase: str = "Running", ready: bool = True, age: float = 600
) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]},
        "status": {
            "phase": phase,
            "startTime": meta.format_time(NOW - age),
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True" if ready else "False",
                    "lastTransitionTime": meta.format_time(NOW - age + 5),
                }
            ],
        },
    }


def usage(**milli: int) -> dict[str, PodMetric]:
    return {name: PodMetric(value, NOW, 15.0) for name, value in milli.items()}


def test_scales_by_the_usage_ratio() -> None:
    p = replicas.resource_replicas(
        current=2,
        target_utilization=50,
        resource="cpu",
        pods=[pod("a"), pod("b")],
        metrics=usage(a=900, b=900),
        now=NOW,
    )
    assert (p.replicas, p.utilization, p.raw) == (8, 180, 900)


def test_within_tolerance_keeps_the_count() -> None:
    p = replicas.resource_replicas(
        current=2,
        target_utilization=50,
        resource="cpu",
        pods=[pod("a"), pod("b")],
        metrics=usage(a=270, b=270),
        now=NOW,
    )
    assert (p.replicas, p.utilization) == (2, 54)


def test_missing_metrics_count_as_full_use_on_a_scale_down() -> None:
    # a and b use 10 %; c has no metric: counted at 100 % of its request, 3 pods stay 3.
    p = replicas.resource_replicas(
        current=3,
        target_utilization=50,
        resource="cpu",
        pods=[pod("a"), pod("b"), pod("c")],
        metrics=usage(a=50, b=50),
        now=NOW,
    )
    assert p.replicas == 3


def test_unready_pods_count_as_idle_on_a_scale_up() -> None:
    # a uses 100 %, b is unready: (100 + 0) / 2 = 50 % -> within tolerance of a 50 % target.
    p = replicas.resource_replicas(
        current=2,
        target_utilization=50,
        resource="cpu",
        pods=[pod("a"), pod("b", ready=False, age=30)],
        metrics=usage(a=500, b=500),
        now=NOW,
    )
    assert p.replicas == 2


def test_errors_say_what_upstream_says() -> None:
    with pytest.raises(
        replicas.ReplicaCalculationError,
        match="no pods returned by selector while calculating replica count",
    ):
        replicas.resource_replicas(
            current=1, target_utilization=50, resource="cpu", pods=[], metrics={}, now=NOW
        )
    with pytest.raises(
        replicas.ReplicaCalculationError,
        match=r"did not receive metrics for targeted pods \(pods might be unready\)",
    ):
        replicas.resource_replicas(
            current=1,
            target_utilization=50,
            resource="cpu",
            pods=[pod("a", phase="Pending")],
            metrics=usage(a=1),
            now=NOW,
        )
    no_request = pod("a")
    no_request["spec"]["containers"][0]["resources"] = {}
    with pytest.raises(
        replicas.ReplicaCalculationError, match="missing request for cpu in container c of Pod a"
    ):
        replicas.resource_replicas(
            current=1,
            target_utilization=50,
            resource="cpu",
            pods=[no_request],
            metrics=usage(a=1),
            now=NOW,
        )


def test_average_value_target() -> None:
    p = replicas.raw_resource_replicas(
        current=2,
        target_usage=100_000,
        resource="memory",
        pods=[pod("a"), pod("b")],
        metrics=usage(a=300_000, b=100_000),
        now=NOW,
    )
    assert (p.replicas, p.raw) == (4, 200_000)


def test_without_behavior_scale_down_is_stabilized_for_five_minutes() -> None:
    h = normalize.History()
    up = normalize.without_behavior(h, "k", current=2, desired=8, minimum=1, maximum=10, now=NOW)
    assert (up.replicas, up.limited, up.limited_reason) == (4, True, "ScaleUpLimit")
    down = normalize.without_behavior(
        h, "k", current=4, desired=1, minimum=1, maximum=10, now=NOW + 60
    )
    # The highest recommendation of the last five minutes wins, even over a drop to 1
    # (upstream keeps the 8 it recommended, though the scale-up limit applied 4).
    assert (down.replicas, down.able_reason) == (8, "ScaleDownStabilized")
    later = normalize.without_behavior(
        h, "k", current=4, desired=1, minimum=1, maximum=10, now=NOW + 400
    )
    assert later.replicas == 1 and later.able_reason == "ReadyForNewScale"


def test_behavior_policies_limit_the_rate() -> None:
    h = normalize.History()
    behavior = {
        "scaleUp": {
            "stabilizationWindowSeconds": 0,
            "selectPolicy": "Max",
            "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}],
        },
        "scaleDown": {
            "stabilizationWindowSeconds": 0,
            "selectPolicy": "Max",
            "policies": [{"type": "Percent", "value": 50, "periodSeconds": 60}],
        },
    }
    first = normalize.with_behavior(
        h, "k", behavior, current=2, desired=6, minimum=1, maximum=10, now=NOW
    )
    assert (first.replicas, first.limited_reason) == (3, "ScaleUpLimit")
    h.record_scale("k", behavior, 2, 3, NOW)
    # Within the same minute the one pod allowed has been added: no more.
    again = normalize.with_behavior(
        h, "k", behavior, current=3, desired=6, minimum=1, maximum=10, now=NOW + 10
    )
    assert again.replicas == 3
    after = normalize.with_behavior(
        h, "k", behavior, current=3, desired=6, minimum=1, maximum=10, now=NOW + 70
    )
    assert after.replicas == 4
    down = normalize.with_behavior(
        h, "k", behavior, current=4, desired=1, minimum=1, maximum=10, now=NOW + 140
    )
    assert (down.replicas, down.limited_reason) == (2, "ScaleDownLimit")


def test_behavior_stabilization_window_on_scale_down() -> None:
    h = normalize.History()
    behavior = {
        "scaleUp": {
            "stabilizationWindowSeconds": 0,
            "selectPolicy": "Max",
            "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
        },
        "scaleDown": {
            "stabilizationWindowSeconds": 30,
            "selectPolicy": "Max",
            "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
        },
    }
    normalize.with_behavior(h, "k", behavior, current=4, desired=4, minimum=1, maximum=10, now=NOW)
    held = normalize.with_behavior(
        h, "k", behavior, current=4, desired=1, minimum=1, maximum=10, now=NOW + 10
    )
    assert (held.replicas, held.able_reason) == (4, "ScaleDownStabilized")
    released = normalize.with_behavior(
        h, "k", behavior, current=4, desired=1, minimum=1, maximum=10, now=NOW + 45
    )
    assert released.replicas == 1
