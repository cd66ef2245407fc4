"""DaemonSet helpers without I/O: which nodes run a daemon, the pod it gets."""

from __future__ import annotations

from typing import Any

from pilothouse.controllers.daemonset import util

Obj = dict[str, Any]


def ds(**template_spec: Any) -> Obj:
    return {
        "metadata": {"name": "d", "annotations": {util.TEMPLATE_GENERATION_ANNOTATION: "4"}},
        "spec": {
            "template": {
                "metadata": {"labels": {"app": "d"}},
                "spec": {"containers": [{"name": "c"}], **template_spec},
            },
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "10%"}},
        },
    }


def node(name: str = "n", taints: list[Obj] | None = None, **labels: str) -> Obj:
    return {"metadata": {"name": name, "labels": labels}, "spec": {"taints": taints or []}}


def test_should_run_and_should_continue_running() -> None:
    assert util.node_should_run_daemon_pod(node(), ds()) == (True, True)
    assert util.node_should_run_daemon_pod(node(), ds(nodeName="other")) == (False, False)
    assert util.node_should_run_daemon_pod(node(role="x"), ds(nodeSelector={"role": "x"})) == (
        True,
        True,
    )
    assert util.node_should_run_daemon_pod(node(), ds(nodeSelector={"role": "x"})) == (False, False)
    no_schedule = node(taints=[{"key": "k", "effect": "NoSchedule"}])
    assert util.node_should_run_daemon_pod(no_schedule, ds()) == (False, True)
    no_execute = node(taints=[{"key": "k", "effect": "NoExecute"}])
    assert util.node_should_run_daemon_pod(no_execute, ds()) == (False, False)
    tolerated = ds(tolerations=[{"key": "k", "operator": "Exists"}])
    assert util.node_should_run_daemon_pod(no_execute, tolerated) == (True, True)
    # Conditions a daemon tolerates by itself.
    for key, effect in (
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
    ):
        assert util.node_should_run_daemon_pod(node(taints=[{"key": key, "effect": effect}]), ds())[
            0
        ]
    network = node(
        taints=[{"key": "node.kubernetes.io/network-unavailable", "effect": "NoSchedule"}]
    )
    assert not util.node_should_run_daemon_pod(network, ds())[0]
    assert util.node_should_run_daemon_pod(network, ds(hostNetwork=True))[0]


def test_pod_template_and_affinity() -> None:
    template = util.create_pod_template(ds(), 4, "abc")
    assert template["metadata"]["labels"] == {
        "app": "d",
        "pod-template-generation": "4",
        "controller-revision-hash": "abc",
    }
    assert len(template["spec"]["tolerations"]) == 6
    # An existing toleration that matches is replaced, not duplicated.
    spec: Obj = {
        "tolerations": [
            {
                "key": "node.kubernetes.io/unschedulable",
                "operator": "Exists",
                "effect": "NoSchedule",
            }
        ]
    }
    util.add_daemon_tolerations(spec)
    assert len(spec["tolerations"]) == 6
    user = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "a", "operator": "Exists"}]}]
            },
            "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 1, "preference": {}}],
        },
        "podAntiAffinity": {"x": 1},
    }
    pinned = util.replace_node_name_affinity(user, "n7")
    required = pinned["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert required["nodeSelectorTerms"] == [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n7"]}]}
    ]
    assert pinned["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert pinned["podAntiAffinity"] == {"x": 1}
    assert util.target_node_name({"metadata": {}, "spec": {"affinity": pinned}}) == "n7"
    assert (
        util.target_node_name({"metadata": {}, "spec": {"nodeName": "n2", "affinity": pinned}})
        == "n2"
    )
    assert util.target_node_name({"metadata": {}, "spec": {}}) is None


def test_counts_and_updated_pods() -> None:
    d = ds()
    assert util.unavailable_count(d, 500) == 50 and util.surge_count(d, 500) == 0
    assert not util.allows_surge(d)
    d["spec"]["updateStrategy"]["rollingUpdate"] = {"maxUnavailable": 0, "maxSurge": "20%"}
    assert util.surge_count(d, 6) == 2 and util.allows_surge(d)
    pod = {
        "metadata": {"labels": {"controller-revision-hash": "h1", "pod-template-generation": "3"}}
    }
    assert util.is_pod_updated(pod, "h1", 9) and util.is_pod_updated(pod, "h2", 3)
    assert not util.is_pod_updated(pod, "h2", 9)
    assert util.template_generation(d) == 4
