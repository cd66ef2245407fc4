"""Configuration files, the framework's plugin sets, and the generic algorithm."""

from __future__ import annotations

import pytest

from pilothouse.scheduler import algorithm, config, registry
from pilothouse.scheduler.framework import runtime

from .builders import Harness, node, pod


def framework(doc: dict[str, object]) -> runtime.Framework:
    from pilothouse.scheduler import cache

    profile = config.parse(doc).profiles[0]
    return runtime.Framework(
        profile, registry.default_registry(), runtime.Handle(cache=cache.Cache())
    )


def names(plugins: list[object]) -> list[str]:
    return [p.name for p in plugins]  # type: ignore[attr-defined]


def test_default_profile_matches_upstream() -> None:
    fwk = framework({})
    assert names(fwk.filter) == [
        "NodeUnschedulable",
        "NodeName",
        "TaintToleration",
        "NodeAffinity",
        "NodePorts",
        "NodeResourcesFit",
        "VolumeBinding",
        "PodTopologySpread",
        "InterPodAffinity",
    ]
    assert names(fwk.reserve) == ["VolumeBinding"]
    assert names(fwk.pre_bind) == ["VolumeBinding"]
    assert [(p.name, w) for p, w in fwk.score] == [
        ("TaintToleration", 3),
        ("NodeAffinity", 2),
        ("NodeResourcesFit", 1),
        ("PodTopologySpread", 2),
        ("InterPodAffinity", 2),
        ("NodeResourcesBalancedAllocation", 1),
    ]
    assert names(fwk.post_filter) == ["DefaultPreemption"]
    assert names(fwk.bind) == ["DefaultBinder"]
    assert fwk.queue_sort.name == "PrioritySort"


def test_multi_point_disable_and_reweight() -> None:
    fwk = framework(
        {
            "profiles": [
                {
                    "plugins": {
                        "multiPoint": {
                            "enabled": [{"name": "NodeResourcesFit", "weight": 5}],
                            "disabled": [{"name": "InterPodAffinity"}],
                        },
                        "score": {"disabled": [{"name": "NodeResourcesBalancedAllocation"}]},
                    }
                }
            ]
        }
    )
    assert "InterPodAffinity" not in fwk.plugins
    assert dict((p.name, w) for p, w in fwk.score)["NodeResourcesFit"] == 5
    assert "NodeResourcesBalancedAllocation" not in names([p for p, _ in fwk.score])


def test_disable_all_scores_then_enable_one() -> None:
    fwk = framework(
        {
            "profiles": [
                {
                    "plugins": {
                        "score": {
                            "disabled": [{"name": "*"}],
                            "enabled": [{"name": "NodeResourcesFit", "weight": 2}],
                        }
                    }
                }
            ]
        }
    )
    assert [(p.name, w) for p, w in fwk.score] == [("NodeResourcesFit", 2)]


def test_unknown_plugin_and_bad_values_are_errors() -> None:
    with pytest.raises(ValueError, match='plugin "Nope" does not exist'):
        framework({"profiles": [{"plugins": {"filter": {"enabled": [{"name": "Nope"}]}}}]})
    with pytest.raises(config.ConfigError, match="percentageOfNodesToScore"):
        config.parse({"percentageOfNodesToScore": 101})
    with pytest.raises(config.ConfigError, match="Duplicate value"):
        config.parse({"profiles": [{"schedulerName": "a"}, {"schedulerName": "a"}]})
    with pytest.raises(config.ConfigError, match="apiVersion"):
        config.parse({"apiVersion": "kubescheduler.config.k8s.io/v1beta1"})
    with pytest.raises(ValueError, match="Unsupported value"):
        framework(
            {
                "profiles": [
                    {
                        "pluginConfig": [
                            {
                                "name": "NodeResourcesFit",
                                "args": {"scoringStrategy": {"type": "Random"}},
                            }
                        ]
                    }
                ]
            }
        )


def test_load_file(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "c.yaml"
    path.write_text(
        "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\n"
        "podInitialBackoffSeconds: 2\nprofiles:\n- schedulerName: packer\n  percentageOfNodesToScore: 30\n"
    )
    cfg = config.load(path)
    assert cfg.pod_initial_backoff_seconds == 2
    assert cfg.profiles[0].scheduler_name == "packer"
    assert cfg.profiles[0].percentage_of_nodes_to_score == 30
    with pytest.raises(config.ConfigError, match="cannot read"):
        config.load(path.parent / "missing.yaml")


@pytest.mark.parametrize(
    ("nodes", "percentage", "expected"),
    [
        (10, 0, 10),
        (99, 0, 99),
        (100, 0, 50),
        (1000, 0, 420),
        (5000, 0, 500),
        (6000, 0, 300),
        (10000, 0, 500),
        (1000, 10, 100),
        (1000, 50, 500),
        (100, 1, 100),
    ],
)
def test_num_feasible_nodes_to_find(nodes: int, percentage: int, expected: int) -> None:
    assert algorithm.num_feasible_nodes_to_find(percentage, nodes) == max(
        min(expected, nodes), min(nodes, 100)
    )


def test_large_clusters_are_sampled_round_robin() -> None:
    h = Harness()
    for i in range(400):
        h.cache.add_node(node(f"n{i:03}"))
    first = h.algorithm.next_start_node_index
    h.schedule(pod("p", cpu="100m"))
    # 400 nodes: 50 - 3 = 47% → 188 nodes examined, and the next pod starts after them.
    assert h.algorithm.next_start_node_index == (first + 188) % 400


def test_fit_error_message_counts_reasons_sorted() -> None:
    h = Harness().add_nodes(
        node("a", cpu="1"),
        node("b", cpu="1"),
        node("c", taints=[{"key": "k", "value": "v", "effect": "NoSchedule"}]),
    )
    assert str(h.fit_error(pod("p", cpu="2"))) == (
        "0/3 nodes are available: 1 node(s) had untolerated taint {k: v}, 2 Insufficient cpu."
    )


def test_no_nodes() -> None:
    with pytest.raises(algorithm.NoNodesError, match="no nodes available to schedule pods"):
        Harness().schedule(pod("p"))


def test_ties_are_broken_at_random() -> None:
    chosen = set()
    for seed in range(20):
        h = Harness(seed=seed).add_nodes(node("a"), node("b"), node("c"))
        chosen.add(h.schedule(pod("p", cpu="100m")))
    assert chosen == {"a", "b", "c"}
