"""Deployment arithmetic and bookkeeping without I/O (upstream's deployment/util).

Fenceposts (maxSurge rounds up, maxUnavailable down, both zero → one
unavailable), the revision and replica annotations on ReplicaSets, which
ReplicaSet is "new", proportions for scaling mid-rollout, conditions, and the
orderings upstream sorts ReplicaSets by. Objects are the API's JSON dicts;
nothing here writes to the API.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from pilothouse.api import intstr, meta

log = logging.getLogger(__name__)

Obj = dict[str, Any]

UNIQUE_LABEL_KEY = "pod-template-hash"
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
REVISION_HISTORY_ANNOTATION = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS_ANNOTATION = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS_ANNOTATION = "deployment.kubernetes.io/max-replicas"
LAST_APPLIED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"
DEPRECATED_ROLLBACK_TO = "deprecated.deployment.rollback.to"
MAX_REV_HISTORY_LENGTH_IN_CHARS = 2000
MAX_INT32 = 2**31 - 1

# Condition reasons, as upstream spells them (kubectl and users match on them).
REPLICA_SET_UPDATED = "ReplicaSetUpdated"
FAILED_RS_CREATE = "ReplicaSetCreateError"
NEW_REPLICA_SET_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"
MINIMUM_REPLICAS_AVAILABLE = "MinimumReplicasAvailable"
MINIMUM_REPLICAS_UNAVAILABLE = "MinimumReplicasUnavailable"
ROLLBACK_REVISION_NOT_FOUND = "DeploymentRollbackRevisionNotFound"
ROLLBACK_TEMPLATE_UNCHANGED = "DeploymentRollbackTemplateUnchanged"
ROLLBACK_DONE = "DeploymentRollback"

# Annotations a Deployment never hands down to its ReplicaSets.
ANNOTATIONS_TO_SKIP = frozenset(
    {
        LAST_APPLIED_ANNOTATION,
        REVISION_ANNOTATION,
        REVISION_HISTORY_ANNOTATION,
        DESIRED_REPLICAS_ANNOTATION,
        MAX_REPLICAS_ANNOTATION,
        DEPRECATED_ROLLBACK_TO,
    }
)


# --- small accessors ------------------------------------------------------------------
def spec(obj: Obj | None) -> Obj:
    return (obj or {}).get("spec") or {}


def status(obj: Obj | None) -> Obj:
    return (obj or {}).get("status") or {}


def annotations_of(obj: Obj) -> dict[str, str]:
    return obj["metadata"].get("annotations") or {}


def replicas(obj: Obj | None) -> int:
    """``*spec.replicas`` (defaulted to 1 by the API server)."""
    value = spec(obj).get("replicas")
    return 1 if value is None else int(value)


def set_replicas(obj: Obj, count: int) -> None:
    obj.setdefault("spec", {})["replicas"] = count


def uid(obj: Obj) -> str:
    return str(obj["metadata"].get("uid", ""))


def name(obj: Obj | None) -> str:
    return str((obj or {}).get("metadata", {}).get("name", ""))


def key(obj: Obj) -> str:
    md = obj["metadata"]
    return f"{md.get('namespace', '')}/{md['name']}"


def strategy_type(d: Obj) -> str:
    return str((spec(d).get("strategy") or {}).get("type") or "RollingUpdate")


def is_rolling_update(d: Obj) -> bool:
    return strategy_type(d) == "RollingUpdate"


def has_progress_deadline(d: Obj) -> bool:
    value = spec(d).get("progressDeadlineSeconds")
    return value is not None and int(value) != MAX_INT32


def has_revision_history_limit(d: Obj) -> bool:
    value = spec(d).get("revisionHistoryLimit")
    return value is not None and int(value) != MAX_INT32


# --- fenceposts -----------------------------------------------------------------------
def resolve_fenceposts(max_surge: Any, max_unavailable: Any, desired: int) -> tuple[int, int]:
    """(surge, unavailable) for ``desired`` replicas; raises IntOrStringError."""
    surge = intstr.scaled_value(0 if max_surge is None else max_surge, desired, True)
    unavailable = intstr.scaled_value(
        0 if max_unavailable is None else max_unavailable, desired, False
    )
    if surge == 0 and unavailable == 0:
        # Validation forbids both zero, but rounding down a percentage can get
        # there; then allow one unavailable pod, as surging may be impossible (quota).
        unavailable = 1
    return surge, unavailable


def _rolling(d: Obj) -> Obj:
    return (spec(d).get("strategy") or {}).get("rollingUpdate") or {}


def max_surge(d: Obj) -> int:
    if not is_rolling_update(d):
        return 0
    surge, _ = resolve_fenceposts(
        _rolling(d).get("maxSurge"), _rolling(d).get("maxUnavailable"), replicas(d)
    )
    return surge


def max_unavailable(d: Obj) -> int:
    if not is_rolling_update(d) or replicas(d) == 0:
        return 0
    _, unavailable = resolve_fenceposts(
        _rolling(d).get("maxSurge"), _rolling(d).get("maxUnavailable"), replicas(d)
    )
    return min(unavailable, replicas(d))


def new_rs_new_replicas(d: Obj, all_rss: list[Obj], new_rs: Obj) -> int:
    """How big the new ReplicaSet may be now (upstream's NewRSNewReplicas)."""
    kind = strategy_type(d)
    if kind == "RollingUpdate":
        surge = intstr.scaled_value(_rolling(d).get("maxSurge"), replicas(d), True)
        current = replica_count(all_rss)
        max_total = replicas(d) + surge
        if current >= max_total:
            return replicas(new_rs)
        scale_up = min(max_total - current, replicas(d) - replicas(new_rs))
        return replicas(new_rs) + scale_up
    if kind == "Recreate":
        return replicas(d)
    raise ValueError(f"deployment type {kind} isn't supported")


# --- counts over ReplicaSets -----------------------------------------------------------
def replica_count(rss: Iterable[Obj | None]) -> int:
    return sum(replicas(rs) for rs in rss if rs is not None)


def _status_sum(rss: Iterable[Obj | None], field: str) -> int:
    return sum(int(status(rs).get(field) or 0) for rs in rss if rs is not None)


def actual_replica_count(rss: Iterable[Obj | None]) -> int:
    return _status_sum(rss, "replicas")


def ready_replica_count(rss: Iterable[Obj | None]) -> int:
    return _status_sum(rss, "readyReplicas")


def available_replica_count(rss: Iterable[Obj | None]) -> int:
    return _status_sum(rss, "availableReplicas")


def filter_active(rss: Iterable[Obj | None]) -> list[Obj]:
    return [rs for rs in rss if rs is not None and replicas(rs) > 0]


# --- orderings --------------------------------------------------------------------------
def _created(rs: Obj) -> float:
    return meta.parse_time(rs["metadata"].get("creationTimestamp")) or 0.0


def by_creation(rss: Iterable[Obj]) -> list[Obj]:
    """Oldest first; ties by name (ReplicaSetsByCreationTimestamp)."""
    return sorted(rss, key=lambda rs: (_created(rs), name(rs)))


def by_size_older(rss: Iterable[Obj]) -> list[Obj]:
    """Largest first; among equals, older first (ReplicaSetsBySizeOlder)."""
    return sorted(rss, key=lambda rs: (-replicas(rs), _created(rs), name(rs)))


def by_size_newer(rss: Iterable[Obj]) -> list[Obj]:
    """Largest first; among equals, newer first (ReplicaSetsBySizeNewer)."""
    return sorted(rss, key=lambda rs: (-replicas(rs), -_created(rs), name(rs)))


def by_revision(rss: Iterable[Obj]) -> list[Obj]:
    """Lowest revision first; unparsable or equal revisions by creation."""

    def key(rs: Obj) -> tuple[int, float, str]:
        try:
            rev = revision(rs)
        except ValueError:
            rev = -1
        return (rev, _created(rs), name(rs))

    return sorted(rss, key=key)


# --- revisions --------------------------------------------------------------------------
def revision(obj: Obj) -> int:
    """The revision annotation as an int (0 when absent); ValueError when unparsable."""
    value = annotations_of(obj).get(REVISION_ANNOTATION)
    if value is None:
        return 0
    return int(intstr.go_atoi(value))


def max_revision(rss: Iterable[Obj]) -> int:
    best = 0
    for rs in rss:
        try:
            best = max(best, revision(rs))
        except ValueError:
            log.debug("cannot parse revision of replica set %s", name(rs))
    return best


def last_revision(rss: Iterable[Obj | None]) -> int:
    """The second highest revision (the one before the current)."""
    top = second = 0
    for rs in rss:
        if rs is None:
            continue
        try:
            v = revision(rs)
        except ValueError:
            continue
        if v >= top:
            second, top = top, v
        elif v > second:
            second = v
    return second


def set_deployment_revision(d: Obj, rev: str) -> bool:
    md = d["metadata"]
    ann = md.setdefault("annotations", {})
    if ann.get(REVISION_ANNOTATION) != rev:
        ann[REVISION_ANNOTATION] = rev
        return True
    return False


def _copy_deployment_annotations(d: Obj, rs: Obj) -> bool:
    rs_ann = rs["metadata"].setdefault("annotations", {})
    changed = False
    for key, value in annotations_of(d).items():
        # The revision is the ReplicaSet's own: the deployment's copy may be stale.
        if key in ANNOTATIONS_TO_SKIP or rs_ann.get(key) == value:
            continue
        rs_ann[key] = value
        changed = True
    return changed


def set_new_replica_set_annotations(d: Obj, rs: Obj, new_revision: str, *, exists: bool) -> bool:
    """Copy the deployment's annotations onto ``rs`` and raise its revision to
    ``new_revision`` (keeping earlier ones in revision-history); True if changed."""
    changed = _copy_deployment_annotations(d, rs)
    rs_ann = rs["metadata"].setdefault("annotations", {})
    old_revision = rs_ann.get(REVISION_ANNOTATION)
    try:
        old_int = int(intstr.go_atoi(old_revision)) if old_revision is not None else 0
    except ValueError:
        if old_revision != "":
            return False
        old_int = 0
    try:
        new_int = int(intstr.go_atoi(new_revision))
    except ValueError:
        return False
    if old_int < new_int:
        rs_ann[REVISION_ANNOTATION] = new_revision
        changed = True
        if old_revision is not None:
            # Rolling back to this set: remember the revisions it had.
            _append_revision_history(rs_ann, old_revision)
    if not exists and set_replicas_annotations(rs, replicas(d), replicas(d) + max_surge(d)):
        changed = True
    return changed


def _append_revision_history(ann: dict[str, str], old_revision: str) -> None:
    history = ann.get(REVISION_HISTORY_ANNOTATION, "")
    olds = history.split(",")
    if not olds[0]:
        ann[REVISION_HISTORY_ANNOTATION] = old_revision
        return
    total = len(history) + len(old_revision) + 1
    start = 0
    while total > MAX_REV_HISTORY_LENGTH_IN_CHARS and start < len(olds):
        total -= len(olds[start]) + 1
        start += 1
    if total <= MAX_REV_HISTORY_LENGTH_IN_CHARS:
        ann[REVISION_HISTORY_ANNOTATION] = ",".join([*olds[start:], old_revision])


def set_deployment_annotations_to(d: Obj, rollback_to: Obj) -> None:
    """On rollback, take the old ReplicaSet's annotations (change-cause …) back."""
    kept = {k: v for k, v in annotations_of(d).items() if k in ANNOTATIONS_TO_SKIP}
    for k, v in annotations_of(rollback_to).items():
        if k not in ANNOTATIONS_TO_SKIP:
            kept[k] = v
    d["metadata"]["annotations"] = kept


def int_annotation(rs: Obj, key: str) -> int | None:
    value = annotations_of(rs).get(key)
    if value is None:
        return None
    try:
        n = int(intstr.go_atoi(value))
    except ValueError:
        return None
    return n if -(2**31) <= n < 2**31 else None


def set_replicas_annotations(rs: Obj, desired: int, maximum: int) -> bool:
    ann = rs["metadata"].setdefault("annotations", {})
    changed = False
    for key, value in (
        (DESIRED_REPLICAS_ANNOTATION, str(desired)),
        (MAX_REPLICAS_ANNOTATION, str(maximum)),
    ):
        if ann.get(key) != value:
            ann[key] = value
            changed = True
    return changed


def replicas_annotations_need_update(rs: Obj, desired: int, maximum: int) -> bool:
    ann = annotations_of(rs)
    return ann.get(DESIRED_REPLICAS_ANNOTATION) != str(desired) or ann.get(
        MAX_REPLICAS_ANNOTATION
    ) != str(maximum)


# --- new and old ReplicaSets --------------------------------------------------------------
def _semantic(value: Any) -> Any:
    """Drop what protobuf would not carry (nulls, empty lists and label maps)."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            v = _semantic(v)
            if v is None or v == [] or (v == {} and k in ("labels", "annotations")):
                continue
            out[k] = v
        return out
    if isinstance(value, list):
        return [_semantic(v) for v in value]
    return value


def template_without_hash(template: Obj | None) -> Obj:
    t = meta.deep_copy(template or {})
    labels = (t.get("metadata") or {}).get("labels")
    if labels:
        labels.pop(UNIQUE_LABEL_KEY, None)
    return t


def equal_ignore_hash(a: Obj | None, b: Obj | None) -> bool:
    """Whether two pod templates are equal but for the pod-template-hash label."""
    left: Any = _semantic(template_without_hash(a))
    return bool(left == _semantic(template_without_hash(b)))


def find_new_replica_set(d: Obj, rss: list[Obj]) -> Obj | None:
    """The oldest ReplicaSet whose template is the deployment's."""
    template = spec(d).get("template")
    for rs in by_creation(rss):
        if equal_ignore_hash(spec(rs).get("template"), template):
            return rs
    return None


def find_old_replica_sets(d: Obj, rss: list[Obj]) -> tuple[list[Obj], list[Obj]]:
    """(old sets with replicas, all old sets)."""
    new = find_new_replica_set(d, rss)
    olds = [rs for rs in rss if new is None or uid(rs) != uid(new)]
    return [rs for rs in olds if replicas(rs) != 0], olds


def find_active_or_latest(new_rs: Obj | None, old_rss: list[Obj]) -> Obj | None:
    if new_rs is None and not old_rss:
        return None
    olds = list(reversed(by_creation(old_rss)))
    active = filter_active([*olds, new_rs])
    if not active:
        return new_rs if new_rs is not None else olds[0]
    return active[0] if len(active) == 1 else None


def is_saturated(d: Obj, rs: Obj | None) -> bool:
    if rs is None:
        return False
    desired = int_annotation(rs, DESIRED_REPLICAS_ANNOTATION)
    if desired is None:
        return False
    want = replicas(d)
    return (
        replicas(rs) == want
        and desired == want
        and int(status(rs).get("availableReplicas") or 0) == want
    )


def proportion(rs: Obj | None, d: Obj, to_add: int, added: int) -> int:
    """How many of ``to_add`` replicas ``rs`` takes when scaling mid-rollout."""
    if rs is None or replicas(rs) == 0 or to_add == 0 or to_add == added:
        return 0
    fraction = _fraction(rs, d)
    allowed = to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)


def _fraction(rs: Obj, d: Obj) -> int:
    if replicas(d) == 0:
        return -replicas(rs)
    deployment_max = replicas(d) + max_surge(d)
    annotated = int_annotation(rs, MAX_REPLICAS_ANNOTATION)
    if annotated is None:
        annotated = int(status(d).get("replicas") or 0)
    if annotated == 0:
        return 0
    size = replicas(rs) * deployment_max / annotated
    # Go's RoundToInt32: half away from zero.
    rounded = int(size + 0.5) if size >= 0 else -int(-size + 0.5)
    return rounded - replicas(rs)


# --- conditions ---------------------------------------------------------------------------
def new_condition(ctype: str, cstatus: str, reason: str, message: str, now: float) -> Obj:
    stamp = meta.format_time(now)
    return {
        "type": ctype,
        "status": cstatus,
        "lastUpdateTime": stamp,
        "lastTransitionTime": stamp,
        "reason": reason,
        "message": message,
    }


def get_condition(st: Obj, ctype: str) -> Obj | None:
    for c in st.get("conditions") or []:
        if c.get("type") == ctype:
            return dict(c)
    return None


def set_condition(st: Obj, cond: Obj) -> None:
    """Replace the condition of its type (moving it last), keeping the transition
    time when the status does not change; no-op if status and reason are the same."""
    current = get_condition(st, cond["type"])
    if (
        current
        and current.get("status") == cond["status"]
        and current.get("reason") == cond["reason"]
    ):
        return
    if current and current.get("status") == cond["status"]:
        cond = {**cond, "lastTransitionTime": current.get("lastTransitionTime")}
    st["conditions"] = [c for c in st.get("conditions") or [] if c.get("type") != cond["type"]] + [
        cond
    ]


def remove_condition(st: Obj, ctype: str) -> None:
    conditions = [c for c in st.get("conditions") or [] if c.get("type") != ctype]
    if conditions:
        st["conditions"] = conditions
    else:
        st.pop("conditions", None)


def deployment_complete(d: Obj, st: Obj) -> bool:
    want = replicas(d)
    return (
        int(st.get("updatedReplicas") or 0) == want
        and int(st.get("replicas") or 0) == want
        and int(st.get("availableReplicas") or 0) == want
        and int(st.get("observedGeneration") or 0) >= int(d["metadata"].get("generation") or 0)
    )


def deployment_progressing(d: Obj, new: Obj) -> bool:
    old = status(d)

    def n(st: Obj, field: str) -> int:
        return int(st.get(field) or 0)

    old_olds = n(old, "replicas") - n(old, "updatedReplicas")
    new_olds = n(new, "replicas") - n(new, "updatedReplicas")
    return (
        n(new, "updatedReplicas") > n(old, "updatedReplicas")
        or new_olds < old_olds
        or n(new, "readyReplicas") > n(old, "readyReplicas")
        or n(new, "availableReplicas") > n(old, "availableReplicas")
    )


def deployment_timed_out(d: Obj, st: Obj, now: float) -> bool:
    if not has_progress_deadline(d):
        return False
    cond = get_condition(st, "Progressing")
    if cond is None or cond.get("reason") == NEW_RS_AVAILABLE:
        return False
    if cond.get("reason") == TIMED_OUT:
        return True
    since = meta.parse_time(cond.get("lastUpdateTime"))
    if since is None:
        return False
    return since + int(spec(d)["progressDeadlineSeconds"]) < now
