"""Deciding what a DELETE does: remove now, or mark the object as being deleted.

Upstream's deletion protocol (``registry/generic/registry/store.go`` Delete and
``updateForGracefulDeletionAndFinalizers``, ``rest/delete.go`` BeforeDelete):

* **Graceful deletion** (pods): the object gets ``deletionTimestamp`` = now +
  grace period and ``deletionGracePeriodSeconds``; whoever runs it (the node
  agent) stops it and deletes again with grace 0. A second DELETE may shorten
  the period (counted from when the deletion started), never lengthen it; one
  that does not shorten it changes nothing, finalizers included.
* **Finalizers**: an object with finalizers stays, with a ``deletionTimestamp``
  and a zero grace period, until its finalizers are all removed; the update
  that removes the last one deletes it.
* **Propagation**: ``Orphan`` adds the ``orphan`` finalizer (the garbage
  collector strips owner references from dependents first), ``Foreground``
  adds ``foregroundDeletion`` (the collector deletes dependents first),
  ``Background`` deletes at once and leaves dependents to the collector. With
  no policy in the request, a finalizer already on the object decides, then the
  kind's default (``Orphan`` for ReplicationControllers and Jobs, for backward
  compatibility; ``Background`` elsewhere).

Pure functions of the object and the options: the store applies the plan.
"""

from __future__ import annotations

from dataclasses import dataclass

from pilothouse.api import errors, meta, resources
from pilothouse.api.meta import Obj

ORPHAN = "orphan"
FOREGROUND = "foregroundDeletion"

ORPHAN_POLICY = "Orphan"
BACKGROUND_POLICY = "Background"
FOREGROUND_POLICY = "Foreground"


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


def _should_orphan(finalizers: list[str], options: Options, default_policy: str) -> bool:
    """Upstream's shouldOrphanDependents: the request, then the object, then the kind."""
    if options.orphan_dependents is not None:
        return options.orphan_dependents
    if options.propagation_policy == ORPHAN_POLICY:
        return True
    if options.propagation_policy in (BACKGROUND_POLICY, FOREGROUND_POLICY):
        return False
    for f in finalizers:
        if f == ORPHAN:
            return True
        if f == FOREGROUND:
            return False
    return default_policy == ORPHAN_POLICY


def _should_delete_dependents(finalizers: list[str], options: Options) -> bool:
    """Upstream's shouldDeleteDependents (foreground deletion)."""
    if options.orphan_dependents is not None:
        return False
    if options.propagation_policy == FOREGROUND_POLICY:
        return True
    if options.propagation_policy in (BACKGROUND_POLICY, ORPHAN_POLICY):
        return False
    for f in finalizers:
        if f == FOREGROUND:
            return True
        if f == ORPHAN:
            return False
    return False


def gc_finalizers(finalizers: list[str], options: Options, default_policy: str = "") -> list[str]:
    """The object's finalizers after the garbage collector's are set as the request
    and the kind ask (``finalizers`` itself when nothing changes)."""
    out = [f for f in finalizers if f not in (ORPHAN, FOREGROUND)]
    if _should_orphan(finalizers, options, default_policy):
        out.append(ORPHAN)
    if _should_delete_dependents(finalizers, options):
        out.append(FOREGROUND)
    return finalizers if set(out) == set(finalizers) else out


def plan(
    old: Obj,
    options: Options,
    *,
    grace: int | None,
    now: float,
    other_finalizers: bool = False,
    default_policy: str = "",
) -> Plan:
    """What deleting ``old`` does.

    ``grace`` is the strategy's grace period for a new deletion (None: the kind
    is not deleted gracefully); ``other_finalizers`` marks kind-specific
    finalizers kept outside metadata (a namespace's ``spec.finalizers``);
    ``default_policy`` is the kind's propagation policy when the request names none.
    """
    md = old.get("metadata") or {}
    pending = md.get("deletionTimestamp")
    graceful = False
    deletion_ts = 0.0
    period = 0
    if grace is not None:
        current = md.get("deletionGracePeriodSeconds")
        requested = options.grace_period_seconds
        if requested is not None and requested < 0:
            requested = 1  # negative periods mean one second on the delete path
        if not pending:
            graceful, period, deletion_ts = True, grace, now + grace
        elif current is not None and int(current) != 0:
            if requested is None or requested >= int(current):
                # Graceful deletion is already under way and this request does
                # not shorten it: nothing changes, finalizers included.
                return Plan(remove=False)
            started = (meta.parse_time(pending) or now) - int(current)
            graceful, period, deletion_ts = True, requested, started + requested
        # A pending deletion with no (or a zero) grace period is finished now.

    finalizers = list(md.get("finalizers") or [])
    wanted = gc_finalizers(finalizers, options, default_policy)
    pending_finalizers = bool(wanted) or other_finalizers
    if not pending_finalizers and (not graceful or period == 0):
        return Plan(remove=True)

    new = meta.deep_copy(old)
    nmd = new["metadata"]
    if wanted:
        nmd["finalizers"] = wanted
    else:
        nmd.pop("finalizers", None)
    if graceful:
        nmd["deletionTimestamp"] = meta.format_time(deletion_ts)
        nmd["deletionGracePeriodSeconds"] = period
    else:
        # Upstream's markAsDeleting: the first mark bumps the generation of kinds
        # that track one; a deletion time in the future is brought forward.
        if not pending and int(nmd.get("generation") or 0) > 0:
            nmd["generation"] = int(nmd["generation"]) + 1
        existing = meta.parse_time(pending) if pending else None
        if existing is None or existing > now:
            nmd["deletionTimestamp"] = meta.format_time(now)
        nmd["deletionGracePeriodSeconds"] = 0
    if new == old:
        return Plan(remove=False)
    return Plan(remove=False, obj=new)


def check_preconditions(
    resource: resources.Resource, old: Obj, name: str, options: Options
) -> None:
    """Upstream's BeforeDelete checks: a conflict named after the kind."""
    old_md = old["metadata"]
    if options.precondition_uid and options.precondition_uid != old_md.get("uid"):
        raise errors.conflict(
            resource.kind,
            resource.group,
            name,
            f"the UID in the precondition ({options.precondition_uid}) does not match "
            f"the UID in record ({old_md.get('uid', '')}). "
            "The object might have been deleted and then recreated",
        )
    if options.precondition_rv and options.precondition_rv != old_md.get("resourceVersion"):
        raise errors.conflict(
            resource.kind,
            resource.group,
            name,
            f"the ResourceVersion in the precondition ({options.precondition_rv}) does not "
            f"match the ResourceVersion in record ({old_md.get('resourceVersion', '')}). "
            "The object might have been modified",
        )
