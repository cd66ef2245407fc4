"""Deciding what a DELETE does: remove now, or mark the object as being deleted.

Upstream's deletion protocol (``registry/generic/registry/store.go`` Delete and
``rest/delete.go`` BeforeDelete):

* **Graceful deletion** (pods): the object gets ``deletionTimestamp`` = now +
  grace period and ``deletionGracePeriodSeconds``; whoever runs it (the node
  agent) stops it and deletes again with grace 0. A second DELETE may shorten
  the period, never lengthen it.
* **Finalizers**: an object with finalizers stays, with a ``deletionTimestamp``,
  until its finalizers are all removed; the update that removes the last one
  deletes it.
* **Propagation**: ``Orphan`` adds the ``orphan`` finalizer (the garbage
  collector strips owner references from dependents first), ``Foreground``
  adds ``foregroundDeletion`` (the collector deletes dependents first),
  ``Background`` deletes at once and leaves dependents to the collector.
"""

from __future__ import annotations

from dataclasses import dataclass

from pilothouse.api import meta
from pilothouse.api.meta import Obj

ORPHAN = "orphan"
FOREGROUND = "foregroundDeletion"


@dataclass(frozen=True, slots=True)
class Options:
    dry_run: bool = False
    grace_period_seconds: int | None = None
    propagation_policy: str = ""
    orphan_dependents: bool | None = None
    precondition_uid: str = ""
    precondition_rv: str = ""


@dataclass(frozen=True, slots=True)
class Plan:
    """``remove``: delete from the store now. Otherwise ``obj`` (if not None) is
    the marked object to write; None means nothing changes."""

    remove: bool
    obj: Obj | None = None


def _gc_finalizers(finalizers: list[str], options: Options) -> list[str]:
    policy = options.propagation_policy
    if not policy and options.orphan_dependents is not None:
        policy = "Orphan" if options.orphan_dependents else "Background"
    out = [f for f in finalizers]
    if policy == "Orphan":
        out = [f for f in out if f != FOREGROUND]
        if ORPHAN not in out:
            out.append(ORPHAN)
    elif policy == "Foreground":
        out = [f for f in out if f != ORPHAN]
        if FOREGROUND not in out:
            out.append(FOREGROUND)
    elif policy == "Background":
        out = [f for f in out if f not in (ORPHAN, FOREGROUND)]
    return out


def plan(
    old: Obj, options: Options, *, grace: int | None, now: float, other_finalizers: bool = False
) -> Plan:
    """What deleting ``old`` does. ``grace`` is the strategy's graceful period
    (None: the kind is not deleted gracefully); ``other_finalizers`` marks kind-
    specific finalizers kept outside metadata (a namespace's spec.finalizers)."""
    md = old.get("metadata") or {}
    finalizers = list(md.get("finalizers") or [])
    wanted = _gc_finalizers(finalizers, options)
    pending = md.get("deletionTimestamp")

    if pending:
        # Already being deleted: a shorter grace period or a final zero may apply.
        current_grace = md.get("deletionGracePeriodSeconds")
        if grace is not None and current_grace is not None and grace < int(current_grace):
            if grace == 0 and not wanted and not other_finalizers:
                return Plan(remove=True)
            new = meta.deep_copy(old)
            new["metadata"]["deletionTimestamp"] = meta.format_time(now + grace)
            new["metadata"]["deletionGracePeriodSeconds"] = grace
            return Plan(remove=False, obj=new)
        if wanted != finalizers:
            new = meta.deep_copy(old)
            new["metadata"]["finalizers"] = wanted
            return Plan(remove=False, obj=new)
        return Plan(remove=False)

    graceful = grace is not None and grace > 0
    if not graceful and not wanted and not other_finalizers:
        return Plan(remove=True)
    new = meta.deep_copy(old)
    nmd = new["metadata"]
    period = grace if graceful and grace is not None else 0
    nmd["deletionTimestamp"] = meta.format_time(now + period)
    nmd["deletionGracePeriodSeconds"] = period
    if wanted:
        nmd["finalizers"] = wanted
    else:
        nmd.pop("finalizers", None)
    return Plan(remove=False, obj=new)
