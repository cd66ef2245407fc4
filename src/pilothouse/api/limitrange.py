"""LimitRange enforcement on pods and claims (upstream's LimitRanger plugin logic).

:func:`default_pod` gives containers without requests or limits the LimitRange's
``defaultRequest``/``default`` and records what it set in the
``kubernetes.io/limit-ranger`` annotation. :func:`validate_pod` and
:func:`validate_claim` check ``min``, ``max`` and ``maxLimitRequestRatio`` per
Container, per Pod (summed as the scheduler sums them) and per claim, and return
upstream's messages.

No I/O here: this module is part of the bottom ``api`` layer.
"""

from __future__ import annotations

from typing import Any

from pilothouse.api import quantity
from pilothouse.api.quota import evaluators, resourcelist
from pilothouse.api.quota.resourcelist import ResourceList

Obj = dict[str, Any]

ANNOTATION = "kubernetes.io/limit-ranger"
CONTAINER = "Container"
POD = "Pod"
PERSISTENT_VOLUME_CLAIM = "PersistentVolumeClaim"
STANDARD_TYPES = frozenset({CONTAINER, POD, PERSISTENT_VOLUME_CLAIM})

# Values above this cannot be compared in milli units without overflowing int64.
_MAX_MILLI = (2**63 - 1) // 1000


def _items(limit_range: Obj) -> list[Obj]:
    spec = limit_range.get("spec") or {}
    return [i for i in spec.get("limits") or [] if isinstance(i, dict)]


def container_defaults(limit_range: Obj) -> tuple[dict[str, Any], dict[str, Any]]:
    """(default requests, default limits) from the range's Container items, as written."""
    requests: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    for item in _items(limit_range):
        if item.get("type") == CONTAINER:
            requests.update(item.get("defaultRequest") or {})
            limits.update(item.get("default") or {})
    return requests, limits


def _merge_container(
    container: Obj, requests: dict[str, Any], limits: dict[str, Any], what: str
) -> list[str]:
    resources = container.get("resources")
    if not isinstance(resources, dict):
        resources = container["resources"] = {}
    have_limits = resources.get("limits")
    if not isinstance(have_limits, dict):
        have_limits = {}
    have_requests = resources.get("requests")
    if not isinstance(have_requests, dict):
        have_requests = {}
    set_limits = sorted(k for k in limits if k not in have_limits)
    set_requests = sorted(k for k in requests if k not in have_requests)
    if set_limits:
        resources["limits"] = {**have_limits, **{k: limits[k] for k in set_limits}}
    if set_requests:
        resources["requests"] = {**have_requests, **{k: requests[k] for k in set_requests}}
    notes: list[str] = []
    name = container.get("name", "")
    if set_requests:
        notes.append(f"{', '.join(set_requests)} request for {what} {name}")
    if set_limits:
        notes.append(f"{', '.join(set_limits)} limit for {what} {name}")
    return notes


def default_pod(limit_range: Obj, pod: Obj) -> None:
    """mergePodResourceRequirements: fill in what containers leave out, and say so."""
    requests, limits = container_defaults(limit_range)
    spec = pod.get("spec") or {}
    notes: list[str] = []
    for c in spec.get("containers") or []:
        if isinstance(c, dict):
            notes += _merge_container(c, requests, limits, "container")
    for c in spec.get("initContainers") or []:
        if isinstance(c, dict):
            notes += _merge_container(c, requests, limits, "init container")
    if notes:
        md = pod.setdefault("metadata", {})
        annotations = md.get("annotations")
        if not isinstance(annotations, dict):
            annotations = md["annotations"] = {}
        annotations[ANNOTATION] = "LimitRanger plugin set: " + "; ".join(notes)


def _compared(
    request: quantity.Quantity | None,
    limit: quantity.Quantity | None,
    enforced: quantity.Quantity,
) -> tuple[int, int, int]:
    """requestLimitEnforcedValues: milli units when nothing overflows, else whole units."""
    values = [request.int_value() if request else 0, limit.int_value() if limit else 0]
    enforced_value = enforced.int_value()
    if all(v <= _MAX_MILLI for v in (*values, enforced_value)):
        return (
            request.milli_value() if request else 0,
            limit.milli_value() if limit else 0,
            enforced.milli_value(),
        )
    return values[0], values[1], enforced_value


def _min(
    kind: str, name: str, enforced: quantity.Quantity, req: ResourceList, lim: ResourceList
) -> str | None:
    request, limit = req.get(name), lim.get(name)
    observed_req, observed_lim, value = _compared(request, limit, enforced)
    if request is None:
        return f"minimum {name} usage per {kind} is {enforced}.  No request is specified"
    if observed_req < value:
        return f"minimum {name} usage per {kind} is {enforced}, but request is {request}"
    if limit is not None and observed_lim < value:
        return f"minimum {name} usage per {kind} is {enforced}, but limit is {limit}"
    return None


def _max(
    kind: str, name: str, enforced: quantity.Quantity, req: ResourceList, lim: ResourceList
) -> str | None:
    request, limit = req.get(name), lim.get(name)
    observed_req, observed_lim, value = _compared(request, limit, enforced)
    if limit is None:
        return f"maximum {name} usage per {kind} is {enforced}.  No limit is specified"
    if observed_lim > value:
        return f"maximum {name} usage per {kind} is {enforced}, but limit is {limit}"
    if request is not None and observed_req > value:
        return f"maximum {name} usage per {kind} is {enforced}, but request is {request}"
    return None


def _max_request(
    kind: str, name: str, enforced: quantity.Quantity, req: ResourceList
) -> str | None:
    request = req.get(name)
    observed_req, _, value = _compared(request, None, enforced)
    if request is None:
        return f"maximum {name} usage per {kind} is {enforced}.  No request is specified"
    if observed_req > value:
        return f"maximum {name} usage per {kind} is {enforced}, but request is {request}"
    return None


def _go_float(value: float) -> str:
    """Go's ``%f``: six decimals."""
    return f"{value:.6f}"


def _ratio(
    kind: str, name: str, enforced: quantity.Quantity, req: ResourceList, lim: ResourceList
) -> str | None:
    request, limit = req.get(name), lim.get(name)
    observed_req, observed_lim, _ = _compared(request, limit, enforced)
    if request is None or observed_req == 0:
        return (
            f"{name} max limit to request ratio per {kind} is {enforced}, "
            "but no request is specified or request is 0"
        )
    if limit is None or observed_lim == 0:
        return (
            f"{name} max limit to request ratio per {kind} is {enforced}, "
            "but no limit is specified or limit is 0"
        )
    observed = observed_lim / observed_req
    shown = observed
    allowed = float(enforced.int_value())
    if enforced.int_value() <= _MAX_MILLI:
        observed *= 1000
        allowed = float(enforced.milli_value())
    if observed > allowed:
        return (
            f"{name} max limit to request ratio per {kind} is {enforced}, "
            f"but provided ratio is {_go_float(shown)}"
        )
    return None


def _check(kind: str, item: Obj, req: ResourceList, lim: ResourceList) -> list[str]:
    out: list[str] = []
    for name, enforced in resourcelist.parse(item.get("min")).items():
        out.append(_min(kind, name, enforced, req, lim) or "")
    for name, enforced in resourcelist.parse(item.get("max")).items():
        out.append(_max(kind, name, enforced, req, lim) or "")
    for name, enforced in resourcelist.parse(item.get("maxLimitRequestRatio")).items():
        out.append(_ratio(kind, name, enforced, req, lim) or "")
    return [m for m in out if m]


def validate_pod(limit_range: Obj, pod: Obj) -> list[str]:
    """PodValidateLimitFunc: every violation, in upstream's order."""
    spec = pod.get("spec") or {}
    problems: list[str] = []
    for item in _items(limit_range):
        kind = item.get("type")
        if kind == CONTAINER:
            for key in ("containers", "initContainers"):
                for c in spec.get(key) or []:
                    res = (c or {}).get("resources") or {}
                    problems += _check(
                        CONTAINER,
                        item,
                        resourcelist.parse(res.get("requests")),
                        resourcelist.parse(res.get("limits")),
                    )
        elif kind == POD:
            requests = evaluators.pod_requests({"spec": {**spec, "overhead": None}})
            limits = evaluators.pod_limits({"spec": {**spec, "overhead": None}})
            problems += _check(POD, item, requests, limits)
    return problems


def validate_claim(limit_range: Obj, claim: Obj) -> list[str]:
    """PersistentVolumeClaimValidateLimitFunc: storage min/max against what is requested."""
    requests = resourcelist.parse(
        ((claim.get("spec") or {}).get("resources") or {}).get("requests")
    )
    problems: list[str] = []
    for item in _items(limit_range):
        if item.get("type") != PERSISTENT_VOLUME_CLAIM:
            continue
        for name, enforced in resourcelist.parse(item.get("min")).items():
            problems.append(_min(PERSISTENT_VOLUME_CLAIM, name, enforced, requests, {}) or "")
        for name, enforced in resourcelist.parse(item.get("max")).items():
            problems.append(_max_request(PERSISTENT_VOLUME_CLAIM, name, enforced, requests) or "")
    return [m for m in problems if m]


def aggregate(messages: list[str]) -> str:
    """utilerrors.NewAggregate's message: one error alone, several (each once) in brackets."""
    unique = list(dict.fromkeys(messages))
    if len(unique) == 1:
        return unique[0]
    return "[" + ", ".join(unique) + "]"
