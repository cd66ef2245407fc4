"""Subresources with their own shapes: scale, binding, eviction, finalize.

* ``…/scale`` (deployments, replicasets, statefulsets) reads and writes an
  ``autoscaling/v1`` Scale view of the object's replicas.
* ``pods/…/binding`` (and the ``bindings`` resource) assigns a pod to a node,
  once: a second binding is a 409.
* ``pods/…/eviction`` deletes a pod unless that would break its
  PodDisruptionBudget (429, as upstream), spending one allowed disruption.
* ``namespaces/…/finalize`` changes a namespace's ``spec.finalizers``; when the
  last one goes from a terminating namespace, the namespace is removed.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from pilothouse.api import errors, meta, resources, selectors
from pilothouse.api.meta import Obj
from pilothouse.apiserver import negotiation
from pilothouse.apiserver import request as request_info
from pilothouse.apiserver.handlers import body, render
from pilothouse.apiserver.handlers.options import WriteParams
from pilothouse.apiserver.registry import deletion
from pilothouse.apiserver.registry.store import ResourceStore

SCALE_RESOURCE = resources.Resource("autoscaling", "v1", "Scale", "scale", True)
EVICTION_RESOURCE = resources.Resource("policy", "v1", "Eviction", "eviction", True)
BINDING_RESOURCE = resources.Resource("", "v1", "Binding", "bindings", True)


def _success(code: int = 201) -> web.Response:
    return web.Response(
        body=negotiation.encode(
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "code": code,
            }
        ),
        status=code,
        content_type="application/json",
    )


# --- scale ---------------------------------------------------------------------------
# Kinds whose ``spec.selector`` is a label map rather than a LabelSelector
# (upstream's scaleFromRC uses labels.SelectorFromSet).
_MAP_SELECTOR_KINDS = frozenset({("", "ReplicationController")})


def to_scale(obj: Obj, resource: resources.Resource | None = None) -> Obj:
    """The autoscaling/v1 Scale view of a workload of ``resource``."""
    md = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    if resource is not None and (resource.group, resource.kind) in _MAP_SELECTOR_KINDS:
        selector = selectors.selector_from_set(spec.get("selector"))
    else:
        selector = selectors.from_label_selector_dict(spec.get("selector"))
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: md[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in md
        },
        "spec": {"replicas": int(spec.get("replicas", 1))},
        "status": {"replicas": int(status.get("replicas") or 0), "selector": str(selector)},
    }


def apply_scale(obj: Obj, scale: Obj) -> Obj:
    """The object with the replicas a Scale asks for (and its resourceVersion precondition)."""
    spec = scale.get("spec")
    replicas = spec.get("replicas", 0) if isinstance(spec, dict) else 0
    name = (obj.get("metadata") or {}).get("name", "")
    if not isinstance(replicas, int) or isinstance(replicas, bool):
        raise errors.bad_request(
            'Scale in version "v1" cannot be handled as a Scale: spec.replicas must be an integer'
        )
    if replicas < 0:
        raise errors.invalid(
            "Scale",
            "autoscaling",
            name,
            [errors.invalid_value("spec.replicas", replicas, "must be greater than or equal to 0")],
        )
    out = dict(obj)
    out["spec"] = {**(obj.get("spec") or {}), "replicas": replicas}
    rv = (scale.get("metadata") or {}).get("resourceVersion")
    out["metadata"] = {**obj["metadata"]}
    if rv:
        out["metadata"]["resourceVersion"] = rv
    return out


def scale_of(store: ResourceStore, obj: Obj) -> Obj:
    """The Scale of ``obj``: the kind's own view (custom resources), else the workloads'."""
    view = store.strategy.to_scale(obj)
    return view if view is not None else to_scale(obj, store.resource)


def with_scale(store: ResourceStore, obj: Obj, wanted: Obj) -> Obj:
    changed = store.strategy.apply_scale(obj, wanted)
    return changed if changed is not None else apply_scale(obj, wanted)


async def scale(
    request: web.Request, store: ResourceStore, info: request_info.RequestInfo
) -> web.StreamResponse:
    output = negotiation.negotiate(request.headers.get("Accept"))
    if request.method == "GET":
        obj = await store.get(info.namespace, info.name)
        return render.response(negotiation.encode(scale_of(store, obj), output.media_type), output)
    if request.method == "PUT":
        write = WriteParams.parse(request.query, options_kind="UpdateOptions")
        warnings: list[str] = []
        raw = await body.read(request)
        wanted = body.decode_object(
            raw,
            request.headers.get("Content-Type", ""),
            resource=SCALE_RESOURCE,
            field_validation=write.field_validation,
            warnings=warnings,
        )
        if (wanted.get("metadata") or {}).get("name") not in (None, "", info.name):
            raise errors.bad_request(
                f"the name of the object ({wanted['metadata']['name']}) does not match the name on the URL ({info.name})"
            )

        async def mutate(current: Obj) -> Obj:
            return with_scale(store, current, wanted)

        updated = await store.guaranteed_update(
            info.namespace, info.name, mutate, dry_run=write.dry_run, subresource="scale"
        )
        return render.response(
            negotiation.encode(scale_of(store, updated), output.media_type), output, 200, warnings
        )
    raise errors.method_not_allowed("")


# --- binding -------------------------------------------------------------------------
async def binding(
    request: web.Request, store: ResourceStore, info: request_info.RequestInfo
) -> web.StreamResponse:
    if request.method != "POST":
        raise errors.method_not_allowed("")
    write = WriteParams.parse(request.query, options_kind="CreateOptions")
    raw = await body.read(request)
    warnings: list[str] = []
    bind = body.decode_object(
        raw,
        request.headers.get("Content-Type", ""),
        resource=BINDING_RESOURCE,
        field_validation=write.field_validation,
        warnings=warnings,
    )
    pod_name = info.name or (bind.get("metadata") or {}).get("name", "")
    if info.name and (bind.get("metadata") or {}).get("name") not in (None, "", info.name):
        raise errors.bad_request("name in URL does not match name in Binding object")
    target = bind.get("target") or {}
    node = target.get("name") if isinstance(target, dict) else None
    if not node:
        raise errors.invalid("Binding", "", pod_name, [errors.required("target.name")])
    if target.get("kind") not in (None, "", "Node"):
        raise errors.invalid(
            "Binding",
            "",
            pod_name,
            [errors.not_supported("target.kind", target.get("kind"), ["Node"])],
        )

    async def assign(pod: Obj) -> Obj:
        """The bound pod, built beside ``pod`` (the cached object: changed nowhere)."""
        spec = pod.get("spec") or {}
        md = pod["metadata"]
        if md.get("deletionTimestamp"):
            raise errors.conflict(
                "pods", "", pod_name, "pod is being deleted, cannot be assigned to a host"
            )
        if spec.get("nodeName"):
            raise errors.conflict(
                "pods",
                "",
                pod_name,
                f'pod {pod_name} is already assigned to node "{spec["nodeName"]}"',
            )
        new_md = {k: v for k, v in md.items() if k != "resourceVersion"}
        annotations = (bind.get("metadata") or {}).get("annotations") or {}
        if annotations:
            new_md["annotations"] = {**(md.get("annotations") or {}), **annotations}
        status = pod.get("status") or {}
        conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
        conditions.append(
            {
                "type": "PodScheduled",
                "status": "True",
                "lastProbeTime": None,
                "lastTransitionTime": meta.now(),
            }
        )
        return {
            **pod,
            "metadata": new_md,
            "spec": {**spec, "nodeName": node},
            "status": {**status, "conditions": conditions},
        }

    await store.guaranteed_update(
        info.namespace,
        pod_name,
        assign,
        dry_run=write.dry_run,
        subresource="binding",
        in_place=False,
    )
    return _success(201)


# --- eviction ------------------------------------------------------------------------
def _pod_ready(pod: Obj) -> bool:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return bool(c.get("status") == "True")
    return False


async def eviction(
    request: web.Request,
    store: ResourceStore,
    info: request_info.RequestInfo,
    *,
    pdbs: ResourceStore,
) -> web.StreamResponse:
    if request.method != "POST":
        raise errors.method_not_allowed("")
    raw = await body.read(request)
    warnings: list[str] = []
    ev = body.decode_object(
        raw,
        request.headers.get("Content-Type", ""),
        resource=EVICTION_RESOURCE,
        field_validation="Warn",
        warnings=warnings,
    )
    if (ev.get("metadata") or {}).get("name") not in (None, "", info.name):
        raise errors.bad_request("name in URL does not match name in Eviction object")
    opts: dict[str, Any] = ev.get("deleteOptions") or {}
    delete_options = deletion.Options(
        dry_run=bool(opts.get("dryRun")),
        grace_period_seconds=opts.get("gracePeriodSeconds"),
        propagation_policy=str(opts.get("propagationPolicy") or ""),
        precondition_uid=str((opts.get("preconditions") or {}).get("uid") or ""),
        precondition_rv=str((opts.get("preconditions") or {}).get("resourceVersion") or ""),
    )
    pod = await store.get(info.namespace, info.name)
    phase = (pod.get("status") or {}).get("phase")
    if phase in ("Succeeded", "Failed", "Pending") or pod["metadata"].get("deletionTimestamp"):
        # Terminal or not-yet-running pods carry no availability: no budget applies.
        await store.delete(info.namespace, info.name, delete_options)
        return _success(201)
    labels = pod["metadata"].get("labels") or {}
    page = await pdbs.list(info.namespace, _no_filter())
    matching = [
        e.obj
        for e in page.entries
        if labels
        and selectors.from_label_selector_dict((e.obj.get("spec") or {}).get("selector")).matches(
            labels
        )
    ]
    if len(matching) > 1:
        raise errors.StatusError(
            500,
            errors.INTERNAL_ERROR,
            "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
        )
    if matching:
        await _spend_disruption(pdbs, matching[0], pod, dry_run=delete_options.dry_run)
    await store.delete(info.namespace, info.name, delete_options)
    return _success(201)


def _no_filter() -> Any:
    from pilothouse.apiserver.registry.listing import ListOptions

    return ListOptions()


async def _spend_disruption(pdbs: ResourceStore, pdb: Obj, pod: Obj, *, dry_run: bool) -> None:
    name = pdb["metadata"]["name"]
    pod_name = pod["metadata"]["name"]

    async def decrement(current: Obj) -> Obj:
        status = current.setdefault("status", {})
        generation = int(current["metadata"].get("generation") or 0)
        if int(status.get("observedGeneration") or 0) < generation:
            raise _budget_error(
                f"Cannot evict pod as it would violate the pod's disruption budget. "
                f"The disruption budget {name} is still being processed by the server."
            )
        allowed = int(status.get("disruptionsAllowed") or 0)
        healthy = int(status.get("currentHealthy") or 0)
        desired = int(status.get("desiredHealthy") or 0)
        if not _pod_ready(pod) and healthy >= desired:
            return current  # an unhealthy pod may go while the budget is met
        if allowed < 0:
            raise errors.forbidden("pods", "", pod_name, "pdb disruptions allowed is negative")
        if allowed == 0:
            err = _budget_error("Cannot evict pod as it would violate the pod's disruption budget.")
            err.details = {
                "causes": [
                    {
                        "reason": "DisruptionBudget",
                        "message": f"The disruption budget {name} needs {desired} healthy pods and has {healthy} currently",
                    }
                ]
            }
            raise err
        status["disruptionsAllowed"] = allowed - 1
        disrupted = dict(status.get("disruptedPods") or {})
        disrupted[pod_name] = meta.now()
        status["disruptedPods"] = disrupted
        if allowed - 1 == 0:
            conditions = [
                c for c in status.get("conditions") or [] if c.get("type") != "DisruptionAllowed"
            ]
            conditions.append(
                {
                    "type": "DisruptionAllowed",
                    "status": "False",
                    "reason": "InsufficientPods",
                    "message": "",
                    "observedGeneration": generation,
                    "lastTransitionTime": meta.now(),
                }
            )
            status["conditions"] = conditions
        current["metadata"].pop("resourceVersion", None)
        return current

    await pdbs.guaranteed_update(
        pdb["metadata"]["namespace"], name, decrement, dry_run=dry_run, subresource="status"
    )


def _budget_error(message: str) -> errors.StatusError:
    return errors.StatusError(
        429, errors.TOO_MANY_REQUESTS, message, details={"retryAfterSeconds": 10}
    )


# --- namespace finalize --------------------------------------------------------------
async def finalize(
    request: web.Request, store: ResourceStore, info: request_info.RequestInfo
) -> web.StreamResponse:
    if request.method != "PUT":
        raise errors.method_not_allowed("")
    output = negotiation.negotiate(request.headers.get("Accept"))
    write = WriteParams.parse(request.query, options_kind="UpdateOptions")
    raw = await body.read(request)
    warnings: list[str] = []
    wanted = body.decode_object(
        raw,
        request.headers.get("Content-Type", ""),
        resource=store.resource,
        field_validation=write.field_validation,
        warnings=warnings,
    )
    finalizers = list((wanted.get("spec") or {}).get("finalizers") or [])

    async def set_finalizers(current: Obj) -> Obj:
        current["spec"] = {**(current.get("spec") or {}), "finalizers": finalizers}
        rv = (wanted.get("metadata") or {}).get("resourceVersion")
        if rv:
            current["metadata"]["resourceVersion"] = rv
        else:
            current["metadata"].pop("resourceVersion", None)
        return current

    updated = await store.guaranteed_update(
        info.namespace, info.name, set_finalizers, dry_run=write.dry_run, subresource="finalize"
    )
    # When the last finalizer leaves a terminating namespace, that update removed it.
    return render.response(
        render.object_body(store.resource, updated, output), output, 200, warnings
    )
