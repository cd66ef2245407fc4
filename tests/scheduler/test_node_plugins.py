"""TaintToleration, NodeAffinity, NodeUnschedulable, NodeName and NodePorts."""

from __future__ import annotations

from typing import Any

from pilothouse.scheduler import config

from .builders import Harness, node, pod

NO_SCHEDULE = {"key": "dedicated", "value": "user1", "effect": "NoSchedule"}


def tolerating(*tolerations: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return pod("p", spec={"tolerations": list(tolerations)}, **kw)


def test_untolerated_taint_is_unresolvable_with_upstream_reason() -> None:
    h = Harness().add_nodes(node("tainted", taints=[NO_SCHEDULE]), node("clean"))
    assert h.filter_mask(pod("p")) == {"tainted": False, "clean": True}
    err = Harness().add_nodes(node("tainted", taints=[NO_SCHEDULE])).fit_error(pod("p"))
    assert str(err).startswith(
        "0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: user1}."
    )


def test_tolerations_match_as_upstream() -> None:
    h = Harness().add_nodes(node("tainted", taints=[NO_SCHEDULE]))
    equal = {"key": "dedicated", "operator": "Equal", "value": "user1", "effect": "NoSchedule"}
    wrong_value = {**equal, "value": "user2"}
    exists = {"key": "dedicated", "operator": "Exists"}
    everything = {"operator": "Exists"}
    other_effect = {**equal, "effect": "NoExecute"}
    assert h.filter_mask(tolerating(equal)) == {"tainted": True}
    assert h.filter_mask(tolerating(wrong_value)) == {"tainted": False}
    assert h.filter_mask(tolerating(exists)) == {"tainted": True}
    assert h.filter_mask(tolerating(everything)) == {"tainted": True}
    assert h.filter_mask(tolerating(other_effect)) == {"tainted": False}


def test_prefer_no_schedule_only_scores() -> None:
    soft = [{"key": f"k{i}", "value": "v", "effect": "PreferNoSchedule"} for i in range(2)]
    h = Harness().add_nodes(node("none"), node("one", taints=soft[:1]), node("two", taints=soft))
    assert h.filter_mask(pod("p")) == {"none": True, "one": True, "two": True}
    assert h.scores(pod("p"), "TaintToleration") == {"none": 100, "one": 50, "two": 0}
    tolerant = tolerating({"key": "k0", "operator": "Exists", "effect": "PreferNoSchedule"})
    assert h.scores(tolerant, "TaintToleration") == {"none": 100, "one": 100, "two": 0}


def affinity(
    required: list[dict[str, Any]] | None = None, preferred: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    block: dict[str, Any] = {}
    if required is not None:
        block["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": required}
    if preferred is not None:
        block["preferredDuringSchedulingIgnoredDuringExecution"] = preferred
    return pod("p", spec={"affinity": {"nodeAffinity": block}})


def labelled() -> Harness:
    return Harness().add_nodes(
        node("a", labels={"zone": "z1", "gen": "3"}),
        node("b", labels={"zone": "z2", "gen": "5"}),
        node("c"),
    )


def test_node_selector() -> None:
    h = labelled()
    assert h.filter_mask(pod("p", spec={"nodeSelector": {"zone": "z1"}})) == {
        "a": True,
        "b": False,
        "c": False,
    }
    err = h.fit_error(pod("p", spec={"nodeSelector": {"zone": "nowhere"}}))
    assert str(err).startswith(
        "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."
    )


def test_required_affinity_operators() -> None:
    h = labelled()

    def expr(key: str, op: str, *values: str) -> dict[str, Any]:
        e: dict[str, Any] = {"key": key, "operator": op}
        if values:
            e["values"] = list(values)
        return {"matchExpressions": [e]}

    assert h.filter_mask(affinity([expr("zone", "In", "z1", "z2")])) == {
        "a": True,
        "b": True,
        "c": False,
    }
    assert h.filter_mask(affinity([expr("zone", "NotIn", "z1")])) == {
        "a": False,
        "b": True,
        "c": True,
    }
    assert h.filter_mask(affinity([expr("zone", "Exists")])) == {"a": True, "b": True, "c": False}
    assert h.filter_mask(affinity([expr("zone", "DoesNotExist")])) == {
        "a": False,
        "b": False,
        "c": True,
    }
    assert h.filter_mask(affinity([expr("gen", "Gt", "4")])) == {"a": False, "b": True, "c": False}
    assert h.filter_mask(affinity([expr("gen", "Lt", "4")])) == {"a": True, "b": False, "c": False}
    # Terms are ORed; an empty term matches nothing.
    assert h.filter_mask(affinity([expr("zone", "In", "z1"), expr("gen", "Gt", "4")])) == {
        "a": True,
        "b": True,
        "c": False,
    }
    assert h.filter_mask(affinity([{}])) == {"a": False, "b": False, "c": False}


def test_node_selector_and_affinity_both_apply() -> None:
    h = labelled()
    p = affinity([{"matchExpressions": [{"key": "zone", "operator": "Exists"}]}])
    p["spec"]["nodeSelector"] = {"gen": "5"}
    assert h.filter_mask(p) == {"a": False, "b": True, "c": False}


def test_match_fields_on_name_narrow_prefilter() -> None:
    h = labelled()
    p = affinity([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["b"]}]}])
    assert h.filter_mask(p) == {"a": False, "b": True, "c": False}
    assert h.schedule(p) == "b"


def test_preferred_terms_score_by_weight() -> None:
    h = labelled()
    preferred = [
        {
            "weight": 20,
            "preference": {
                "matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1"]}]
            },
        },
        {"weight": 80, "preference": {"matchExpressions": [{"key": "gen", "operator": "Exists"}]}},
    ]
    assert h.scores(affinity(preferred=preferred), "NodeAffinity") == {"a": 100, "b": 80, "c": 0}


def test_added_affinity_from_plugin_args() -> None:
    added = {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z2"]}]}
            ]
        }
    }
    h = Harness(config.Profile(args={"NodeAffinity": {"addedAffinity": added}}))
    h.add_nodes(node("a", labels={"zone": "z1"}), node("b", labels={"zone": "z2"}))
    assert h.filter_mask(pod("p")) == {"a": False, "b": True}
    assert "1 node(s) didn't match scheduler-enforced node affinity" in str(
        Harness(config.Profile(args={"NodeAffinity": {"addedAffinity": added}}))
        .add_nodes(node("a", labels={"zone": "z1"}))
        .fit_error(pod("p"))
    )


def test_cordoned_node() -> None:
    h = Harness().add_nodes(node("cordoned", unschedulable=True), node("open"))
    assert h.filter_mask(pod("p")) == {"cordoned": False, "open": True}
    tolerant = tolerating(
        {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}
    )
    assert h.filter_mask(tolerant) == {"cordoned": True, "open": True}
    err = Harness().add_nodes(node("cordoned", unschedulable=True)).fit_error(pod("p"))
    assert "1 node(s) were unschedulable" in str(err)


def test_node_name() -> None:
    h = Harness().add_nodes(node("a"), node("b"))
    assert h.filter_mask(pod("p", node_name="b")) == {"a": False, "b": True}


def host_port(port: int, protocol: str = "TCP", ip: str = "") -> dict[str, Any]:
    p: dict[str, Any] = {"containerPort": port, "hostPort": port, "protocol": protocol}
    if ip:
        p["hostIP"] = ip
    return pod(f"hp{port}{protocol}{ip}", spec={"containers": [{"name": "c", "ports": [p]}]})


def test_host_ports_conflict_as_upstream() -> None:
    h = Harness().add_nodes(node("a"), node("b"))
    h.add_pod(host_port(8080, ip="10.0.0.1"), "a")
    assert h.filter_mask(host_port(8080)) == {"a": False, "b": True}  # 0.0.0.0 overlaps any IP
    assert h.filter_mask(host_port(8080, ip="10.0.0.2")) == {"a": True, "b": True}
    assert h.filter_mask(host_port(8080, protocol="UDP")) == {"a": True, "b": True}
    assert h.filter_mask(host_port(8080, ip="10.0.0.1")) == {"a": False, "b": True}
    h2 = Harness().add_nodes(node("a"))
    h2.add_pod(host_port(9090), "a")
    assert "1 node(s) didn't have free ports for the requested pod ports" in str(
        h2.fit_error(host_port(9090))
    )
