"""The HorizontalPodAutoscaler controller (upstream's ``podautoscaler/horizontal.go``).

Every HPA is reconciled every ``sync_period`` (15 s, upstream's default): read the
target's ``scale`` subresource (any kind that has one), compute a replica count
from each metric (:mod:`.replicas`, from :mod:`.metrics`), take the largest, bound
and smooth it (:mod:`.normalize`), write the new count through ``scale`` if it
changed, then write the HPA's status with the AbleToScale, ScalingActive and
ScalingLimited conditions and upstream's events. One HPA is reconciled by one
worker at a time; different HPAs in parallel; recommendations and scale events are
kept per HPA in memory.
"""

from __future__ import annotations

import logging
from typing import Any

from pilothouse.api import errors, meta, quantity, resources, selectors
from pilothouse.client import events, informer, lister, rest
from pilothouse.controllers import base
from pilothouse.controllers.podautoscaler import metrics as metrics_mod
from pilothouse.controllers.podautoscaler import normalize, replicas
from pilothouse.controllers.podautoscaler.status import Conditions, StatusError

log = logging.getLogger(__name__)

Obj = dict[str, Any]
SYNC_PERIOD_S = 15.0


class HorizontalPodAutoscalerController(base.Controller):
    name = "horizontalpodautoscaling"
    workers = 5

    def __init__(
        self,
        ctx: Any,
        *,
        sync_period: float = SYNC_PERIOD_S,
        metrics: metrics_mod.MetricsClient | None = None,
    ) -> None:
        super().__init__(clock=ctx.clock)
        self.client: rest.Client = ctx.client
        self.registry: resources.Registry = ctx.registry
        self.sync_period = sync_period
        self.metrics = metrics or metrics_mod.ResourceMetrics(ctx.client)
        self.hpa_resource = ctx.resource("autoscaling", "v2", "horizontalpodautoscalers")
        self.hpas: informer.Informer = ctx.informers.informer(self.hpa_resource)
        self.pods: informer.Informer = ctx.informers.informer(ctx.resource("", "v1", "pods"))
        self.recorder: events.EventRecorder = ctx.recorder("horizontal-pod-autoscaler")
        self.history = normalize.History()
        self.hpas.add_handlers(
            on_add=self._enqueue,
            on_update=lambda _old, new: self._enqueue(new),
            on_delete=self._deleted,
        )

    async def wait_ready(self) -> None:
        await self.hpas.wait_synced()
        await self.pods.wait_synced()

    def _enqueue(self, hpa: Obj) -> None:
        # Upstream delays every request by the sync period and drops duplicates, so each
        # HPA is looked at once per period; a new one waits its first period too.
        self.queue.add_after(lister.key_of(hpa), self.sync_period)

    def _deleted(self, hpa: Obj) -> None:
        self.history.forget(lister.key_of(hpa))

    async def sync(self, key: str) -> None:
        hpa = self.hpas.indexer.get(key)
        if hpa is None:
            self.history.forget(key)
            return
        try:
            await self._reconcile(key, meta.deep_copy(hpa))
        except StatusError as exc:
            # Told to users in the conditions and events; tried again next period.
            log.debug("hpa %s: %s: %s", key, exc.reason, exc.message)
        finally:
            if self.hpas.indexer.get(key) is not None:
                self.queue.add_after(key, self.sync_period)

    # --- the target -------------------------------------------------------------------
    def _scale_resource(self, ref: Obj) -> resources.Resource:
        group = str(ref.get("apiVersion") or "").rpartition("/")[0]
        kind = str(ref.get("kind") or "")
        matches = [
            r
            for r in self.registry.resources
            if r.group == group and r.kind == kind and r.has("scale")
        ]
        if not matches:
            raise LookupError(f'no matches for kind "{kind}" in group "{group}"')
        version = str(ref.get("apiVersion") or "").rpartition("/")[2]
        return next((r for r in matches if r.version == version), matches[0])

    async def _get_scale(self, hpa: Obj) -> tuple[resources.Resource, Obj]:
        ref = hpa["spec"].get("scaleTargetRef") or {}
        ns = hpa["metadata"].get("namespace", "")
        try:
            target = self._scale_resource(ref)
        except LookupError as exc:
            raise StatusError(
                "FailedGetScale",
                f"unable to determine resource for scale target reference: {exc}",
            ) from None
        path = rest.resource_path(target, ns, str(ref.get("name", "")), "scale")
        try:
            scale: Obj = await self.client.request("GET", path)
        except errors.StatusError as exc:
            raise StatusError("FailedGetScale", exc.message) from None
        return target, scale

    # --- reconcile ----------------------------------------------------------------------
    async def _reconcile(self, key: str, hpa: Obj) -> None:
        spec = hpa.get("spec") or {}
        status = hpa.setdefault("status", {})
        old_status = meta.deep_copy(status)
        cond = Conditions(status, self.clock.now())
        ref = spec.get("scaleTargetRef") or {}
        reference = f"{ref.get('kind')}/{ref.get('name')}"
        try:
            target, scale = await self._get_scale(hpa)
        except StatusError as exc:
            cond.set(
                "AbleToScale",
                False,
                "FailedGetScale",
                f"the HPA controller was unable to get the target's current scale: {exc.message}",
            )
            self.recorder.event(hpa, events.WARNING, "FailedGetScale", exc.message)
            await self._write_status(hpa, old_status)
            raise
        cond.set(
            "AbleToScale",
            True,
            "SucceededGetScale",
            "the HPA controller was able to get the target's current scale",
        )
        current = int((scale.get("spec") or {}).get("replicas") or 0)
        status["currentReplicas"] = current
        minimum = int(spec.get("minReplicas") or 1)
        maximum = int(spec.get("maxReplicas") or 0)
        rescale_reason = ""
        metric_statuses: list[Obj] | None = None
        if current == 0 and minimum != 0:
            desired = 0
            cond.set(
                "ScalingActive",
                False,
                "ScalingDisabled",
                "scaling is disabled since the replica count of the target is zero",
            )
        elif current > maximum:
            rescale_reason = "Current number of replicas above Spec.MaxReplicas"
            desired = maximum
        elif current < minimum:
            rescale_reason = "Current number of replicas below Spec.MinReplicas"
            desired = minimum
        else:
            try:
                proposal, metric_name, metric_statuses = await self._replicas_for_metrics(
                    hpa, scale, current, cond
                )
            except StatusError as exc:
                status["desiredReplicas"] = int(status.get("desiredReplicas") or 0)
                if exc.statuses is not None:
                    status["currentMetrics"] = exc.statuses or None
                await self._write_status(hpa, old_status)
                raise
            behavior = spec.get("behavior")
            now = self.clock.now()
            if behavior is None:
                outcome = normalize.without_behavior(
                    self.history,
                    key,
                    current=current,
                    desired=proposal,
                    minimum=minimum,
                    maximum=maximum,
                    now=now,
                )
            else:
                outcome = normalize.with_behavior(
                    self.history,
                    key,
                    behavior,
                    current=current,
                    desired=proposal,
                    minimum=minimum,
                    maximum=maximum,
                    now=now,
                )
            cond.set("AbleToScale", True, outcome.able_reason, outcome.able_message)
            cond.set(
                "ScalingLimited", outcome.limited, outcome.limited_reason, outcome.limited_message
            )
            desired = outcome.replicas
            if desired > current:
                rescale_reason = f"{metric_name} above target"
            elif desired < current:
                rescale_reason = "All metrics below target"
        rescale = desired != current
        if rescale:
            scale = meta.deep_copy(scale)
            scale.setdefault("spec", {})["replicas"] = desired
            try:
                await self.client.update(target, scale, subresource="scale")
            except errors.StatusError as exc:
                self.recorder.event(
                    hpa,
                    events.WARNING,
                    "FailedRescale",
                    f"New size: {desired}; reason: {rescale_reason}; error: {exc.message}",
                )
                cond.set(
                    "AbleToScale",
                    False,
                    "FailedUpdateScale",
                    f"the HPA controller was unable to update the target scale: {exc.message}",
                )
                await self._write_status(hpa, old_status)
                raise
            cond.set(
                "AbleToScale",
                True,
                "SucceededRescale",
                f"the HPA controller was able to update the target scale to {desired}",
            )
            self.recorder.event(
                hpa,
                events.NORMAL,
                "SuccessfulRescale",
                f"New size: {desired}; reason: {rescale_reason}",
            )
            self.history.record_scale(key, spec.get("behavior"), current, desired, self.clock.now())
            log.info(
                "hpa %s: scaled %s from %d to %d: %s",
                key,
                reference,
                current,
                desired,
                rescale_reason,
            )
            status["lastScaleTime"] = meta.format_time(self.clock.now())
        status["desiredReplicas"] = desired
        if metric_statuses is not None:
            status["currentMetrics"] = metric_statuses or None
        if hpa["metadata"].get("generation") is not None:
            status["observedGeneration"] = hpa["metadata"]["generation"]
        await self._write_status(hpa, old_status)

    async def _write_status(self, hpa: Obj, old_status: Obj) -> None:
        status = {k: v for k, v in hpa["status"].items() if v is not None}
        status.setdefault("currentReplicas", 0)
        status.setdefault("desiredReplicas", 0)
        hpa["status"] = status
        if status == old_status:
            return
        try:
            await self.client.update_status(self.hpa_resource, hpa)
        except errors.StatusError as exc:
            if not errors.is_not_found(exc):
                raise

    # --- metrics ------------------------------------------------------------------------
    async def _replicas_for_metrics(
        self, hpa: Obj, scale: Obj, current: int, cond: Conditions
    ) -> tuple[int, str, list[Obj]]:
        selector_text = str((scale.get("status") or {}).get("selector") or "")
        if not selector_text:
            self.recorder.event(hpa, events.WARNING, "SelectorRequired", "selector is required")
            cond.set(
                "ScalingActive",
                False,
                "InvalidSelector",
                "the HPA target's scale is missing a selector",
            )
            raise StatusError("SelectorRequired", "selector is required")
        try:
            selector = selectors.parse_label_selector(selector_text)
        except selectors.SelectorError as exc:
            message = (
                f"couldn't convert selector into a corresponding internal selector object: {exc}"
            )
            self.recorder.event(hpa, events.WARNING, "InvalidSelector", message)
            cond.set("ScalingActive", False, "InvalidSelector", message)
            raise StatusError("InvalidSelector", message) from None
        ns = hpa["metadata"].get("namespace", "")
        pods = [
            p
            for p in self.pods.indexer.list_namespace(ns)
            if selector.matches(p["metadata"].get("labels") or {})
        ]
        specs = hpa["spec"].get("metrics") or []
        statuses: list[Obj] = []
        best: int | None = None
        best_name = ""
        failures: list[str] = []
        for spec in specs:
            try:
                proposal, name, metric_status = await self._replicas_for_metric(
                    hpa, spec, current, selector_text, pods, cond
                )
            except StatusError as exc:
                failures.append(exc.message)
                statuses.append({"type": ""})  # an empty status keeps positions (upstream)
                continue
            statuses.append(metric_status)
            if best is None or proposal > best:
                best, best_name = proposal, name
        if failures and (best is None or len(failures) == len(specs)):
            message = f"invalid metrics ({len(failures)} invalid out of {len(specs)}), first error is: {failures[0]}"
            self.recorder.event(hpa, events.WARNING, "FailedComputeMetricsReplicas", message)
            raise StatusError(
                "FailedComputeMetricsReplicas",
                message,
                statuses=[s for s in statuses if s.get("type")],
            )
        assert best is not None
        cond.set(
            "ScalingActive",
            True,
            "ValidMetricFound",
            f"the HPA was able to successfully calculate a replica count from {best_name}",
        )
        return best, best_name, [s for s in statuses if s.get("type")]

    async def _replicas_for_metric(
        self, hpa: Obj, spec: Obj, current: int, selector: str, pods: list[Obj], cond: Conditions
    ) -> tuple[int, str, Obj]:
        kind = spec.get("type")
        if kind not in ("Resource", "ContainerResource"):
            message = f'the HPA was unable to compute the replica count: unsupported metric source type "{kind}"'
            cond.set("ScalingActive", False, "InvalidMetricSourceType", message)
            self.recorder.event(
                hpa,
                events.WARNING,
                "InvalidMetricSourceType",
                f'unknown metric source type "{kind}"',
            )
            raise StatusError("InvalidMetricSourceType", message)
        field = "resource" if kind == "Resource" else "containerResource"
        source = spec.get(field) or {}
        resource = str(source.get("name") or "")
        container = str(source.get("container") or "") if kind == "ContainerResource" else ""
        target = source.get("target") or {}
        ns = hpa["metadata"].get("namespace", "")
        reason = (
            "FailedGetResourceMetric" if kind == "Resource" else "FailedGetContainerResourceMetric"
        )
        by_utilization = target.get("averageUtilization") is not None
        what = "utilization" if by_utilization else "usage"
        now = self.clock.now()
        try:
            try:
                usage, _newest = await self.metrics.resource_metric(
                    resource, ns, selector, container
                )
            except LookupError as exc:
                raise replicas.ReplicaCalculationError(
                    f"unable to get metrics for resource {resource}: {exc}"
                ) from None
            if by_utilization:
                proposal = replicas.resource_replicas(
                    current=current,
                    target_utilization=int(target["averageUtilization"]),
                    resource=resource,
                    pods=pods,
                    metrics=usage,
                    now=now,
                    container=container,
                )
                name = f"{resource} resource utilization (percentage of request)"
                if container:
                    name = f"{resource} container resource utilization (percentage of request)"
                current_value: Obj = {
                    "averageUtilization": proposal.utilization,
                    "averageValue": _milli_quantity(proposal.raw, resource),
                }
            else:
                proposal = replicas.raw_resource_replicas(
                    current=current,
                    target_usage=quantity.milli(str(target.get("averageValue") or 0)),
                    resource=resource,
                    pods=pods,
                    metrics=usage,
                    now=now,
                )
                name = f"{resource} resource" if not container else f"{resource} container resource"
                current_value = {"averageValue": _milli_quantity(proposal.raw, resource)}
        except replicas.ReplicaCalculationError as exc:
            message = f"failed to get {resource} {what}: {exc}"
            self.recorder.event(hpa, events.WARNING, reason, message)
            cond.set(
                "ScalingActive",
                False,
                reason,
                f"the HPA was unable to compute the replica count: {message}",
            )
            raise StatusError(
                reason, f"failed to get {resource} resource metric value: {message}"
            ) from None
        body: Obj = {"name": resource, "current": current_value}
        if container:
            body = {"name": resource, "container": container, "current": current_value}
        return proposal.replicas, name, {"type": kind, field: body}


def _milli_quantity(milli: int, resource: str) -> str:
    """A milli-value as upstream's resource.NewMilliQuantity(…, DecimalSI) prints it."""
    if milli % 1000 == 0:
        return str(milli // 1000)
    return f"{milli}m"
