"""What a pod's claims need from a node (upstream's ``volumeBinder``: ``GetPodVolumeClaims``,
``FindPodVolumes``, ``checkBoundClaims``, ``findMatchingVolumes``, ``checkVolumeProvisions``).

A pod's claims fall into three groups: bound (the node must satisfy each bound
volume's node affinity), unbound with a WaitForFirstConsumer class (the node must
either offer a matching Available volume or be one the class can provision on),
and unbound with an Immediate class (the binder has not bound them yet: the pod
waits). :func:`find_pod_volumes` answers for one node exactly, with the volumes it
would bind and the claims it would have provisioned; the plugin asks it for the
node it reserves, and evaluates the same rules for all nodes at once with masks.
"""

from __future__ import annotations

import decimal
from dataclasses import dataclass, field
from typing import Any

from pilothouse.api import pvhelpers
from pilothouse.scheduler.plugins.volumebinding.assume import AssumeCache

Obj = dict[str, Any]

ERR_REASON_NODE_CONFLICT = "node(s) had volume node affinity conflict"
ERR_REASON_BIND_CONFLICT = "node(s) didn't find available persistent volumes to bind"
ERR_REASON_PV_NOT_EXIST = (
    "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)"
)
UNBOUND_IMMEDIATE = "pod has unbound immediate PersistentVolumeClaims"


class ClaimError(Exception):
    """The pod cannot be scheduled while its claims are like this (the message says why)."""


@dataclass
class PodVolumeClaims:
    bound: list[Obj] = field(default_factory=list)
    unbound_delay: list[Obj] = field(default_factory=list)
    unbound_immediate: list[Obj] = field(default_factory=list)
    # Per class of the delay-binding claims: its volumes (assumptions included).
    volumes_by_class: dict[str, list[Obj]] = field(default_factory=dict)


@dataclass
class PodVolumes:
    """What binding the pod's volumes on the chosen node takes."""

    static_bindings: list[tuple[Obj, Obj]] = field(default_factory=list)  # (volume, claim)
    provisions: list[Obj] = field(default_factory=list)  # claims, annotated for the node


def is_fully_bound(claim: Obj) -> bool:
    return bool((claim.get("spec") or {}).get("volumeName")) and (
        pvhelpers.ANN_BIND_COMPLETED in pvhelpers.annotations_of(claim)
    )


def check_pod_claims(pod: Obj, claims: AssumeCache) -> bool:
    """``podHasPVCs``: whether the pod uses claims; raises :class:`ClaimError` when one of
    them cannot be used at all (missing, lost, being deleted, not the pod's own)."""
    namespace = (pod.get("metadata") or {}).get("namespace", "")
    found = False
    for _volume, name, ephemeral in pvhelpers.pod_claims(pod):
        found = True
        claim = claims.get(f"{namespace}/{name}")
        if claim is None:
            if ephemeral:
                raise ClaimError(
                    f'waiting for ephemeral volume controller to create the persistentvolumeclaim "{name}"'
                )
            raise ClaimError(f'persistentvolumeclaim "{name}" not found')
        if (claim.get("status") or {}).get("phase") == "Lost":
            raise ClaimError(
                f'persistentvolumeclaim "{name}" bound to non-existent persistentvolume '
                f'"{(claim.get("spec") or {}).get("volumeName", "")}"'
            )
        if (claim.get("metadata") or {}).get("deletionTimestamp"):
            raise ClaimError(f'persistentvolumeclaim "{name}" is being deleted')
        if ephemeral:
            why = pvhelpers.volume_is_for_pod(pod, claim)
            if why:
                raise ClaimError(why)
    return found


def pod_volume_claims(
    pod: Obj, claims: AssumeCache, volumes: AssumeCache, classes: dict[str, Obj]
) -> PodVolumeClaims:
    namespace = (pod.get("metadata") or {}).get("namespace", "")
    out = PodVolumeClaims()
    for _volume, name, _ephemeral in pvhelpers.pod_claims(pod):
        claim = claims.get(f"{namespace}/{name}")
        if claim is None:
            continue  # check_pod_claims has refused the pod already
        if is_fully_bound(claim):
            out.bound.append(claim)
        elif pvhelpers.is_delay_binding(claim, classes) and not (claim.get("spec") or {}).get(
            "volumeName"
        ):
            out.unbound_delay.append(claim)
        else:
            out.unbound_immediate.append(claim)
    for claim in out.unbound_delay:
        name = pvhelpers.claim_class(claim)
        if name not in out.volumes_by_class:
            out.volumes_by_class[name] = [
                v for v in volumes.list() if pvhelpers.volume_class(v) == name
            ]
    return out


def allowed_topologies_selector(storage_class: Obj) -> Obj | None:
    """A class's ``allowedTopologies`` as a node selector (None: every node)."""
    terms = storage_class.get("allowedTopologies") or []
    if not terms:
        return None
    return {
        "nodeSelectorTerms": [
            {
                "matchExpressions": [
                    {"key": e.get("key", ""), "operator": "In", "values": e.get("values") or []}
                    for e in t.get("matchLabelExpressions") or []
                ]
            }
            for t in terms
        ]
    }


def provisionable_class(claim: Obj, classes: dict[str, Obj]) -> Obj | None:
    """The claim's class if it can provision (its provisioner is not no-provisioner).
    Raises :class:`ClaimError` when there is no class to ask."""
    name = pvhelpers.claim_class(claim)
    if not name:
        raise ClaimError(f'no class for claim "{pvhelpers.key_of_claim(claim)}"')
    storage_class = classes.get(name)
    if storage_class is None:
        raise ClaimError(f'failed to find storage class "{name}"')
    provisioner = storage_class.get("provisioner") or ""
    if not provisioner or provisioner == pvhelpers.NOT_SUPPORTED_PROVISIONER:
        return None
    return storage_class


def _size(claim: Obj) -> decimal.Decimal:
    return pvhelpers.requested_storage(claim)


def find_pod_volumes(
    claims: PodVolumeClaims,
    volumes: AssumeCache,
    classes: dict[str, Obj],
    *,
    node_name: str,
    labels: dict[str, str],
) -> tuple[PodVolumes, list[str]]:
    """``FindPodVolumes`` for one node: the bindings and provisions it would take, and the
    reasons it cannot (empty when it can)."""
    result = PodVolumes()
    reasons: list[str] = []
    bound_ok, bound_found = True, True
    for claim in claims.bound:
        volume = volumes.get((claim.get("spec") or {}).get("volumeName", ""))
        if volume is None:
            bound_found = False
            break
        if pvhelpers.check_node_affinity(volume, labels, node_name):
            bound_ok = False
            break
    unbound_ok = True
    to_match: list[Obj] = []
    to_provision: list[Obj] = []
    for claim in claims.unbound_delay:
        selected = pvhelpers.annotations_of(claim).get(pvhelpers.ANN_SELECTED_NODE)
        if selected is not None:
            if selected != node_name:
                unbound_ok = False
                break
            to_provision.append(claim)
        else:
            to_match.append(claim)
    if unbound_ok:
        chosen: set[str] = set()
        for claim in sorted(to_match, key=_size):
            volume = pvhelpers.find_matching_volume(
                claim,
                claims.volumes_by_class.get(pvhelpers.claim_class(claim), []),
                node_labels=labels,
                node_name=node_name,
                excluded=chosen,
                delay_binding=True,
            )
            if volume is None:
                to_provision.append(claim)
            else:
                chosen.add(volume["metadata"]["name"])
                result.static_bindings.append((volume, claim))
        for claim in to_provision:
            storage_class = provisionable_class(claim, classes)
            selector = allowed_topologies_selector(storage_class) if storage_class else None
            if storage_class is None or (
                selector is not None
                and not pvhelpers.node_selector_matches(selector, labels, node_name)
            ):
                unbound_ok = False
                break
            result.provisions.append(claim)
    if not bound_ok:
        reasons.append(ERR_REASON_NODE_CONFLICT)
    if not unbound_ok:
        reasons.append(ERR_REASON_BIND_CONFLICT)
    if not bound_found:
        reasons.append(ERR_REASON_PV_NOT_EXIST)
    return result, reasons
