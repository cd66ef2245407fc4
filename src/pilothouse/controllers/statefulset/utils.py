"""StatefulSet arithmetic without I/O (upstream's ``stateful_set_utils.go``).

Ordinals and names (``web-0``, claims ``data-web-0``), a pod's identity and storage,
the pods the controller makes at a revision, the claim ownership each
``persistentVolumeClaimRetentionPolicy`` asks for, and the status bookkeeping.
Objects are the API's JSON dicts; nothing here writes to the API.
"""

from __future__ import annotations

import re
from typing import Any

from pilothouse.api import intstr, meta
from pilothouse.api.meta import Obj
from pilothouse.controllers import podcontrol
from pilothouse.controllers.history import revisions

KIND = "StatefulSet"
API_VERSION = "apps/v1"
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
REVISION_LABEL = revisions.REVISION_LABEL
RETAIN = "Retain"
DELETE = "Delete"

_POD_RE = re.compile(r"^(.*)-([0-9]+)$", re.DOTALL)
_MAX_INT32 = 2**31 - 1


# --- accessors --------------------------------------------------------------------------
def spec(obj: Obj | None) -> Obj:
    return (obj or {}).get("spec") or {}


def status(obj: Obj | None) -> Obj:
    return (obj or {}).get("status") or {}


def replicas(sts: Obj) -> int:
    value = spec(sts).get("replicas")
    return 1 if value is None else int(value)


def min_ready_seconds(sts: Obj) -> int:
    return int(spec(sts).get("minReadySeconds") or 0)


def name(obj: Obj) -> str:
    return str(obj["metadata"]["name"])


def uid(obj: Obj) -> str:
    return str(obj["metadata"].get("uid", ""))


def namespace(obj: Obj) -> str:
    return str(obj["metadata"].get("namespace", ""))


def strategy_type(sts: Obj) -> str:
    return str((spec(sts).get("updateStrategy") or {}).get("type") or "RollingUpdate")


def rolling_update(sts: Obj) -> Obj | None:
    value = (spec(sts).get("updateStrategy") or {}).get("rollingUpdate")
    return value if isinstance(value, dict) else None


def partition(sts: Obj) -> int:
    rolling = rolling_update(sts)
    return int((rolling or {}).get("partition") or 0)


def allows_burst(sts: Obj) -> bool:
    return spec(sts).get("podManagementPolicy") == "Parallel"


def retention_policy(sts: Obj) -> tuple[str, str]:
    """(whenDeleted, whenScaled); Retain for what is not set."""
    policy = spec(sts).get("persistentVolumeClaimRetentionPolicy") or {}
    return str(policy.get("whenDeleted") or RETAIN), str(policy.get("whenScaled") or RETAIN)


# --- ordinals and names -------------------------------------------------------------------
def parent_and_ordinal(pod: Obj) -> tuple[str, int]:
    """The set name and ordinal a pod's name encodes; ("", -1) when it encodes none."""
    match = _POD_RE.match(str(pod["metadata"].get("name", "")))
    if match is None:
        return "", -1
    ordinal = int(match.group(2))
    return match.group(1), ordinal if ordinal <= _MAX_INT32 else -1


def ordinal_of(pod: Obj) -> int:
    return parent_and_ordinal(pod)[1]


def start_ordinal(sts: Obj) -> int:
    ordinals = spec(sts).get("ordinals")
    return int((ordinals or {}).get("start") or 0) if isinstance(ordinals, dict) else 0


def end_ordinal(sts: Obj) -> int:
    return start_ordinal(sts) + replicas(sts) - 1


def in_ordinal_range(pod: Obj, sts: Obj) -> bool:
    return start_ordinal(sts) <= ordinal_of(pod) <= end_ordinal(sts)


def pod_name(sts: Obj, ordinal: int) -> str:
    return f"{name(sts)}-{ordinal}"


def claim_name(sts: Obj, template: Obj, ordinal: int) -> str:
    return f"{template['metadata']['name']}-{name(sts)}-{ordinal}"


def is_member_of(sts: Obj, pod: Obj) -> bool:
    return parent_and_ordinal(pod)[0] == name(sts)


def claim_templates(sts: Obj) -> list[Obj]:
    return [t for t in spec(sts).get("volumeClaimTemplates") or [] if isinstance(t, dict)]


# --- pod state ----------------------------------------------------------------------------
def phase(pod: Obj) -> str:
    return str(status(pod).get("phase") or "")


def is_created(pod: Obj) -> bool:
    return phase(pod) != ""


def is_pending(pod: Obj) -> bool:
    return phase(pod) == "Pending"


def is_failed(pod: Obj) -> bool:
    return phase(pod) == "Failed"


def is_succeeded(pod: Obj) -> bool:
    return phase(pod) == "Succeeded"


def is_terminating(pod: Obj) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp"))


def is_running_and_ready(pod: Obj) -> bool:
    return phase(pod) == "Running" and podcontrol.pod_ready(pod)


def is_running_and_available(pod: Obj, min_ready: int, now: float) -> bool:
    return podcontrol.pod_available(pod, min_ready, now)


def is_healthy(pod: Obj) -> bool:
    return is_running_and_ready(pod) and not is_terminating(pod)


def is_unavailable(pod: Obj, min_ready: int, now: float) -> bool:
    return not is_healthy(pod) or not is_running_and_available(pod, min_ready, now)


def pod_revision(pod: Obj) -> str:
    return str((pod["metadata"].get("labels") or {}).get(REVISION_LABEL, ""))


# --- identity and storage -----------------------------------------------------------------
def identity_matches(sts: Obj, pod: Obj) -> bool:
    parent, ordinal = parent_and_ordinal(pod)
    md = pod["metadata"]
    return (
        ordinal >= 0
        and parent == name(sts)
        and md.get("name") == pod_name(sts, ordinal)
        and md.get("namespace", "") == namespace(sts)
        and (md.get("labels") or {}).get(POD_NAME_LABEL) == md.get("name")
    )


def storage_matches(sts: Obj, pod: Obj) -> bool:
    ordinal = ordinal_of(pod)
    if ordinal < 0:
        return False
    volumes = {v.get("name"): v for v in spec(pod).get("volumes") or []}
    for template in claim_templates(sts):
        volume = volumes.get(template["metadata"]["name"])
        pvc = (volume or {}).get("persistentVolumeClaim")
        if not pvc or pvc.get("claimName") != claim_name(sts, template, ordinal):
            return False
    return True


def claims_for(sts: Obj, pod: Obj) -> dict[str, Obj]:
    """Template name → the claim the pod's ordinal gets (``getPersistentVolumeClaims``)."""
    ordinal = ordinal_of(pod)
    match_labels = dict((spec(sts).get("selector") or {}).get("matchLabels") or {})
    out: dict[str, Obj] = {}
    for template in claim_templates(sts):
        claim = meta.deep_copy(template)
        claim.pop("status", None)
        claim["apiVersion"] = "v1"
        claim["kind"] = "PersistentVolumeClaim"
        md = claim.setdefault("metadata", {})
        md["name"] = claim_name(sts, template, ordinal)
        md["namespace"] = namespace(sts)
        md["labels"] = {**(md.get("labels") or {}), **match_labels}
        out[template["metadata"]["name"]] = claim
    return out


def update_storage(sts: Obj, pod: Obj) -> None:
    """Point the pod's volumes at its claims, replacing same-named volumes."""
    claims = claims_for(sts, pod)
    volumes: list[Obj] = [
        {
            "name": tmpl_name,
            "persistentVolumeClaim": {"claimName": claim["metadata"]["name"]},
        }
        for tmpl_name, claim in claims.items()
    ]
    volumes += [v for v in spec(pod).get("volumes") or [] if v.get("name") not in claims]
    pod.setdefault("spec", {})["volumes"] = volumes


def update_identity(sts: Obj, pod: Obj) -> None:
    ordinal = ordinal_of(pod)
    md = pod["metadata"]
    md["name"] = pod_name(sts, ordinal)
    md["namespace"] = namespace(sts)
    labels = md.setdefault("labels", {})
    labels[POD_NAME_LABEL] = md["name"]
    labels[POD_INDEX_LABEL] = str(ordinal)


def init_identity(sts: Obj, pod: Obj) -> None:
    update_identity(sts, pod)
    # Set only when the pod is made: the pod's hostname and subdomain are immutable.
    pod_spec = pod.setdefault("spec", {})
    pod_spec["hostname"] = pod["metadata"]["name"]
    service = spec(sts).get("serviceName") or ""
    if service:
        pod_spec["subdomain"] = service
    else:
        pod_spec.pop("subdomain", None)


def new_pod(sts: Obj, ordinal: int) -> Obj:
    """A pod of ``sts`` for ``ordinal`` (``newStatefulSetPod``)."""
    pod = podcontrol.pod_from_template(sts, spec(sts).get("template") or {})
    pod["metadata"]["name"] = pod_name(sts, ordinal)
    init_identity(sts, pod)
    update_storage(sts, pod)
    return pod


def new_versioned_pod(
    current_set: Obj, update_set: Obj, current_revision: str, update_revision: str, ordinal: int
) -> Obj:
    """A pod for ``ordinal`` at the current revision when the update has not reached it
    (below the partition), otherwise at the update revision."""
    rolling = rolling_update(current_set)
    start = start_ordinal(current_set)
    at_current = (
        strategy_type(current_set) == "RollingUpdate"
        and rolling is None
        and ordinal < start + int(status(current_set).get("currentReplicas") or 0)
    ) or (rolling is not None and ordinal < start + partition(current_set))
    if at_current:
        pod = new_pod(current_set, ordinal)
        set_pod_revision(pod, current_revision)
    else:
        pod = new_pod(update_set, ordinal)
        set_pod_revision(pod, update_revision)
    return pod


def set_pod_revision(pod: Obj, revision: str) -> None:
    pod["metadata"].setdefault("labels", {})[REVISION_LABEL] = revision


def max_unavailable(sts: Obj) -> int:
    """``getStatefulSetMaxUnavailable``: 1 by default, a percentage rounded down, never 0."""
    rolling = rolling_update(sts) or {}
    value: Any = rolling.get("maxUnavailable")
    count = intstr.scaled_value(1 if value is None else value, replicas(sts), False)
    return max(1, count)


# --- claim ownership for the retention policy ----------------------------------------------
def _matches_ref(ref: Obj, obj: Obj, api_version: str, kind: str) -> bool:
    return (
        ref.get("apiVersion") == api_version
        and ref.get("kind") == kind
        and ref.get("name") == obj["metadata"].get("name")
    )


def _refs(obj: Obj) -> list[Obj]:
    return list(obj["metadata"].get("ownerReferences") or [])


def has_owner_ref(target: Obj, owner: Obj) -> bool:
    owner_uid = owner["metadata"].get("uid")
    return any(r.get("uid") == owner_uid for r in _refs(target))


def has_stale_owner_ref(target: Obj, owner: Obj, api_version: str, kind: str) -> bool:
    """A reference to an object of that name and kind, but another uid."""
    for ref in _refs(target):
        if _matches_ref(ref, owner, api_version, kind):
            return bool(ref.get("uid") != owner["metadata"].get("uid"))
    return False


def has_unexpected_controller(claim: Obj, sts: Obj, pod: Obj) -> bool:
    if retention_policy(sts) == (RETAIN, RETAIN):
        return False  # with Retain, another controller managing the claim is no problem
    for ref in _refs(claim):
        if _matches_ref(ref, sts, API_VERSION, KIND):
            if ref.get("uid") != uid(sts):
                return True  # a previous set of that name: leave it to the GC
            continue
        if _matches_ref(ref, pod, "v1", "Pod"):
            if ref.get("uid") != pod["metadata"].get("uid"):
                return True
            continue
        if ref.get("controller"):
            return True
    return False


def has_non_controller_owner(claim: Obj, sts: Obj, pod: Obj) -> bool:
    ids = {uid(sts), pod["metadata"].get("uid")}
    return any(r.get("uid") in ids and not r.get("controller") for r in _refs(claim))


def is_claim_owner_up_to_date(claim: Obj, sts: Obj, pod: Obj) -> bool:
    """Whether the claim's owners are what the retention policy asks for:
    Retain/Retain none; Delete on set deletion the set; Delete on scale-down the
    pod once it is scaled down; both, the set while in range and the pod after."""
    if has_stale_owner_ref(claim, sts, API_VERSION, KIND) or has_stale_owner_ref(
        claim, pod, "v1", "Pod"
    ):
        return True  # owned by an earlier object of that name: do not touch
    if has_unexpected_controller(claim, sts, pod):
        return not (has_owner_ref(claim, sts) or has_owner_ref(claim, pod))
    if has_non_controller_owner(claim, sts, pod):
        return False
    when_deleted, when_scaled = retention_policy(sts)
    set_ref, pod_ref = has_owner_ref(claim, sts), has_owner_ref(claim, pod)
    scaled_down = not in_ordinal_range(pod, sts)
    if when_scaled == DELETE and when_deleted == DELETE:
        return scaled_down != set_ref and scaled_down == pod_ref
    if when_scaled == DELETE:
        return not set_ref and scaled_down == pod_ref
    if when_deleted == DELETE:
        return set_ref and not pod_ref
    return not set_ref and not pod_ref


def update_claim_owner_refs(claim: Obj, sts: Obj, pod: Obj) -> None:
    """Set the claim's owner references as the retention policy asks
    (``updateClaimOwnerRefForSetAndPod``)."""
    unexpected = has_unexpected_controller(claim, sts, pod)
    refs = [
        r
        for r in _refs(claim)
        if not _matches_ref(r, sts, API_VERSION, KIND) and not _matches_ref(r, pod, "v1", "Pod")
    ]
    if not unexpected:
        when_deleted, when_scaled = retention_policy(sts)
        scaled_down = not in_ordinal_range(pod, sts)
        if when_scaled == DELETE and scaled_down:
            refs = _add_controller_ref(refs, pod, "v1", "Pod")
        if when_deleted == DELETE and (when_scaled == RETAIN or not scaled_down):
            refs = _add_controller_ref(refs, sts, API_VERSION, KIND)
    if refs:
        claim["metadata"]["ownerReferences"] = refs
    else:
        claim["metadata"].pop("ownerReferences", None)


def _add_controller_ref(refs: list[Obj], owner: Obj, api_version: str, kind: str) -> list[Obj]:
    owner_uid = owner["metadata"].get("uid")
    if any(r.get("uid") == owner_uid for r in refs):
        return refs
    return [
        *refs,
        {
            "apiVersion": api_version,
            "kind": kind,
            "name": owner["metadata"]["name"],
            "uid": owner_uid,
            "controller": True,
            "blockOwnerDeletion": True,
        },
    ]


# --- status -------------------------------------------------------------------------------
def inconsistent_status(sts: Obj, new: Obj) -> bool:
    old = status(sts)
    fields = (
        "replicas",
        "currentReplicas",
        "readyReplicas",
        "updatedReplicas",
        "currentRevision",
        "availableReplicas",
        "updateRevision",
    )
    if int(new.get("observedGeneration") or 0) > int(old.get("observedGeneration") or 0):
        return True
    return any((new.get(f) or 0) != (old.get(f) or 0) for f in fields)


def complete_rolling_update(sts: Obj, new: Obj) -> None:
    """Once every replica is updated and ready, the update revision becomes current."""
    want = replicas(sts)
    if (
        strategy_type(sts) == "RollingUpdate"
        and int(new.get("updatedReplicas") or 0) == want
        and int(new.get("readyReplicas") or 0) == want
        and int(new.get("replicas") or 0) == want
    ):
        new["currentReplicas"] = new.get("updatedReplicas", 0)
        new["currentRevision"] = new.get("updateRevision", "")


def status_for_api(new: Obj, old: Obj) -> Obj:
    """The status as upstream serves it: zero counts and empty strings left out
    (``omitempty``), except ``replicas``, ``availableReplicas`` and ``collisionCount``;
    conditions carried over."""
    out: Obj = {}
    for key in (
        "observedGeneration",
        "replicas",
        "readyReplicas",
        "currentReplicas",
        "updatedReplicas",
        "currentRevision",
        "updateRevision",
        "collisionCount",
        "availableReplicas",
    ):
        value = new.get(key)
        if key in ("replicas", "availableReplicas"):
            out[key] = int(value or 0)
        elif key == "collisionCount":
            if value is not None:
                out[key] = int(value)
        elif value:
            out[key] = value
    if old.get("conditions"):
        out["conditions"] = old["conditions"]
    return out
