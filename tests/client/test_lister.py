"""The informer's indexer: secondary indexes follow every add, update and delete."""

from __future__ import annotations

from typing import Any

from pilothouse.client import lister


def _pod(node: str, owner: str = "rs-1", phase: str = "Pending") -> dict[str, Any]:
    return {
        "metadata": {
            "name": "p",
            "namespace": "ns",
            "ownerReferences": [{"uid": owner, "controller": True}],
        },
        "spec": {"nodeName": node} if node else {},
        "status": {"phase": phase},
    }


def test_updates_move_a_key_between_index_values_and_drop_empty_ones() -> None:
    idx = lister.Indexer(
        {
            lister.NAMESPACE_INDEX: lister.namespace_index,
            lister.NODE_NAME_INDEX: lister.node_name_index,
            lister.OWNER_UID_INDEX: lister.owner_uid_index,
        }
    )
    idx.upsert("ns/p", _pod(""))
    assert idx.by_index(lister.NODE_NAME_INDEX, "n1") == []
    bound = _pod("n1")
    idx.upsert("ns/p", bound)
    assert idx.by_index(lister.NODE_NAME_INDEX, "n1") == [bound]
    # A status update: every index value as before, the object swapped in all of them.
    running = _pod("n1", phase="Running")
    assert idx.upsert("ns/p", running) is bound
    assert idx.by_index(lister.NODE_NAME_INDEX, "n1") == [running]
    assert idx.by_index(lister.NAMESPACE_INDEX, "ns") == [running]
    assert idx.by_index(lister.OWNER_UID_INDEX, "rs-1") == [running]
    # Moved to another owner and node: gone from the old values, whose buckets go too.
    moved = _pod("n2", owner="rs-2")
    idx.upsert("ns/p", moved)
    assert idx.by_index(lister.NODE_NAME_INDEX, "n1") == []
    assert idx.by_index(lister.OWNER_UID_INDEX, "rs-1") == []
    assert idx.by_index(lister.OWNER_UID_INDEX, "rs-2") == [moved]
    assert "n1" not in idx._indexes[lister.NODE_NAME_INDEX]
    idx.delete("ns/p")
    assert idx.by_index(lister.NAMESPACE_INDEX, "ns") == []
    assert all(not index for index in idx._indexes.values())
