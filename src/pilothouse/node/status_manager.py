"""Reporting pod status to the API, without flooding it.

Pod workers hand in the status they computed; the manager keeps the last one
sent per pod and writes only real changes (timestamps of unchanged conditions
do not count), from a few supervised workers, newest status wins. A status it sent
that the API no longer holds (a condition someone else changed: the node lifecycle
controller marks a lost node's pods not Ready) is written again when the pod next
syncs, as the kubelet's reconcile does. Writes are merge
patches of ``/status`` guarded by the pod's uid, so they never clobber what
others own (the scheduler's PodScheduled condition is merged in by the
worker) and never land on a re-created pod of the same name.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson

from pilothouse import supervisor as supervision
from pilothouse.api import errors, resources
from pilothouse.client import rest

log = logging.getLogger(__name__)

Obj = dict[str, Any]
PODS = resources.Resource("", "v1", "Pod", "pods", True)


def _fingerprint(status: Obj) -> bytes:
    def strip(c: Obj) -> Obj:
        return {k: v for k, v in c.items() if k not in ("lastTransitionTime", "lastProbeTime")}

    trimmed = {**status, "conditions": [strip(c) for c in status.get("conditions") or []]}
    return orjson.dumps(trimmed, option=orjson.OPT_SORT_KEYS)


def _conditions_differ(held: Obj, computed: Obj) -> bool:
    """Whether the API holds one of ``computed``'s conditions with another status."""
    statuses = {c.get("type"): c.get("status") for c in held.get("conditions") or []}
    return any(
        c.get("type") in statuses and statuses[c.get("type")] != c.get("status")
        for c in computed.get("conditions") or []
    )


class StatusManager:
    def __init__(self, client: rest.Client, *, workers: int = 8) -> None:
        self.client = client
        self._sent: dict[str, bytes] = {}
        self._pending: dict[str, tuple[Obj, Obj]] = {}
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._workers = workers
        self._supervisor: supervision.Supervisor | None = None
        self.writes = 0
        self._inflight = 0

    def start(self, supervisor: supervision.Supervisor) -> None:
        """Write statuses from ``workers`` children of ``supervisor``."""
        if self._supervisor is None:
            self._supervisor = supervisor
            for i in range(self._workers):
                supervisor.start(f"status-manager-{i}", self._run)

    async def stop(self) -> None:
        sup, self._supervisor = self._supervisor, None
        if sup is not None:
            for i in range(self._workers):
                await sup.stop_child(f"status-manager-{i}")

    def set(self, pod: Obj, status: Obj) -> None:
        uid = pod["metadata"]["uid"]
        if self._sent.get(uid) == _fingerprint(status) and uid not in self._pending:
            if not _conditions_differ(pod.get("status") or {}, status):
                return
            self._sent.pop(uid, None)
        self._pending[uid] = (pod, status)
        self._wake.set()

    def forget(self, uid: str) -> None:
        self._sent.pop(uid, None)
        self._pending.pop(uid, None)

    async def flush(self, timeout: float = 5.0) -> None:
        """Wait until every pending status is written (for orderly shutdown and tests)."""
        # In flight counts too: a status taken off the queue is not written yet.
        if self._pending or self._inflight:
            self._drained.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), timeout)

    async def _run(self) -> None:
        while True:
            if not self._pending:
                if not self._inflight:
                    self._drained.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            uid, (pod, status) = self._pending.popitem()
            fp = _fingerprint(status)
            if self._sent.get(uid) == fp:
                continue
            self._inflight += 1
            try:
                await self._write(uid, pod, status, fp)
            finally:
                self._inflight -= 1
                if not self._pending and not self._inflight:
                    self._drained.set()

    async def _write(self, uid: str, pod: Obj, status: Obj, fp: bytes) -> None:
        md = pod["metadata"]
        try:
            await self.client.patch(
                PODS,
                md["name"],
                {"metadata": {"uid": uid}, "status": status},
                md.get("namespace", ""),
                subresource="status",
            )
            self._sent[uid] = fp
            self.writes += 1
        except errors.StatusError as exc:
            if errors.is_not_found(exc) or errors.is_conflict(exc):
                return  # gone, or another pod with that name now
            log.warning("status of %s/%s: %s", md.get("namespace"), md["name"], exc.message)
            self._pending.setdefault(uid, (pod, status))
            await asyncio.sleep(1)
        except rest.TransportError as exc:
            log.debug("status write failed: %r", exc)
            self._pending.setdefault(uid, (pod, status))
            await asyncio.sleep(1)
