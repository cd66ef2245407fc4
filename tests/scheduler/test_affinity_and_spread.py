"""PodTopologySpread and InterPodAffinity (cases after upstream's filtering_test.go and
scoring_test.go for both plugins)."""

from __future__ import annotations

from typing import Any

from pilothouse.api import selectors
from pilothouse.scheduler import config

from .builders import Harness, node, pod

ZONE = "topology.kubernetes.io/zone"
HOST = "kubernetes.io/hostname"


def zones() -> Harness:
    return Harness().add_nodes(
        node("a1", labels={ZONE: "a"}),
        node("a2", labels={ZONE: "a"}),
        node("b1", labels={ZONE: "b"}),
        node("nolabel"),
    )


def spread(
    max_skew: int = 1, when: str = "DoNotSchedule", key: str = ZONE, **extra: Any
) -> dict[str, Any]:
    return {
        "maxSkew": max_skew,
        "topologyKey": key,
        "whenUnsatisfiable": when,
        "labelSelector": {"matchLabels": {"app": "web"}},
        **extra,
    }


def web(name: str = "p", *constraints: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return pod(
        name, labels={"app": "web"}, spec={"topologySpreadConstraints": list(constraints)}, **kw
    )


def test_spread_filter_rejects_the_crowded_zone_and_unlabelled_nodes() -> None:
    h = zones()
    h.add_pod(web("e1"), "a1")
    h.add_pod(web("e2"), "a2")
    h.add_pod(pod("other", labels={"app": "db"}), "b1")  # does not match the selector
    assert h.filter_mask(web("p", spread())) == {
        "a1": False,
        "a2": False,
        "b1": True,
        "nolabel": False,
    }
    pinned = pod(
        "p",
        labels={"app": "web"},
        spec={"topologySpreadConstraints": [spread()], "nodeSelector": {ZONE: "a"}},
    )
    # Only zone a is eligible (node affinity policy Honor), so its minimum is its own count: fits.
    assert h.filter_mask(pinned)["a1"] is True


def test_missing_label_is_unresolvable() -> None:
    err = Harness().add_nodes(node("nolabel")).fit_error(web("p", spread()))
    assert str(err).startswith(
        "0/1 nodes are available: 1 node(s) didn't match pod topology spread constraints (missing required label)."
    )


def test_max_skew_allows_some_imbalance() -> None:
    h = zones()
    h.add_pod(web("e1"), "a1")
    assert h.filter_mask(web("p", spread(max_skew=2))) == {
        "a1": True,
        "a2": True,
        "b1": True,
        "nolabel": False,
    }


def test_terminating_pods_are_not_counted() -> None:
    h = zones()
    gone = web("e1")
    gone["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    h.add_pod(gone, "a1")
    assert h.filter_mask(web("p", spread()))["a1"] is True


def test_min_domains_treats_missing_domains_as_empty() -> None:
    h = Harness().add_nodes(node("a1", labels={ZONE: "a"}), node("a2", labels={ZONE: "a"}))
    h.add_pod(web("e1"), "a1")
    # One domain only, so its own count is the minimum: fits...
    assert h.filter_mask(web("p", spread()))["a2"] is True
    # ...unless three domains are required: the global minimum is 0.
    assert h.filter_mask(web("p", spread(minDomains=3)))["a2"] is False


def test_node_affinity_policy_limits_the_domains() -> None:
    h = zones()
    h.add_pod(web("e1"), "b1")
    # Only zone b is eligible for this pod; its minimum is 1, so b1 still fits.
    p = web("p", spread())
    p["spec"]["nodeSelector"] = {ZONE: "b"}
    assert h.filter_mask(p)["b1"] is True
    honour_ignored = web("p", spread(nodeAffinityPolicy="Ignore"))
    honour_ignored["spec"]["nodeSelector"] = {ZONE: "b"}
    assert h.filter_mask(honour_ignored)["b1"] is False


def test_spread_scoring_prefers_emptier_domains() -> None:
    h = zones()
    h.add_pod(web("e1"), "a1")
    h.add_pod(web("e2"), "a2")
    scores = h.scores(web("p", spread(when="ScheduleAnyway")), "PodTopologySpread")
    assert scores["b1"] == 100
    assert scores["a1"] == scores["a2"] < scores["b1"]
    assert scores["nolabel"] == 0


def test_system_default_spreading_needs_an_owner_selector() -> None:
    h = zones()
    assert h.scores(pod("p", labels={"app": "web"}), "PodTopologySpread") == {}


def owner_selected(calls: list[str]) -> Harness:
    """A harness whose default selector is an owner's ``app=web``, counting its look-ups."""

    def default_selector(info: Any) -> selectors.LabelSelector:
        calls.append(info.name)
        return selectors.selector_from_set({"app": "web"})

    return Harness(extra={"default_selector": default_selector})


def test_system_default_spreading_on_unzoned_nodes_spreads_over_hosts() -> None:
    calls: list[str] = []
    h = owner_selected(calls).add_nodes(node("n1"), node("n2"), node("n3"))
    h.add_pod(web("e1"), "n1")
    h.add_pod(web("e2"), "n1")
    h.add_pod(web("e3"), "n2")
    calls.clear()
    # Host counts 2, 1, 0 weighted by log(3 + 2), plus maxSkew - 1: 5, 4, 2 → normalized.
    assert h.scores(pod("p", labels={"app": "web"}), "PodTopologySpread") == {
        "n1": 40,
        "n2": 60,
        "n3": 100,
    }
    # The defaults only score: PreFilter never asks for the owner's selector.
    assert calls == ["p"]
    assert h.filter_mask(pod("q", labels={"app": "web"})) == {"n1": True, "n2": True, "n3": True}
    assert calls == ["p"]


def test_system_default_spreading_counts_zones_and_hosts() -> None:
    h = owner_selected([]).add_nodes(
        node("a1", labels={ZONE: "a"}),
        node("a2", labels={ZONE: "a"}),
        node("b1", labels={ZONE: "b"}),
    )
    h.add_pod(web("e1"), "a1")
    h.add_pod(web("e2"), "a2")
    # Hosts: 1, 1, 0 x log(3 + 2) + 2; zones: 2, 2, 0 x log(2 + 2) + 4 → 10, 10, 6.
    assert h.scores(pod("p", labels={"app": "web"}), "PodTopologySpread") == {
        "a1": 100 * (10 + 6 - 10) // 10,
        "a2": 100 * (10 + 6 - 10) // 10,
        "b1": 100 * (10 + 6 - 6) // 10,
    }


def anti(selector: dict[str, str], key: str = HOST, **term: Any) -> dict[str, Any]:
    return {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": selector}, "topologyKey": key, **term}
            ]
        }
    }


def aff(selector: dict[str, str], key: str = ZONE) -> dict[str, Any]:
    return {
        "podAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": selector}, "topologyKey": key}
            ]
        }
    }


def test_required_anti_affinity() -> None:
    h = zones()
    h.add_pod(pod("db", labels={"app": "db"}), "a1")
    p = pod("p", spec={"affinity": anti({"app": "db"})})
    assert h.filter_mask(p) == {"a1": False, "a2": True, "b1": True, "nolabel": True}
    by_zone = pod("p", spec={"affinity": anti({"app": "db"}, ZONE)})
    assert h.filter_mask(by_zone) == {"a1": False, "a2": False, "b1": True, "nolabel": True}


def test_anti_affinity_terms_are_namespaced() -> None:
    h = zones()
    h.add_pod(pod("db", namespace="other", labels={"app": "db"}), "a1")
    assert h.filter_mask(pod("p", spec={"affinity": anti({"app": "db"})}))["a1"] is True
    listed = pod("p", spec={"affinity": anti({"app": "db"}, namespaces=["other"])})
    assert h.filter_mask(listed)["a1"] is False


def test_existing_pods_anti_affinity_is_symmetric() -> None:
    h = zones()
    h.add_pod(
        pod("guard", labels={"app": "guard"}, spec={"affinity": anti({"app": "web"}, ZONE)}), "a1"
    )
    assert h.filter_mask(pod("p", labels={"app": "web"})) == {
        "a1": False,
        "a2": False,
        "b1": True,
        "nolabel": True,
    }
    err = Harness().add_nodes(node("a1", labels={ZONE: "a"}))
    err.add_pod(
        pod("guard", labels={"app": "guard"}, spec={"affinity": anti({"app": "web"}, ZONE)}), "a1"
    )
    assert "1 node(s) didn't satisfy existing pods anti-affinity rules" in str(
        err.fit_error(pod("p", labels={"app": "web"}))
    )


def test_required_affinity_and_the_first_pod_of_a_group() -> None:
    h = zones()
    # Nothing matches yet and the pod does not match itself: nowhere.
    assert h.filter_mask(pod("p", spec={"affinity": aff({"app": "db"})})) == {
        "a1": False,
        "a2": False,
        "b1": False,
        "nolabel": False,
    }
    # The first of a group that matches its own term may go to any node with the key.
    first = pod("p", labels={"app": "db"}, spec={"affinity": aff({"app": "db"})})
    assert h.filter_mask(first) == {"a1": True, "a2": True, "b1": True, "nolabel": False}
    h.add_pod(pod("db", labels={"app": "db"}), "b1")
    assert h.filter_mask(pod("p", spec={"affinity": aff({"app": "db"})})) == {
        "a1": False,
        "a2": False,
        "b1": True,
        "nolabel": False,
    }
    assert "node(s) didn't match pod affinity rules" in str(
        Harness()
        .add_nodes(node("a1", labels={ZONE: "a"}))
        .fit_error(pod("p", spec={"affinity": aff({"app": "db"})}))
    )


def test_preferred_affinity_scores_domains() -> None:
    h = zones()
    h.add_pod(pod("db", labels={"app": "db"}), "a1")
    preferred = {
        "podAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 5,
                    "podAffinityTerm": {
                        "labelSelector": {"matchLabels": {"app": "db"}},
                        "topologyKey": ZONE,
                    },
                }
            ]
        }
    }
    assert h.scores(pod("p", spec={"affinity": preferred}), "InterPodAffinity") == {
        "a1": 100,
        "a2": 100,
        "b1": 0,
        "nolabel": 0,
    }
    avoid = {"podAntiAffinity": preferred["podAffinity"]}
    assert h.scores(pod("p", spec={"affinity": avoid}), "InterPodAffinity") == {
        "a1": 0,
        "a2": 0,
        "b1": 100,
        "nolabel": 100,
    }


def test_existing_required_affinity_attracts_at_hard_weight() -> None:
    h = zones()
    h.add_pod(pod("fan", labels={"app": "fan"}, spec={"affinity": aff({"app": "star"})}), "b1")
    assert h.scores(pod("star", labels={"app": "star"}), "InterPodAffinity")["b1"] == 100
    ignoring = Harness(config.Profile(args={"InterPodAffinity": {"hardPodAffinityWeight": 0}}))
    ignoring.add_nodes(node("b1", labels={ZONE: "b"}), node("a1", labels={ZONE: "a"}))
    ignoring.add_pod(
        pod("fan", labels={"app": "fan"}, spec={"affinity": aff({"app": "star"})}), "b1"
    )
    assert ignoring.scores(pod("star", labels={"app": "star"}), "InterPodAffinity") == {}
