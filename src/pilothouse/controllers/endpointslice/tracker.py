"""What the EndpointSlice controller last wrote, to tell a stale cache from a
change by someone else (upstream's ``EndpointSliceTracker``).

After a write the informer may still hold the older slice for a while; syncing
from it would undo the write. The tracker remembers, per Service, the
resourceVersion of every slice the controller wrote and the slices it deleted.
A sync that sees an older version, or a slice it deleted, is from a stale cache
and is retried. A slice event whose version the tracker does not know came from
someone else, so the Service must be synced again.

resourceVersions are compared as integers: pilothouse's stores (SQLite, etcd)
both count one global revision. Single event loop; no locking.
"""

from __future__ import annotations

from pilothouse.api.meta import Obj

DELETED = -1


def _rv(obj: Obj) -> int:
    try:
        return int(obj["metadata"].get("resourceVersion") or 0)
    except ValueError:
        return 0


class SliceTracker:
    def __init__(self) -> None:
        self._by_service: dict[str, dict[str, int]] = {}

    def written(self, service_key: str, slice_: Obj) -> None:
        self._by_service.setdefault(service_key, {})[slice_["metadata"]["uid"]] = _rv(slice_)

    def deleted(self, service_key: str, slice_: Obj) -> None:
        uid = slice_["metadata"].get("uid")
        if uid:
            self._by_service.setdefault(service_key, {})[uid] = DELETED

    def observed_deletion(self, service_key: str, slice_: Obj) -> bool:
        """The informer saw a deletion; True if it was not ours (so: resync)."""
        seen = self._by_service.get(service_key, {})
        uid = slice_["metadata"].get("uid", "")
        ours = seen.pop(uid, None) == DELETED
        return not ours

    def should_sync(self, service_key: str, slice_: Obj) -> bool:
        """An added or updated slice: True unless it is exactly what we wrote."""
        known = self._by_service.get(service_key, {}).get(slice_["metadata"].get("uid", ""))
        return known is None or known != _rv(slice_)

    def stale(self, service_key: str, slices: list[Obj]) -> bool:
        """True if ``slices`` (from the cache) predate what we wrote or deleted: one is
        older than our write, one we deleted is still there, or one we created is not
        there yet (a sync now would create it again)."""
        seen = self._by_service.get(service_key)
        if not seen:
            return False
        cached = set()
        for s in slices:
            uid = s["metadata"].get("uid", "")
            cached.add(uid)
            known = seen.get(uid)
            if known is None:
                continue
            if known == DELETED or _rv(s) < known:
                return True
        return any(rv != DELETED and uid not in cached for uid, rv in seen.items())

    def untrack(self, service_key: str, slice_: Obj) -> None:
        """A slice no longer belongs to ``service_key`` (its labels changed)."""
        self._by_service.get(service_key, {}).pop(slice_["metadata"].get("uid", ""), None)

    def forget(self, service_key: str) -> None:
        self._by_service.pop(service_key, None)
