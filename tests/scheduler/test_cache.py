"""The cache: assumed pods, confirmation, forgetting, indexes kept current."""

from __future__ import annotations

import numpy as np

from pilothouse.api import selectors
from pilothouse.scheduler import cache, types

from .builders import node, pod


def cpu_requested(c: cache.Cache, name: str) -> int:
    return int(c.table.requested[c.table.columns["cpu"], c.table.row_of[name]])


def test_assume_forget_and_confirm() -> None:
    c = cache.Cache()
    c.add_node(node("n1"))
    p = types.make_pod_info(pod("p", cpu="1"))
    c.assume_pod(p, "n1")
    assert cpu_requested(c, "n1") == 1000 and c.is_assumed(p.key)
    c.forget_pod(p.key)
    assert cpu_requested(c, "n1") == 0 and p.key not in c.pods
    c.assume_pod(p, "n1")
    bound = pod("p", cpu="1", node_name="n1")
    c.add_pod(types.make_pod_info(bound))
    assert not c.is_assumed(p.key)
    assert cpu_requested(c, "n1") == 1000  # counted once
    c.remove_pod(p.key)
    assert cpu_requested(c, "n1") == 0


def test_pod_on_an_unknown_node_then_the_node_arrives() -> None:
    c = cache.Cache()
    c.add_pod(types.make_pod_info(pod("early", cpu="1", node_name="later")))
    assert len(c.table) == 0
    c.add_node(node("later"))
    assert len(c.table) == 1 and cpu_requested(c, "later") == 1000


def test_match_index_follows_pods() -> None:
    c = cache.Cache()
    c.add_node(node("n1"))
    clause = cache.Clause(frozenset({"default"}), selectors.selector_from_set({"app": "web"}))
    c.add_pod(types.make_pod_info(pod("a", labels={"app": "web"}, node_name="n1")))
    counts = c.match_counts((clause,))
    assert counts[c.table.row_of["n1"]] == 1
    c.add_pod(types.make_pod_info(pod("b", labels={"app": "web"}, node_name="n1")))
    c.add_pod(types.make_pod_info(pod("c", labels={"app": "db"}, node_name="n1")))
    assert c.match_counts((clause,))[c.table.row_of["n1"]] == 2
    c.remove_pod("default/a")
    assert c.match_counts((clause,))[c.table.row_of["n1"]] == 1


def test_capacity_grows_with_nodes_and_keeps_counts() -> None:
    c = cache.Cache(capacity=2)
    for i in range(10):
        c.add_node(node(f"n{i}"))
        c.add_pod(types.make_pod_info(pod(f"p{i}", cpu="1", node_name=f"n{i}")))
    assert len(c.table) == 10
    assert np.all(c.table.requested[c.table.columns["cpu"], c.table.valid_rows()] == 1000)


def test_node_removal_keeps_its_pods_until_they_go() -> None:
    c = cache.Cache()
    c.add_node(node("n1"))
    c.add_pod(types.make_pod_info(pod("p", node_name="n1")))
    c.remove_node("n1")
    assert len(c.table) == 0 and "n1" in c.table.row_of
    c.remove_pod("default/p")
    assert "n1" not in c.table.row_of


def test_without_restores_pods() -> None:
    c = cache.Cache()
    c.add_node(node("n1"))
    p = types.make_pod_info(pod("p", cpu="1", node_name="n1"))
    c.add_pod(p)
    with c.without([p]):
        assert cpu_requested(c, "n1") == 0
    assert cpu_requested(c, "n1") == 1000
