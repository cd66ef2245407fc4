"""Informer objects with the scheduler's assumptions on top (upstream's AssumeCache).

When the scheduler reserves a node for a pod it *assumes* the volume bindings it is
about to write — a volume's ``claimRef``, a claim's selected node — so the next pod
(scheduled before those writes come back from the API) does not take the same
volume. An assumption lasts until the informer delivers a newer version of the
object (the write, or someone else's) or the scheduler restores it (unreserve).

Everything runs on the scheduler's event loop: the informer's handlers and the
scheduling cycle never interleave within a call.
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]


def _rv(obj: Obj) -> int:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


def _key(obj: Obj) -> str:
    md = obj.get("metadata") or {}
    ns = md.get("namespace")
    return f"{ns}/{md.get('name', '')}" if ns else str(md.get("name", ""))


class AssumeCache:
    """``get`` answers the assumed object while it is newer than the informer's."""

    def __init__(self) -> None:
        self.api: dict[str, Obj] = {}
        self._assumed: dict[str, Obj] = {}

    # --- informer side ----------------------------------------------------------------
    def on_add(self, obj: Obj) -> None:
        key = _key(obj)
        self.api[key] = obj
        assumed = self._assumed.get(key)
        if assumed is not None and _rv(obj) > _rv(assumed):
            del self._assumed[key]  # the API moved on: the assumption has served

    def on_update(self, _old: Obj, new: Obj) -> None:
        self.on_add(new)

    def on_delete(self, obj: Obj) -> None:
        key = _key(obj)
        self.api.pop(key, None)
        self._assumed.pop(key, None)

    # --- scheduler side ---------------------------------------------------------------
    def get(self, key: str) -> Obj | None:
        return self._assumed.get(key) or self.api.get(key)

    def get_api(self, key: str) -> Obj | None:
        return self.api.get(key)

    def list(self) -> list[Obj]:
        return [self._assumed.get(k) or obj for k, obj in self.api.items()]

    def assume(self, obj: Obj) -> bool:
        """Take ``obj`` (a changed copy of the current object, or what a write returned)
        as the truth until the informer says otherwise. Nothing changes when the informer
        already has a newer version, or no longer has the object (False)."""
        key = _key(obj)
        current = self.api.get(key)
        if current is None or _rv(obj) < _rv(current):
            return False
        self._assumed[key] = obj
        return True

    def restore(self, key: str) -> None:
        self._assumed.pop(key, None)
