"""Creating and deleting a controller's pods (upstream's PodControl and helpers).

Pods are made from the owner's template, with a controller reference to the
owner; creations go out in "slow start" batches (1, 2, 4, …) so a template
that cannot work (a quota, a bad field) fails after one request instead of
hundreds, as upstream does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from pilothouse.api import meta

Obj = dict[str, Any]


def controller_ref(owner: Obj) -> Obj:
    md = owner["metadata"]
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": md["name"],
        "uid": md["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def get_controller_of(obj: Obj) -> Obj | None:
    """The object's controlling owner reference: part of ``obj`` (read-only, as the
    informer's objects are; copy it to change it). Every controller asks it of every
    pod event, so it is not copied each time."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            ref_: Obj = ref
            return ref_
    return None


def pod_from_template(owner: Obj, template: Obj, *, generate_name: str = "") -> Obj:
    md = owner["metadata"]
    tmpl_md = template.get("metadata") or {}
    pod_md: Obj = {
        "generateName": generate_name or f"{md['name']}-",
        "namespace": md.get("namespace", ""),
        "labels": dict(tmpl_md.get("labels") or {}),
        "ownerReferences": [controller_ref(owner)],
    }
    if tmpl_md.get("annotations"):
        pod_md["annotations"] = dict(tmpl_md["annotations"])
    if tmpl_md.get("finalizers"):
        pod_md["finalizers"] = list(tmpl_md["finalizers"])
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": pod_md,
        "spec": meta.deep_copy(template.get("spec") or {}),
    }


async def slow_start_batch(
    count: int, initial: int, fn: Callable[[], Awaitable[None]]
) -> tuple[int, BaseException | None]:
    """Call ``fn`` ``count`` times in doubling batches; stop after a batch with a failure.

    Returns (successes, first error)."""
    done = 0
    batch = min(count, initial)
    while batch > 0:
        results = await asyncio.gather(*(fn() for _ in range(batch)), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        done += batch - len(failures)
        if failures:
            return done, failures[0]
        remaining = count - done
        batch = min(remaining, batch * 2)
    return done, None


def is_active(pod: Obj) -> bool:
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not pod["metadata"].get("deletionTimestamp")


def pod_ready(pod: Obj) -> bool:
    return ready_condition(pod) is not None


def ready_condition(pod: Obj) -> Obj | None:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready" and c.get("status") == "True":
            return dict(c)
    return None


def pod_available(pod: Obj, min_ready_seconds: int, now: float) -> bool:
    cond = ready_condition(pod)
    if cond is None:
        return False
    if min_ready_seconds <= 0:
        return True
    since = meta.parse_time(cond.get("lastTransitionTime"))
    return since is not None and since + min_ready_seconds <= now
