"""The ResourceQuota controller: keeps every quota's ``status`` true to the objects.

For a quota it copies ``spec.hard`` to ``status.hard`` and recounts ``status.used``
from informer caches: pods (requests, limits, ``pods`` while they run,
``count/pods`` always), Services, PersistentVolumeClaims, and ``count/<resource>``
of any other resource a quota names (those informers, metadata only, start the
first time a quota asks). Only the objects that fall under the quota's scopes and
scope selector count. The status is written only when it changed.

When it runs: a new quota or a changed ``spec.hard`` at once, and once more a
moment later (objects made while it had no status were not charged); a
deleted object, a pod that finished, a Service that changed type or a claim that
changed size recount the quotas of its namespace that track it (admission
charged the creation already); and every quota again each ``resync`` seconds.
Quotas are synced by ``workers`` tasks, never one quota by two at a time.
"""

from __future__ import annotations

import logging
from typing import Any

from pilothouse.api import errors, resources
from pilothouse.api.quota import evaluators, resourcelist
from pilothouse.client import informer, lister, rest
from pilothouse.controllers import base

log = logging.getLogger(__name__)

Obj = dict[str, Any]
RESYNC_PERIOD = 300.0  # kube-controller-manager's --resource-quota-sync-period
SYNC_TIMEOUT = 10.0  # how long a sync waits for an informer it just started
# Admission charges nothing to a quota until its status.hard is set, and objects created
# meanwhile may not have reached this controller's informers when it first counts: a new
# or changed quota is counted once more this much later (upstream waits for the full resync).
RECOUNT_AFTER = 2.0
# Core resources whose usage needs the whole object (the rest are counted by name).
FULL_OBJECTS = (("", "pods"), ("", "services"), ("", "persistentvolumeclaims"))


class NotSynced(Exception):
    """An informer the quota needs has not listed yet (the sync is retried)."""


class ResourceQuotaController(base.Controller):
    name = "resourcequota"
    workers = 5

    def __init__(self, ctx: Any, *, resync: float = RESYNC_PERIOD) -> None:
        super().__init__(clock=ctx.clock)
        self.client: rest.Client = ctx.client
        self.registry: resources.Registry = ctx.registry
        self.factory: informer.InformerFactory = ctx.informers
        self.evaluators = evaluators.Registry(self.registry)
        self.resync = resync
        self.quota_resource = ctx.resource("", "v1", "resourcequotas")
        self.quotas = ctx.informers.informer(self.quota_resource)
        self.quotas.add_handlers(
            on_add=self._quota_added,
            on_update=self._quota_updated,
            on_delete=lambda _q: None,
        )
        self._informers: dict[tuple[str, str], informer.Informer] = {}
        self._started = False
        for group, plural in FULL_OBJECTS:
            self._handle(self._watch(group, plural, metadata_only=False), group, plural)

    def _watch(self, group: str, plural: str, *, metadata_only: bool) -> informer.Informer:
        key = (group, plural)
        inf = self._informers.get(key)
        if inf is None:
            resource = next(
                r
                for r in self.registry.resources
                if r.group == group and r.plural == plural and r.storage_group is None
            )
            inf = self._informers[key] = self.factory.informer(
                resource, metadata_only=metadata_only
            )
            if self._started:
                self._handle(inf, group, plural)
                self.factory.start_late()
        return inf

    def _handle(self, inf: informer.Informer, group: str, plural: str) -> None:
        def updated(old: Obj, new: Obj) -> None:
            self._object_updated(group, plural, old, new)

        def deleted(obj: Obj) -> None:
            self._replenish(group, plural, obj)

        inf.add_handlers(on_update=updated, on_delete=deleted)

    async def wait_ready(self) -> None:
        await self.quotas.wait_synced()
        for inf in self._informers.values():
            await inf.wait_synced()
        self._started = True
        self.queue.add_after("resync", self.resync)

    # --- events ---------------------------------------------------------------------------
    def _quota_added(self, quota: Obj) -> None:
        self.enqueue(quota)

    def _quota_updated(self, old: Obj, new: Obj) -> None:
        hard = resourcelist.parse((new.get("spec") or {}).get("hard"))
        status_hard = resourcelist.parse((new.get("status") or {}).get("hard"))
        if (
            not resourcelist.equals(hard, status_hard)
            or (new.get("status") or {}).get("used") is None
        ):
            self.enqueue(new)

    def _object_updated(self, group: str, plural: str, old: Obj, new: Obj) -> None:
        if plural == "pods":
            now = self.clock.now()
            notify = evaluators.counts_for_compute(old, now) and not evaluators.counts_for_compute(
                new, now
            )
        elif plural == "services":
            notify = (old.get("spec") or {}).get("type") != (new.get("spec") or {}).get("type")
        elif plural == "persistentvolumeclaims":
            before = resourcelist.parse(
                (((old.get("spec") or {}).get("resources") or {}).get("requests")) or {}
            )
            after = resourcelist.parse(
                (((new.get("spec") or {}).get("resources") or {}).get("requests")) or {}
            )
            notify = not resourcelist.equals(before, after)
        else:
            notify = False  # other objects use the same whatever changes
        if notify:
            self._replenish(group, plural, new)

    def _replenish(self, group: str, plural: str, obj: Obj) -> None:
        """Recount the namespace's quotas that track what ``obj`` used."""
        namespace = (obj.get("metadata") or {}).get("namespace") or ""
        evaluator = self.evaluators.for_resource(group, plural)
        for quota in self.quotas.indexer.list_namespace(namespace):
            hard = (quota.get("status") or {}).get("hard") or {}
            if evaluator.matching_resources(hard):
                self.enqueue(quota)

    # --- the sync --------------------------------------------------------------------------
    async def sync(self, key: str) -> None:
        if key == "resync":
            for quota in self.quotas.indexer.list():
                self.enqueue(quota)
            self.queue.add_after("resync", self.resync)
            return
        quota = self.quotas.indexer.get(key)
        if quota is None:
            return
        await self._sync_quota(quota)

    async def _calculate(
        self, quota: Obj, hard: list[str]
    ) -> tuple[resourcelist.ResourceList, list[str]]:
        """CalculateUsage: (usage of what some evaluator tracks, names it could not count)."""
        namespace = quota["metadata"].get("namespace", "")
        selectors = evaluators.scope_selectors(quota)
        matched = set(self.evaluators.tracked(hard))
        usage: resourcelist.ResourceList = {}
        failed: list[str] = []
        for evaluator in self.evaluators.all():
            names = [n for n in evaluator.matching_resources(hard) if n in matched]
            if not names:
                continue
            inf = self._watch(
                evaluator.group,
                evaluator.plural,
                metadata_only=(evaluator.group, evaluator.plural) not in FULL_OBJECTS,
            )
            if not inf.has_synced():
                # An informer started for this quota lists first (a worker waits, not all).
                try:
                    await inf.wait_synced(SYNC_TIMEOUT)
                except TimeoutError:
                    failed += names
                    continue
            stats: resourcelist.ResourceList = {n: resourcelist.ZERO for n in names}
            now = self.clock.now()
            for obj in inf.indexer.list_namespace(namespace):
                if all(evaluator.matches_scope(s, obj) for s in selectors):
                    resourcelist.add_into(stats, evaluator.usage(obj, now))
            usage = resourcelist.add(usage, resourcelist.mask(stats, names))
        return usage, failed

    async def _sync_quota(self, quota: Obj) -> None:
        spec_hard = resourcelist.parse((quota.get("spec") or {}).get("hard"))
        status = quota.get("status") or {}
        status_hard = resourcelist.parse(status.get("hard"))
        previous = resourcelist.parse(status.get("used"))
        hard_changed = not resourcelist.equals(spec_hard, status_hard) or status.get("hard") is None
        dirty = hard_changed or status.get("used") is None
        usage, failed = await self._calculate(quota, list(spec_hard))
        used = dict(previous)
        used.update(usage)
        used = resourcelist.mask(used, spec_hard)
        dirty = dirty or not resourcelist.equals(used, previous)
        if dirty:
            updated = {
                **quota,
                "status": {"hard": resourcelist.dump(spec_hard), "used": resourcelist.dump(used)},
            }
            try:
                await self.client.update_status(self.quota_resource, updated)
            except errors.StatusError as exc:
                if errors.is_not_found(exc):
                    return
                raise
            if hard_changed:
                self.queue.add_after(lister.key_of(quota), RECOUNT_AFTER)
        if failed:
            raise NotSynced(
                f"quota {lister.key_of(quota)}: waiting to count {', '.join(sorted(failed))}"
            )
