"""The informer's local cache: objects by ``namespace/name``, plus indexes.

Objects in the cache are shared, read-only views of what the server sent;
callers that want to change one must copy it first (``meta.deep_copy``), as
client-go's listers demand ``DeepCopy`` before mutation.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Any

Obj = dict[str, Any]
IndexFunc = Callable[[Obj], list[str]]

NAMESPACE_INDEX = "namespace"
OWNER_UID_INDEX = "owner-uid"
NODE_NAME_INDEX = "node-name"
ORPHAN_INDEX = "orphans"


def key_of(obj: Obj) -> str:
    md = obj.get("metadata") or {}
    ns = md.get("namespace")
    return f"{ns}/{md.get('name')}" if ns else str(md.get("name"))


def split_key(key: str) -> tuple[str, str]:
    ns, sep, name = key.partition("/")
    return (ns, name) if sep else ("", ns)


def namespace_index(obj: Obj) -> list[str]:
    return [(obj.get("metadata") or {}).get("namespace") or ""]


def owner_uid_index(obj: Obj) -> list[str]:
    return [
        ref["uid"]
        for ref in (obj.get("metadata") or {}).get("ownerReferences") or []
        if ref.get("uid")
    ]


def controller_uid_index(obj: Obj) -> list[str]:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller") and ref.get("uid"):
            return [ref["uid"]]
    return []


def orphan_index(obj: Obj) -> list[str]:
    """The namespace of an object no controller controls (the candidates for adoption,
    without a pass over the whole namespace)."""
    md = obj.get("metadata") or {}
    for ref in md.get("ownerReferences") or []:
        if ref.get("controller"):
            return []
    return [md.get("namespace") or ""]


def node_name_index(obj: Obj) -> list[str]:
    node = (obj.get("spec") or {}).get("nodeName")
    return [node] if node else []


class Indexer:
    """A dict of objects with secondary indexes kept in step on every change."""

    def __init__(self, indexers: dict[str, IndexFunc] | None = None) -> None:
        self._items: dict[str, Obj] = {}
        self._funcs: dict[str, IndexFunc] = dict(indexers or {})
        self._indexes: dict[str, dict[str, set[str]]] = {name: {} for name in self._funcs}

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: str) -> bool:
        return key in self._items

    def add_index(self, name: str, func: IndexFunc) -> None:
        if name in self._funcs:
            return
        self._funcs[name] = func
        index: dict[str, set[str]] = {}
        for key, obj in self._items.items():
            for value in func(obj):
                index.setdefault(value, set()).add(key)
        self._indexes[name] = index

    def get(self, key: str) -> Obj | None:
        return self._items.get(key)

    def get_by(self, namespace: str, name: str) -> Obj | None:
        return self._items.get(f"{namespace}/{name}" if namespace else name)

    def list(self) -> builtins.list[Obj]:
        return list(self._items.values())

    def keys(self) -> builtins.list[str]:
        return list(self._items)

    def by_index(self, index: str, value: str) -> builtins.list[Obj]:
        keys = self._indexes[index].get(value, ())
        return [self._items[k] for k in keys]

    def list_namespace(self, namespace: str) -> builtins.list[Obj]:
        if not namespace:
            return self.list()
        return (
            self.by_index(NAMESPACE_INDEX, namespace)
            if NAMESPACE_INDEX in self._indexes
            else [
                o
                for o in self._items.values()
                if (o.get("metadata") or {}).get("namespace") == namespace
            ]
        )

    def _unindex(self, key: str, obj: Obj) -> None:
        for name, func in self._funcs.items():
            index = self._indexes[name]
            for value in func(obj):
                keys = index.get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del index[value]

    def _index(self, key: str, obj: Obj) -> None:
        for name, func in self._funcs.items():
            index = self._indexes[name]
            for value in func(obj):
                index.setdefault(value, set()).add(key)

    def upsert(self, key: str, obj: Obj) -> Obj | None:
        prev = self._items.get(key)
        self._items[key] = obj
        if prev is None:
            self._index(key, obj)
            return None
        # An update mostly leaves every index value as it was (a pod's status write
        # keeps its namespace, node and owner): only the indexes whose values changed
        # are touched.
        for name, func in self._funcs.items():
            before, after = func(prev), func(obj)
            if before == after:
                continue
            index = self._indexes[name]
            for value in before:
                keys = index.get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del index[value]
            for value in after:
                index.setdefault(value, set()).add(key)
        return prev

    def delete(self, key: str) -> Obj | None:
        prev = self._items.pop(key, None)
        if prev is not None:
            self._unindex(key, prev)
        return prev

    def replace(self, items: dict[str, Obj]) -> dict[str, Obj]:
        """Swap in a fresh listing; returns the previous contents."""
        old = self._items
        self._items = {}
        self._indexes = {name: {} for name in self._funcs}
        for key, obj in items.items():
            self._items[key] = obj
            self._index(key, obj)
        return old
