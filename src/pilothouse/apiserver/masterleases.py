"""Which API servers are alive: upstream's *lease* endpoint reconciler's master leases.

With several servers on one datastore, the ``kubernetes`` Endpoints must list every
live server and only those (agents and pods find the servers there). Upstream's
default (``--endpoint-reconciler-type=lease``) has each server keep a key
``/masterleases/<ip>`` in etcd with a 15 s TTL, renewed on every 10 s reconcile,
and builds the Endpoints from the keys that exist. Our store interface has no TTL,
so the value carries its expiry instead (each server's clock, as Leases rely on
too): a server renews its key each pass, readers skip keys past their expiry, and
whoever reads an expired key deletes it (conditionally on the revision it read, so
a renewal that raced the deletion wins). A server that stops cleanly deletes its
own key at once, as upstream's ``RemoveEndpoints`` at shutdown.

Concurrency: called from the reconciler's one task; other servers do the same on
the same keys, and the store's revisions settle every race.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable

import orjson

from pilothouse.storage import interface as storage

log = logging.getLogger(__name__)

PREFIX = "/registry/masterleases/"
TTL = 15.0


class MasterLeases:
    def __init__(
        self,
        store: storage.Store,
        *,
        ttl: float = TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.ttl = ttl
        self.clock = clock

    async def renew(self, address: str, port: int) -> None:
        """Keep ``address`` listed for another ``ttl`` seconds."""
        key = PREFIX + address
        value = orjson.dumps({"ip": address, "port": port, "expires": self.clock() + self.ttl})
        found = await self.store.get(key)
        try:
            if found is None:
                await self.store.create(key, value)
            else:
                await self.store.update(key, value, if_revision=found.mod_revision)
        except (storage.KeyExistsError, storage.RevisionMismatchError):
            pass  # another writer of this address (a restart of ours); the next pass renews

    async def live(self) -> list[tuple[str, int]]:
        """(address, port) of every server whose lease has not expired, sorted."""
        now = self.clock()
        out = []
        for kv in (await self.store.list(PREFIX)).items:
            try:
                lease = orjson.loads(kv.value)
                expires, ip, port = float(lease["expires"]), str(lease["ip"]), int(lease["port"])
            except (KeyError, TypeError, ValueError, orjson.JSONDecodeError):
                log.warning("dropping an unreadable master lease %s", kv.key)
                expires, ip, port = 0.0, "", 0
            if expires > now:
                out.append((ip, port))
                continue
            with contextlib.suppress(storage.KeyNotFoundError, storage.RevisionMismatchError):
                await self.store.delete(kv.key, if_revision=kv.mod_revision)
        return sorted(out)

    async def remove(self, address: str) -> None:
        """This server is stopping: stop listing it now, not ``ttl`` seconds later."""
        with contextlib.suppress(storage.KeyNotFoundError):
            await self.store.delete(PREFIX + address)
