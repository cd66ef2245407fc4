"""Leader election on a coordination.k8s.io Lease (client-go leaderelection).

Several copies of a component (controller manager, scheduler) may run; only
the holder of the Lease acts. The holder renews the Lease every
``retry_period``; if it cannot renew within ``renew_deadline`` it stops
leading (its work is cancelled) before anyone else may take over, because
others wait a full ``lease_duration`` after the last renewal they saw.
Updates use the Lease's resourceVersion, so two candidates never both win.
With ``release_on_cancel`` (client-go's ReleaseOnCancel), a holder that is stopped
cleanly gives the Lease up (empty holder, one-second duration) so the next
candidate takes over at its next try instead of a whole ``lease_duration`` later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from pilothouse.api import errors, meta, resources
from pilothouse.client import rest
from pilothouse.client.clock import DEFAULT as DEFAULT_CLOCK
from pilothouse.client.clock import Clock
from pilothouse.client.rest import Client

log = logging.getLogger(__name__)

LEASES = resources.Resource("coordination.k8s.io", "v1", "Lease", "leases", True)


def default_identity() -> str:
    return f"{socket.gethostname()}_{uuid.uuid4()}"


class LeaderElector:
    def __init__(
        self,
        client: Client,
        *,
        name: str,
        namespace: str = "kube-system",
        identity: str = "",
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        clock: Clock = DEFAULT_CLOCK,
        release_on_cancel: bool = False,
    ) -> None:
        self.client = client
        self.name = name
        self.namespace = namespace
        self.identity = identity or default_identity()
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.clock = clock
        self.release_on_cancel = release_on_cancel
        self._observed: tuple[str, str, float] | None = None  # (holder, renewTime, seen at)
        self.is_leader = False

    def _lease_body(self, existing: dict[str, Any] | None, transitions: int) -> dict[str, Any]:
        now = meta.format_micro_time(self.clock.now())
        spec = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": int(self.lease_duration),
            "renewTime": now,
            "leaseTransitions": transitions,
        }
        if existing is None or (existing.get("spec") or {}).get("holderIdentity") != self.identity:
            spec["acquireTime"] = now
        else:
            spec["acquireTime"] = existing["spec"].get("acquireTime", now)
        body: dict[str, Any] = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": spec,
        }
        if existing is not None:
            body["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
        return body

    async def try_acquire_or_renew(self) -> bool:
        try:
            lease = await self.client.get(LEASES, self.name, self.namespace)
        except errors.StatusError as exc:
            if not errors.is_not_found(exc):
                raise
            try:
                await self.client.create(LEASES, self._lease_body(None, 0), self.namespace)
            except errors.StatusError as create_exc:
                if errors.is_already_exists(create_exc):
                    return False
                raise
            return True
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        renew = spec.get("renewTime") or ""
        now = self.clock.monotonic()
        if self._observed is None or self._observed[:2] != (holder, renew):
            self._observed = (holder, renew, now)
        duration = float(spec.get("leaseDurationSeconds") or self.lease_duration)
        expired = now - self._observed[2] > duration
        if holder and holder != self.identity and not expired:
            return False
        transitions = int(spec.get("leaseTransitions") or 0)
        if holder != self.identity:
            transitions += 1
        try:
            await self.client.update(LEASES, self._lease_body(lease, transitions))
        except errors.StatusError as exc:
            if errors.is_conflict(exc):
                return False
            raise
        return True

    async def run(self, lead: Callable[[], Awaitable[None]]) -> None:
        """Campaign until leading, run ``lead()`` while leading; return when leadership is lost
        (``lead`` is then cancelled) or ``lead`` returns."""
        while True:
            try:
                if await self.try_acquire_or_renew():
                    break
            except (errors.StatusError, rest.TransportError) as exc:
                log.debug("leader election %s: %r", self.name, exc)
            await self.clock.sleep(self.retry_period)
        self.is_leader = True
        log.info("%s: became leader of %s/%s", self.identity, self.namespace, self.name)
        work = asyncio.ensure_future(lead())
        renewer = asyncio.ensure_future(self._renew_loop())
        cancelled = False
        try:
            await asyncio.wait({work, renewer}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            cancelled = True
            raise
        finally:
            self.is_leader = False
            for task in (work, renewer):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            if cancelled and self.release_on_cancel:
                await self._release()

    async def _release(self) -> None:
        """Give the Lease up (only if still ours): the work has stopped already."""
        try:
            async with asyncio.timeout(self.retry_period):
                lease = await self.client.get(LEASES, self.name, self.namespace)
                spec = lease.get("spec") or {}
                if spec.get("holderIdentity") != self.identity:
                    return
                now = meta.format_micro_time(self.clock.now())
                lease["spec"] = {
                    "leaseDurationSeconds": 1,
                    "acquireTime": now,
                    "renewTime": now,
                    "leaseTransitions": int(spec.get("leaseTransitions") or 0),
                }
                await self.client.update(LEASES, lease)
                log.info("%s: released the lease %s/%s", self.identity, self.namespace, self.name)
        except (errors.StatusError, rest.TransportError, OSError, TimeoutError) as exc:
            log.info("could not release the lease %s/%s: %r", self.namespace, self.name, exc)

    async def _renew_loop(self) -> None:
        last_ok = self.clock.monotonic()
        while True:
            await self.clock.sleep(self.retry_period)
            try:
                renewed: bool | None = await self.try_acquire_or_renew()
            except (errors.StatusError, rest.TransportError) as exc:
                log.debug("renewing lease %s: %r", self.name, exc)
                renewed = None
            if renewed:
                last_ok = self.clock.monotonic()
                continue
            if renewed is False or self.clock.monotonic() - last_ok > self.renew_deadline:
                log.warning("%s: lost the lease %s/%s", self.identity, self.namespace, self.name)
                return
