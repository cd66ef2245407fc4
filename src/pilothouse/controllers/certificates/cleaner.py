"""Delete finished or stale CertificateSigningRequests (upstream's csrcleaner).

Approved-and-issued, denied and failed requests go after an hour, pending ones
after a day, and any whose certificate has expired — checked every hour.
"""

from __future__ import annotations

import datetime
import time
from typing import Any

from cryptography import x509

from pilothouse.api import errors, meta
from pilothouse.api.validation import certificates as csr_validation
from pilothouse.client import rest
from pilothouse.controllers import base

Obj = dict[str, Any]
KEY = "csrcleaner"
DONE_AFTER = 3600.0
PENDING_AFTER = 24 * 3600.0


def expired_or_stale(csr: Obj, now: float) -> bool:
    created = meta.parse_time(csr["metadata"].get("creationTimestamp")) or now
    status = csr.get("status") or {}
    conditions = status.get("conditions") or []
    kinds = {c.get("type") for c in conditions}
    cert = csr_validation.decode_bytes(status.get("certificate"))
    if cert:
        try:
            issued = x509.load_pem_x509_certificate(cert)
            if issued.not_valid_after_utc < datetime.datetime.fromtimestamp(now, datetime.UTC):
                return True
        except ValueError:
            pass
    if kinds & {"Denied", "Failed"} or ("Approved" in kinds and cert):
        return now - created > DONE_AFTER
    if not kinds:
        return now - created > PENDING_AFTER
    return False


class CSRCleanerController(base.Controller):
    name = "csrcleaner"
    workers = 1

    def __init__(self, ctx: Any, *, interval: float = 3600.0) -> None:
        super().__init__(clock=ctx.clock)
        self.client: rest.Client = ctx.client
        self.resource = ctx.resource("certificates.k8s.io", "v1", "certificatesigningrequests")
        self.csrs = ctx.informers.informer(self.resource)
        self.interval = interval

    async def wait_ready(self) -> None:
        await self.csrs.wait_synced()
        self.queue.add(KEY)

    async def sync(self, key: str) -> None:
        try:
            now = time.time()
            for csr in self.csrs.indexer.list():
                if expired_or_stale(csr, now):
                    try:
                        await self.client.delete(self.resource, csr["metadata"]["name"])
                    except errors.StatusError as exc:
                        if not errors.is_not_found(exc):
                            raise
        finally:
            self.queue.add_after(KEY, self.interval)
