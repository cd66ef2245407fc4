"""ResourceQuota (upstream's admission plugin of the same name), the last in the chain.

A write that would take a namespace past one of its quotas is refused with
upstream's words (``exceeded quota: compute, requested: pods=1, used: pods=2,
limited: pods=2``); one that fits is charged at once: the quota's ``status.used``
is raised before the write is answered, so two creates racing for the last slot
cannot both win. The ResourceQuota controller later recounts ``status.used``
from the objects themselves (deletions give the room back).

Concurrency, as upstream's quota evaluator: the requests of one namespace wait in
one queue; a short-lived task takes everything queued, checks each request in
turn against a running copy of the quotas, writes each changed quota once
(conditional on the version it read) and answers them all. When a write
conflicts, the quotas are read again and the requests re-checked (three times
at most). Different namespaces proceed in parallel. Dry runs are checked but
never charged.
"""

from __future__ import annotations

import asyncio
import copy
import time
from dataclasses import dataclass, field
from typing import Any

from pilothouse import supervisor
from pilothouse.api import errors, resources
from pilothouse.api.quota import evaluators, resourcelist
from pilothouse.apiserver.admission import lookup
from pilothouse.apiserver.admission.chain import Deps
from pilothouse.apiserver.admission.interface import CREATE, UPDATE, Attributes, Plugin

Obj = dict[str, Any]

CONFIG_API_VERSIONS = (
    "apiserver.config.k8s.io/v1",
    "resourcequota.admission.k8s.io/v1beta1",
    "resourcequota.admission.k8s.io/v1alpha1",
)
CONFIG_KIND = "ResourceQuotaConfiguration"
RETRIES = 3
FIELD_MANAGER = "kube-apiserver"
# A request that waits longer than this for its namespace's turn is answered 500, as
# upstream's "resource quota evaluates timeout".
EVALUATION_TIMEOUT = 10.0


class ConfigError(ValueError):
    """A ResourceQuotaConfiguration that cannot be used."""


@dataclass(frozen=True)
class LimitedResource:
    """Resources that may only be consumed under a quota that covers them."""

    group: str
    resource: str
    match_contains: tuple[str, ...] = ()
    match_scopes: tuple[Obj, ...] = ()


def parse_configuration(doc: dict[str, Any] | None) -> list[LimitedResource]:
    if doc is None:
        return []
    if doc.get("kind") != CONFIG_KIND or doc.get("apiVersion") not in CONFIG_API_VERSIONS:
        raise ConfigError(
            f"ResourceQuota configuration must be a {CONFIG_KIND} of apiVersion "
            f"{' or '.join(CONFIG_API_VERSIONS)}"
        )
    out = []
    for i, entry in enumerate(doc.get("limitedResources") or []):
        if not isinstance(entry, dict) or not entry.get("resource"):
            raise ConfigError(f"limitedResources[{i}]: resource is required")
        out.append(
            LimitedResource(
                group=str(entry.get("apiGroup") or ""),
                resource=str(entry["resource"]),
                match_contains=tuple(str(m) for m in entry.get("matchContains") or []),
                match_scopes=tuple(
                    s for s in entry.get("matchScopes") or [] if isinstance(s, dict)
                ),
            )
        )
    return out


def _go_requirements(reqs: list[Obj]) -> str:
    """``%v`` of []ScopedResourceSelectorRequirement: ``[{PriorityClass In [a b]}]``."""
    inner = " ".join(
        f"{{{r.get('scopeName', '')} {r.get('operator', '')} [{' '.join(map(str, r.get('values') or []))}]}}"
        for r in reqs
    )
    return f"[{inner}]"


@dataclass
class _Waiter:
    attrs: Attributes
    future: asyncio.Future[None]
    error: BaseException | None = None
    # Still waiting for a quota write to succeed before it may pass.
    pending: bool = True


@dataclass
class _Queue:
    waiting: list[_Waiter] = field(default_factory=list)
    busy: bool = False


class ResourceQuota(Plugin):
    name = "ResourceQuota"

    def __init__(self, deps: Deps) -> None:
        self.cache = deps.cache
        self.store_for = deps.store_for
        self.evaluators = evaluators.Registry(deps.registry)
        self.limited = parse_configuration(deps.config.plugin(self.name))
        self._queues: dict[str, _Queue] = {}
        self._tasks = supervisor.Supervisor("admission-resourcequota")

    def handles(self, resource: resources.Resource, subresource: str, operation: str) -> bool:
        if subresource or not resource.namespaced or operation not in (CREATE, UPDATE):
            return False
        if (resource.group, resource.plural) in evaluators.IGNORED:
            return False
        return self.evaluators.for_resource(resource.group, resource.plural).handles(operation)

    async def stop(self) -> None:
        await self._tasks.stop()

    async def validate(self, a: Attributes) -> None:
        if not a.namespace or a.obj is None:
            return
        if not self.limited:
            quotas = lookup.in_namespace(self.cache, lookup.RESOURCE_QUOTAS, a.namespace)
            evaluator = self.evaluators.for_resource(a.group, a.plural)
            if not any(evaluator.matches(q, a.obj) for q in quotas):
                return  # the common case: nothing to charge, no queue to wait in
        loop = asyncio.get_running_loop()
        waiter = _Waiter(a, loop.create_future())
        queue = self._queues.setdefault(a.namespace, _Queue())
        queue.waiting.append(waiter)
        if not queue.busy:
            queue.busy = True
            self._tasks.spawn(self._drain(a.namespace, queue), name=f"quota-{a.namespace}")
        try:
            await asyncio.wait_for(asyncio.shield(waiter.future), EVALUATION_TIMEOUT)
        except TimeoutError:
            raise errors.internal("resource quota evaluates timeout") from None

    async def _drain(self, namespace: str, queue: _Queue) -> None:
        try:
            while queue.waiting:
                batch, queue.waiting = queue.waiting, []
                try:
                    await self._check_batch(namespace, batch)
                except Exception as exc:  # answer everyone; never leave a request hanging
                    for w in batch:
                        if w.pending and w.error is None:
                            w.error = exc
                finally:
                    for w in batch:
                        if not w.future.done():
                            if w.error is not None:
                                w.future.set_exception(w.error)
                            else:
                                w.future.set_result(None)
        finally:
            queue.busy = False
            if not queue.waiting and self._queues.get(namespace) is queue:
                del self._queues[namespace]

    async def _check_batch(self, namespace: str, batch: list[_Waiter]) -> None:
        await self.cache.consistent()
        quotas = lookup.in_namespace(self.cache, lookup.RESOURCE_QUOTAS, namespace)
        if not quotas and not self.limited:
            for w in batch:
                w.pending = False
            return
        await self._check_quotas(namespace, [copy.deepcopy(q) for q in quotas], batch, RETRIES)

    async def _check_quotas(
        self, namespace: str, quotas: list[Obj], batch: list[_Waiter], retries: int
    ) -> None:
        original = [resourcelist.parse((q.get("status") or {}).get("used")) for q in quotas]
        running = quotas
        changed_any = False
        for w in batch:
            if not w.pending:
                continue
            try:
                updated = self._check_request(running, w.attrs)
            except errors.StatusError as exc:
                w.error, w.pending = exc, False
                continue
            if w.attrs.dry_run:
                w.pending = False
                continue
            changed = any(
                not resourcelist.equals(_used(old), _used(new))
                for old, new in zip(running, updated, strict=True)
            )
            if not changed:
                w.pending = False
            changed_any = changed_any or changed
            running = updated
        if not changed_any:
            return
        failed: list[str] = []
        last_error: BaseException | None = None
        store = self.store_for("", "resourcequotas")
        for before, quota in zip(original, running, strict=True):
            if resourcelist.equals(before, _used(quota)):
                continue
            try:
                await store.update(
                    namespace,
                    quota["metadata"]["name"],
                    quota,
                    subresource="status",
                    manager=FIELD_MANAGER,
                )
            except errors.StatusError as exc:
                failed.append(quota["metadata"]["name"])
                last_error = exc
        if not failed:
            for w in batch:
                w.pending = False
            return
        if retries <= 0:
            for w in batch:
                if w.pending:
                    w.error, w.pending = last_error, False
            return
        await self.cache.consistent()
        fresh = [
            copy.deepcopy(q)
            for q in lookup.in_namespace(self.cache, lookup.RESOURCE_QUOTAS, namespace)
            if q["metadata"]["name"] in failed
        ]
        await self._check_quotas(namespace, fresh, batch, retries - 1)

    # --- one request against the quotas (upstream's CheckRequest) -------------------------
    def _check_request(self, quotas: list[Obj], a: Attributes) -> list[Obj]:
        evaluator = self.evaluators.for_resource(a.group, a.plural)
        if not evaluator.handles(a.operation) or a.obj is None:
            return quotas
        obj = a.obj
        limited = [lr for lr in self.limited if (lr.group, lr.resource) == (a.group, a.plural)]
        limited_scopes = [
            s for lr in self.limited for s in lr.match_scopes if evaluator.matches_scope(s, obj)
        ]
        now = time.time()
        limited_names: set[str] = set()
        if limited:
            for name, value in evaluator.usage(obj, now).items():
                if value.sign() > 0 and any(m in name for lr in limited for m in lr.match_contains):
                    limited_names.add(name)
        interesting: list[int] = []
        restricted_all: set[str] = set()
        restricted_scopes: list[Obj] = []
        for i, quota in enumerate(quotas):
            restricted_scopes += [
                s for s in evaluators.scope_selectors(quota) if evaluator.matches_scope(s, obj)
            ]
            if not evaluator.matches(quota, obj):
                continue
            name = quota["metadata"]["name"]
            hard = _hard(quota)
            restricted = evaluator.matching_resources(hard)
            problem = evaluator.constraints(restricted, obj)
            if problem:
                raise a.forbidden(f"failed quota: {name}: {problem}")
            used = (quota.get("status") or {}).get("used") or {}
            if any(r not in used for r in restricted if r in hard):
                raise a.forbidden(
                    f"status unknown for quota: {name}, resources: "
                    f"{resourcelist.pretty_names(restricted)}"
                )
            interesting.append(i)
            restricted_all.update(restricted)
        delta = evaluator.usage(obj, now)
        negative = resourcelist.negative(delta)
        if negative:
            raise a.forbidden(
                f"quota usage is negative for resource(s): {resourcelist.pretty_names(negative)}"
            )
        if a.operation == UPDATE:
            if a.old is None:
                raise a.forbidden(
                    "unable to get previous usage since prior version of object was not found"
                )
            if (a.old.get("metadata") or {}).get("resourceVersion"):
                delta = resourcelist.subtract_non_negative(delta, evaluator.usage(a.old, now))
        if resourcelist.is_zero(delta):
            return quotas
        uncovered = sorted(limited_names - restricted_all)
        if uncovered:
            raise a.forbidden(f"insufficient quota to consume: {','.join(uncovered)}")
        covered = {s.get("scopeName") for s in restricted_scopes}
        uncovered_scopes = [s for s in limited_scopes if s.get("scopeName") not in covered]
        if uncovered_scopes:
            # Upstream returns this as a plain error, which the server answers as a 500.
            raise errors.StatusError(
                500,
                "",
                f"insufficient quota to match these scopes: {_go_requirements(uncovered_scopes)}",
            )
        if not interesting:
            return quotas
        out = list(quotas)
        for i in interesting:
            quota = out[i]
            hard = _hard(quota)
            used = _used(quota)
            requested = resourcelist.mask(delta, hard)
            new_used = resourcelist.add(used, requested)
            ok, exceeded = resourcelist.less_than_or_equal(
                resourcelist.mask(new_used, requested), hard
            )
            if not ok:
                raise a.forbidden(
                    f"exceeded quota: {quota['metadata']['name']}, "
                    f"requested: {resourcelist.pretty(resourcelist.mask(requested, exceeded))}, "
                    f"used: {resourcelist.pretty(resourcelist.mask(used, exceeded))}, "
                    f"limited: {resourcelist.pretty(resourcelist.mask(hard, exceeded))}"
                )
            updated = dict(quota)
            updated["status"] = {
                **(quota.get("status") or {}),
                "used": resourcelist.dump(new_used),
            }
            out[i] = updated
        return out


def _hard(quota: Obj) -> resourcelist.ResourceList:
    return resourcelist.parse((quota.get("status") or {}).get("hard"))


def _used(quota: Obj) -> resourcelist.ResourceList:
    return resourcelist.parse((quota.get("status") or {}).get("used"))
