"""NodeResourcesFit and NodeResourcesBalancedAllocation (cases after upstream's fit_test.go,
least_allocated_test.go, most_allocated_test.go, balanced_allocation_test.go)."""

from __future__ import annotations

from pilothouse.scheduler import config, types
from pilothouse.scheduler.framework import interface as fw

from .builders import Harness, node, pod


def fit_profile(strategy: dict[str, object]) -> config.Profile:
    return config.Profile(args={"NodeResourcesFit": {"scoringStrategy": strategy}})


def test_pod_requests_take_the_largest_init_container_and_add_overhead() -> None:
    spec = {
        "initContainers": [
            {"name": "i1", "resources": {"requests": {"cpu": "2", "memory": "1G"}}},
            {"name": "i2", "resources": {"requests": {"cpu": "2", "memory": "3G"}}},
        ],
        "containers": [
            {"name": "c1", "resources": {"requests": {"cpu": "2", "memory": "1G"}}},
            {"name": "c2", "resources": {"requests": {"cpu": "1", "memory": "1G"}}},
        ],
        "overhead": {"cpu": "250m"},
    }
    assert types.pod_requests(spec) == {"cpu": 3250, "memory": 3_000_000_000}


def test_sidecars_run_beside_the_containers() -> None:
    spec = {
        "initContainers": [
            {"name": "side", "restartPolicy": "Always", "resources": {"requests": {"cpu": "1"}}},
            {"name": "init", "resources": {"requests": {"cpu": "2"}}},
        ],
        "containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}],
    }
    # sidecar + container = 2; the init container runs beside the sidecar: 3.
    assert types.pod_requests(spec)["cpu"] == 3000


def test_non_zero_requests_default_only_missing_values() -> None:
    spec = {"containers": [{"name": "c", "resources": {"requests": {"cpu": "0"}}}]}
    assert types.pod_requests(spec, non_zero=True) == {
        "cpu": 0,
        "memory": types.DEFAULT_MEMORY_REQUEST,
    }


def test_fit_filter_reasons() -> None:
    h = Harness().add_nodes(node("n1", cpu="1", memory="1Gi", pods=2))
    h.add_pod(pod("a", cpu="500m", memory="512Mi"), "n1")
    assert h.filter_mask(pod("ok", cpu="500m", memory="512Mi")) == {"n1": True}
    err = h.fit_error(pod("cpu", cpu="600m"))
    assert str(err).startswith("0/1 nodes are available: 1 Insufficient cpu.")
    err = h.fit_error(pod("both", cpu="600m", memory="600Mi"))
    assert "1 Insufficient cpu, 1 Insufficient memory." in str(err)
    h.add_pod(pod("b"), "n1")
    err = h.fit_error(pod("third"))
    assert str(err).startswith("0/1 nodes are available: 1 Too many pods.")


def test_request_beyond_allocatable_is_unresolvable() -> None:
    h = Harness().add_nodes(node("n1", cpu="2"))
    h.add_pod(pod("a", cpu="1500m"), "n1")
    resolvable = h.fit_error(pod("p", cpu="1"))
    assert resolvable.diagnosis.node_to_status[0].code == fw.Code.UNSCHEDULABLE
    hopeless = h.fit_error(pod("p", cpu="3"))
    assert hopeless.diagnosis.node_to_status[0].code == fw.Code.UNSCHEDULABLE_AND_UNRESOLVABLE


def test_init_container_larger_than_node_does_not_fit() -> None:
    h = Harness().add_nodes(node("n1", cpu="1"))
    assert h.filter_mask(pod("p", cpu="100m", init_cpu="2")) == {"n1": False}


def test_extended_resources_and_ignored_resources() -> None:
    h = Harness().add_nodes(node("gpu", extra={"example.com/gpu": "2"}), node("plain"))
    gpu_pod = pod(
        "p",
        spec={"containers": [{"name": "c", "resources": {"requests": {"example.com/gpu": "1"}}}]},
    )
    assert h.filter_mask(gpu_pod) == {"gpu": True, "plain": False}
    assert "1 Insufficient example.com/gpu" in str(
        Harness().add_nodes(node("plain")).fit_error(gpu_pod)
    )
    ignoring = Harness(
        config.Profile(args={"NodeResourcesFit": {"ignoredResources": ["example.com/gpu"]}})
    )
    ignoring.add_nodes(node("plain"))
    assert ignoring.filter_mask(gpu_pod) == {"plain": True}


def test_least_allocated_prefers_free_nodes() -> None:
    h = Harness().add_nodes(
        node("n1", cpu="4", memory="10000"), node("n2", cpu="6", memory="10000")
    )
    scores = h.scores(pod("p", cpu="1", memory="2000"), "NodeResourcesFit")
    assert scores == {"n1": 77, "n2": 81}


def test_most_allocated_prefers_used_nodes() -> None:
    h = Harness(fit_profile({"type": "MostAllocated"}))
    h.add_nodes(node("n1", cpu="4", memory="10000"), node("n2", cpu="6", memory="10000"))
    assert h.scores(pod("p", cpu="1", memory="2000"), "NodeResourcesFit") == {"n1": 22, "n2": 18}


def test_most_allocated_caps_at_capacity() -> None:
    h = Harness(fit_profile({"type": "MostAllocated", "resources": [{"name": "cpu", "weight": 1}]}))
    h.add_nodes(node("n1", cpu="1"))
    h.add_pod(pod("a", cpu="2"), "n1")
    assert h.scores(pod("p", cpu="1"), "NodeResourcesFit") == {"n1": 100}


def test_requested_to_capacity_ratio_follows_the_shape() -> None:
    shape = [{"utilization": 0, "score": 10}, {"utilization": 100, "score": 0}]
    h = Harness(
        fit_profile(
            {"type": "RequestedToCapacityRatio", "requestedToCapacityRatio": {"shape": shape}}
        )
    )
    h.add_nodes(node("n1", cpu="4", memory="10000"), node("n2", cpu="6", memory="10000"))
    # cpu 25% used → 75, memory 20% → 80: mean 77.5 rounds to 78; n2: 84 and 80 → 82.
    assert h.scores(pod("p", cpu="1", memory="2000"), "NodeResourcesFit") == {"n1": 78, "n2": 82}


def test_weights_change_the_mean() -> None:
    h = Harness(
        fit_profile(
            {
                "type": "LeastAllocated",
                "resources": [{"name": "cpu", "weight": 3}, {"name": "memory", "weight": 1}],
            }
        )
    )
    h.add_nodes(node("n1", cpu="4", memory="10000"))
    # cpu 75 * 3 + memory 80 * 1 = 305 / 4 = 76
    assert h.scores(pod("p", cpu="1", memory="2000"), "NodeResourcesFit") == {"n1": 76}


def test_scores_follow_usage_changes() -> None:
    h = Harness().add_nodes(
        node("n1", cpu="4", memory="10000"), node("n2", cpu="4", memory="10000")
    )
    p = pod("p", cpu="1", memory="2000")
    assert h.scores(p, "NodeResourcesFit") == {"n1": 77, "n2": 77}
    h.add_pod(pod("a", cpu="1", memory="2000"), "n1")
    assert h.scores(p, "NodeResourcesFit") == {"n1": 55, "n2": 77}  # cpu 50, memory 60


def test_balanced_allocation() -> None:
    h = Harness().add_nodes(
        node("n1", cpu="4", memory="10000"), node("n2", cpu="6", memory="10000")
    )
    # n1: 75% cpu, 50% memory → 1 - 0.125; n2: 50% and 50% → 100.
    assert h.scores(pod("p", cpu="3", memory="5000"), "NodeResourcesBalancedAllocation") == {
        "n1": 87,
        "n2": 100,
    }


def test_balanced_allocation_follows_usage_changes() -> None:
    """Kept per pod shape across pods, recomputed for the nodes whose usage changed."""
    h = Harness().add_nodes(
        node("n1", cpu="4", memory="10000"), node("n2", cpu="6", memory="10000")
    )
    p = pod("p", cpu="3", memory="5000")
    assert h.scores(p, "NodeResourcesBalancedAllocation") == {"n1": 87, "n2": 100}
    h.add_pod(pod("a", cpu="1", memory="1000"), "n2")
    # n2: 4/6 cpu, 6000/10000 memory → 1 - 0.0333; n1 as before.
    assert h.scores(p, "NodeResourcesBalancedAllocation") == {"n1": 87, "n2": 96}
    h.cache.remove_pod("default/a")
    assert h.scores(p, "NodeResourcesBalancedAllocation") == {"n1": 87, "n2": 100}
