"""Recording Events the way upstream's recorder does (client-go tools/record).

Components call :meth:`EventRecorder.event` and go on: events are written by a
supervised background child, so a slow API never slows a control loop. The correlator
deduplicates: an event identical to one written in the last ten minutes (same
object, type, reason, message, source) bumps that Event's ``count`` and
``lastTimestamp`` instead of creating a new object; more than ten *similar*
events (same object, type, reason — messages differ) in ten minutes are folded
into one "(combined from similar events)" Event. A per-object token bucket
drops floods, as upstream's spam filter does. ``kubectl describe`` and
``kubectl get events`` then read just as they do against Kubernetes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import socket
from dataclasses import dataclass
from typing import Any

from pilothouse import supervisor as supervision
from pilothouse.api import errors, meta, resources
from pilothouse.client.clock import DEFAULT as DEFAULT_CLOCK
from pilothouse.client.clock import Clock
from pilothouse.client.rest import STRATEGIC_PATCH, Client

log = logging.getLogger(__name__)

Obj = dict[str, Any]

NORMAL = "Normal"
WARNING = "Warning"

DEDUP_WINDOW_S = 600.0
SIMILAR_THRESHOLD = 10
CACHE_SIZE = 4096
SPAM_BURST = 25
SPAM_REFILL_S = 300.0  # one token per five minutes
QUEUE_LIMIT = 1000

EVENTS = resources.Resource("", "v1", "Event", "events", True)


def object_reference(obj: Obj) -> Obj:
    md = obj.get("metadata") or {}
    ref = {
        "kind": obj.get("kind", ""),
        "apiVersion": obj.get("apiVersion", ""),
        "name": md.get("name", ""),
        "uid": md.get("uid", ""),
        "resourceVersion": md.get("resourceVersion", ""),
    }
    if md.get("namespace"):
        ref["namespace"] = md["namespace"]
    return {k: v for k, v in ref.items() if v}


@dataclass
class _Seen:
    name: str
    namespace: str
    count: int
    first: str
    last_mono: float


@dataclass
class _Bucket:
    tokens: float
    updated: float


class EventRecorder:
    """Records Events for one component (``source.component``) on one host."""

    def __init__(
        self,
        client: Client,
        *,
        component: str,
        host: str = "",
        clock: Clock = DEFAULT_CLOCK,
    ) -> None:
        self.client = client
        self.component = component
        self.host = host or socket.gethostname()
        self.clock = clock
        self._queue: asyncio.Queue[Obj] = asyncio.Queue(maxsize=QUEUE_LIMIT)
        self._seen: collections.OrderedDict[tuple[str, ...], _Seen] = collections.OrderedDict()
        # Like _seen, least-recently-used caches of CACHE_SIZE entries (upstream's
        # aggregator and spam filter are LRUs of 4,096): one entry per object an event
        # was about would otherwise grow with every pod a scheduler ever placed.
        self._similar: collections.OrderedDict[tuple[str, ...], list[float]] = (
            collections.OrderedDict()
        )
        self._buckets: collections.OrderedDict[str, _Bucket] = collections.OrderedDict()
        self._supervisor: supervision.Supervisor | None = None
        self.written = 0

    @property
    def name(self) -> str:
        return f"events {self.component}".replace("/", "_")

    def start(self, supervisor: supervision.Supervisor) -> None:
        """Write events from a child of ``supervisor``."""
        if self._supervisor is None:
            self._supervisor = supervisor
            supervisor.start(self.name, self._run)

    async def stop(self, *, flush: float = 2.0) -> None:
        """Write what is queued (for at most ``flush`` seconds), then stop."""
        sup, self._supervisor = self._supervisor, None
        if sup is None:
            return
        if sup.running(self.name):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), flush)
        await sup.stop_child(self.name)

    def event(
        self, obj: Obj, type: str, reason: str, message: str, *, field_path: str = ""
    ) -> None:
        """Queue an event about ``obj``. Never blocks, never raises."""
        ref = object_reference(obj)
        if field_path:
            ref["fieldPath"] = field_path
        item = {"ref": ref, "type": type, "reason": reason, "message": message}
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            log.debug("event queue full; dropping %s %s", reason, message)

    async def _run(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                await self._write(item["ref"], item["type"], item["reason"], item["message"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("could not write event %s: %r", item["reason"], exc)
            finally:
                self._queue.task_done()

    def _allowed(self, ref: Obj) -> bool:
        key = f"{self.component}/{self.host}/{ref.get('kind')}/{ref.get('namespace')}/{ref.get('name')}"
        now = self.clock.monotonic()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(SPAM_BURST, now)
            _trim(self._buckets)
        else:
            self._buckets.move_to_end(key)
        bucket.tokens = min(SPAM_BURST, bucket.tokens + (now - bucket.updated) / SPAM_REFILL_S)
        bucket.updated = now
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True

    async def _write(self, ref: Obj, type: str, reason: str, message: str) -> None:
        now_mono = self.clock.monotonic()
        stamp = meta.format_time(self.clock.now())
        namespace = ref.get("namespace") or "default"
        similar_key = (
            ref.get("kind", ""),
            namespace,
            ref.get("name", ""),
            ref.get("uid", ""),
            type,
            reason,
        )
        recent = [t for t in self._similar.get(similar_key, []) if now_mono - t < DEDUP_WINDOW_S]
        recent.append(now_mono)
        self._similar[similar_key] = recent[-(SIMILAR_THRESHOLD + 1) :]
        self._similar.move_to_end(similar_key)
        _trim(self._similar)
        if len(recent) > SIMILAR_THRESHOLD:
            message = f"(combined from similar events): {message}"
            key = (*similar_key, "aggregate")
        else:
            key = (*similar_key, message)
        seen = self._seen.get(key)
        if seen is not None and now_mono - seen.last_mono < DEDUP_WINDOW_S:
            patch = {"count": seen.count + 1, "lastTimestamp": stamp, "message": message}
            try:
                await self.client.patch(
                    EVENTS, seen.name, patch, seen.namespace, patch_type=STRATEGIC_PATCH
                )
                seen.count += 1
                seen.last_mono = now_mono
                self._seen.move_to_end(key)
                self.written += 1
                return
            except errors.StatusError as exc:
                if not errors.is_not_found(exc):
                    raise
                # The Event expired or was deleted: write a new one below.
        if not self._allowed(ref):
            return
        name = f"{ref.get('name', 'unknown')}.{int(self.clock.now() * 1e9):x}"
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": ref,
            "reason": reason,
            "message": message,
            "source": {"component": self.component, "host": self.host}
            if self.host
            else {"component": self.component},
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
            "type": type,
            "eventTime": None,
            "reportingComponent": self.component,
            "reportingInstance": self.host,
        }
        await self.client.create(EVENTS, event, namespace)
        self.written += 1
        self._seen[key] = _Seen(name, namespace, 1, stamp, now_mono)
        _trim(self._seen)


def _trim(cache: collections.OrderedDict[Any, Any]) -> None:
    """Drop the least recently used entries beyond CACHE_SIZE."""
    while len(cache) > CACHE_SIZE:
        cache.popitem(last=False)
