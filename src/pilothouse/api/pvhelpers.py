"""PersistentVolume and claim helpers shared by the binder, the scheduler and the node
(upstream's ``k8s.io/component-helpers/storage/volume`` and ``…/storage/ephemeral``).

The rules here decide which volume a claim may use: class (the beta annotation
wins over ``storageClassName``), access modes (the volume offers every mode the
claim asks), volume mode, capacity (the smallest volume that fits), the claim's
label selector, and the volume's node affinity. Pure functions on plain dicts;
no I/O.
"""

from __future__ import annotations

import decimal
from collections.abc import Iterable, Mapping
from typing import Any

from pilothouse.api import quantity, selectors
from pilothouse.api.meta import Obj

# Annotations and finalizers, by upstream's names.
ANN_BIND_COMPLETED = "pv.kubernetes.io/bind-completed"
ANN_BOUND_BY_CONTROLLER = "pv.kubernetes.io/bound-by-controller"
ANN_DYNAMICALLY_PROVISIONED = "pv.kubernetes.io/provisioned-by"
ANN_STORAGE_PROVISIONER = "volume.kubernetes.io/storage-provisioner"
ANN_BETA_STORAGE_PROVISIONER = "volume.beta.kubernetes.io/storage-provisioner"
ANN_SELECTED_NODE = "volume.kubernetes.io/selected-node"
ANN_BETA_STORAGE_CLASS = "volume.beta.kubernetes.io/storage-class"
ANN_IS_DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"
ANN_BETA_IS_DEFAULT_CLASS = "storageclass.beta.kubernetes.io/is-default-class"
PVC_PROTECTION_FINALIZER = "kubernetes.io/pvc-protection"
PV_PROTECTION_FINALIZER = "kubernetes.io/pv-protection"
# The finalizer external provisioners put on the volumes they must delete
# (HonorPVReclaimPolicy): the PV object outlives its storage only until the
# provisioner has removed the storage.
PROVISIONER_DELETION_FINALIZER = "external-provisioner.volume.kubernetes.io/finalizer"
# A StorageClass with this provisioner only binds pre-created volumes.
NOT_SUPPORTED_PROVISIONER = "kubernetes.io/no-provisioner"

WAIT_FOR_FIRST_CONSUMER = "WaitForFirstConsumer"
HOSTNAME_LABEL = "kubernetes.io/hostname"


def _md(obj: Obj) -> dict[str, Any]:
    md: dict[str, Any] = obj.get("metadata") or {}
    return md


def _spec(obj: Obj) -> dict[str, Any]:
    spec: dict[str, Any] = obj.get("spec") or {}
    return spec


def annotations_of(obj: Obj) -> dict[str, str]:
    ann: dict[str, str] = _md(obj).get("annotations") or {}
    return ann


def key_of_claim(claim: Obj) -> str:
    md = _md(claim)
    return f"{md.get('namespace', '')}/{md.get('name', '')}"


# --- classes ------------------------------------------------------------------------------
def claim_class(claim: Obj) -> str:
    """``GetPersistentVolumeClaimClass``: the beta annotation wins over the field."""
    ann = annotations_of(claim)
    if ANN_BETA_STORAGE_CLASS in ann:
        return str(ann[ANN_BETA_STORAGE_CLASS])
    return str(_spec(claim).get("storageClassName") or "")


def claim_has_class(claim: Obj) -> bool:
    """True when the user chose a class, "" (no class) included."""
    return ANN_BETA_STORAGE_CLASS in annotations_of(claim) or (
        _spec(claim).get("storageClassName") is not None
    )


def volume_class(volume: Obj) -> str:
    ann = annotations_of(volume)
    if ANN_BETA_STORAGE_CLASS in ann:
        return str(ann[ANN_BETA_STORAGE_CLASS])
    return str(_spec(volume).get("storageClassName") or "")


def is_default_class(storage_class: Obj) -> bool:
    ann = annotations_of(storage_class)
    return ann.get(ANN_IS_DEFAULT_CLASS) == "true" or ann.get(ANN_BETA_IS_DEFAULT_CLASS) == "true"


def default_class(classes: Iterable[Obj]) -> Obj | None:
    """``GetDefaultClass``: of the classes marked default, the newest (then by name)."""
    marked = [c for c in classes if is_default_class(c)]
    if not marked:
        return None
    marked.sort(key=lambda c: str(_md(c).get("name", "")))
    marked.sort(key=lambda c: str(_md(c).get("creationTimestamp") or ""), reverse=True)
    return marked[0]


def is_delay_binding(claim: Obj, classes: Mapping[str, Obj]) -> bool:
    """``IsDelayBindingMode``: the claim's class binds when its first pod is scheduled."""
    name = claim_class(claim)
    if not name:
        return False
    storage_class = classes.get(name)
    if storage_class is None:
        return False
    return bool(storage_class.get("volumeBindingMode") == WAIT_FOR_FIRST_CONSUMER)


def is_delay_binding_provisioning(claim: Obj) -> bool:
    """The scheduler chose a node for the claim's volume to be provisioned on."""
    return ANN_SELECTED_NODE in annotations_of(claim)


# --- sizes, modes ---------------------------------------------------------------------------
def _quantity(value: Any) -> decimal.Decimal:
    try:
        return quantity.parse_quantity(value)
    except (quantity.QuantityError, TypeError):
        return decimal.Decimal(0)


def storage_of(values: Mapping[str, Any] | None) -> decimal.Decimal:
    """The ``storage`` entry of a resource list (0 when absent or not a quantity)."""
    return _quantity((values or {}).get("storage", 0))


def requested_storage(claim: Obj) -> decimal.Decimal:
    return storage_of((_spec(claim).get("resources") or {}).get("requests"))


def volume_capacity(volume: Obj) -> decimal.Decimal:
    return storage_of(_spec(volume).get("capacity"))


def volume_mode_mismatch(claim_spec: Obj, volume_spec: Obj) -> bool:
    """``CheckVolumeModeMismatches``: an unset mode is Filesystem on both sides."""
    claim_mode = claim_spec.get("volumeMode") or "Filesystem"
    volume_mode = volume_spec.get("volumeMode") or "Filesystem"
    return bool(claim_mode != volume_mode)


def check_access_modes(claim: Obj, volume: Obj) -> bool:
    """Every access mode the claim asks for is one the volume offers."""
    offered = set(_spec(volume).get("accessModes") or ())
    return all(mode in offered for mode in _spec(claim).get("accessModes") or ())


# --- binding --------------------------------------------------------------------------------
def is_volume_bound_to_claim(volume: Obj, claim: Obj) -> bool:
    """The volume's claimRef names the claim (a ref without uid is a pre-binding)."""
    ref = _spec(volume).get("claimRef")
    if not ref:
        return False
    md = _md(claim)
    if ref.get("name") != md.get("name") or ref.get("namespace") != md.get("namespace"):
        return False
    return not ref.get("uid") or ref.get("uid") == md.get("uid")


def claim_reference(claim: Obj) -> Obj:
    """``reference.GetReference`` of a claim, as a volume's ``claimRef`` holds it."""
    md = _md(claim)
    ref = {
        "kind": "PersistentVolumeClaim",
        "namespace": md.get("namespace", ""),
        "name": md.get("name", ""),
        "uid": md.get("uid", ""),
        "apiVersion": "v1",
        "resourceVersion": md.get("resourceVersion", ""),
    }
    return {k: v for k, v in ref.items() if v}


def bind_volume_to_claim(volume: Obj, claim: Obj) -> tuple[Obj, bool]:
    """``GetBindVolumeToClaim``: a copy of ``volume`` bound to ``claim``, and whether it
    differs from ``volume`` (the caller writes it only then)."""
    import copy

    should_mark = not is_volume_bound_to_claim(volume, claim)
    clone = copy.deepcopy(volume)
    spec = clone.setdefault("spec", {})
    ref = spec.get("claimRef") or {}
    md = _md(claim)
    dirty = False
    if (
        not ref
        or ref.get("name") != md.get("name")
        or ref.get("namespace") != md.get("namespace")
        or ref.get("uid") != md.get("uid")
    ):
        spec["claimRef"] = claim_reference(claim)
        dirty = True
    ann = clone.setdefault("metadata", {}).setdefault("annotations", {})
    if should_mark and ANN_BOUND_BY_CONTROLLER not in ann:
        ann[ANN_BOUND_BY_CONTROLLER] = "yes"
        dirty = True
    return clone, dirty


# --- node affinity --------------------------------------------------------------------------
def _requirement_matches(req: Obj, value: str | None) -> bool:
    op = req.get("operator", "")
    values = [str(v) for v in req.get("values") or ()]
    if op == "In":
        return value is not None and value in values
    if op == "NotIn":
        return value is None or value not in values
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op in ("Gt", "Lt"):
        if value is None or len(values) != 1:
            return False
        try:
            have, want = int(value), int(values[0])
        except ValueError:
            return False
        return have > want if op == "Gt" else have < want
    return False


def node_selector_term_matches(term: Obj, labels: Mapping[str, str], name: str = "") -> bool:
    """A term ANDs its requirements; an empty term matches nothing."""
    expressions = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not expressions and not fields:
        return False
    for req in expressions:
        if not _requirement_matches(req, labels.get(str(req.get("key", "")))):
            return False
    for req in fields:
        if req.get("key") != "metadata.name" or not _requirement_matches(req, name or None):
            return False
    return True


def node_selector_matches(selector: Obj | None, labels: Mapping[str, str], name: str = "") -> bool:
    """``MatchNodeSelectorTerms``: terms are ORed."""
    terms = (selector or {}).get("nodeSelectorTerms") or []
    return any(node_selector_term_matches(t, labels, name) for t in terms)


def check_node_affinity(volume: Obj, labels: Mapping[str, str], name: str = "") -> str:
    """``CheckNodeAffinity``: "" when a node with ``labels`` (and ``name``, for
    ``matchFields``) may use ``volume``, else why not."""
    affinity = _spec(volume).get("nodeAffinity")
    if not affinity or affinity.get("required") is None:
        return ""
    if node_selector_matches(affinity["required"], labels, name):
        return ""
    return "no matching NodeSelectorTerms"


def volume_node_names(volume: Obj) -> set[str] | None:
    """The hostnames a volume's required node affinity names with ``In`` (local volumes
    are pinned this way), or None when it does not pin the volume to named nodes."""
    required = (_spec(volume).get("nodeAffinity") or {}).get("required") or {}
    names: set[str] = set()
    for term in required.get("nodeSelectorTerms") or []:
        hit = False
        for req in term.get("matchExpressions") or []:
            if req.get("key") == HOSTNAME_LABEL and req.get("operator") == "In":
                names.update(str(v) for v in req.get("values") or ())
                hit = True
        if not hit:
            return None
    return names or None


# --- matching -------------------------------------------------------------------------------
def find_matching_volume(
    claim: Obj,
    volumes: Iterable[Obj],
    *,
    node_labels: Mapping[str, str] | None = None,
    node_name: str = "",
    excluded: Iterable[str] = (),
    delay_binding: bool = False,
    ignore_affinity: bool = False,
) -> Obj | None:
    """``FindMatchingVolume``: the volume pre-bound to ``claim`` if any, else the smallest
    Available volume of the claim's class whose capacity, volume mode, labels and (with a
    node — the scheduler's path) node affinity and access modes fit. Without a node and
    with ``delay_binding`` only pre-bound volumes are returned: the scheduler binds the
    rest once it has chosen a node. ``ignore_affinity`` asks whether the volume would do
    on some node."""
    requested = requested_storage(claim)
    requested_class = claim_class(claim)
    selector = None
    raw_selector = _spec(claim).get("selector")
    if raw_selector is not None:
        selector = selectors.from_label_selector_dict(raw_selector)
    skip = set(excluded)
    claim_spec = _spec(claim)
    smallest: Obj | None = None
    smallest_size = decimal.Decimal(0)
    for volume in volumes:
        md = _md(volume)
        if md.get("name") in skip:
            continue
        spec = _spec(volume)
        if spec.get("claimRef") and not is_volume_bound_to_claim(volume, claim):
            continue
        size = volume_capacity(volume)
        if size < requested:
            continue
        if volume_mode_mismatch(claim_spec, spec):
            continue
        if md.get("deletionTimestamp"):
            continue
        affinity_ok = (
            node_labels is None
            or ignore_affinity
            or not check_node_affinity(volume, node_labels, node_name)
        )
        if is_volume_bound_to_claim(volume, claim):
            # A pre-bound volume is the answer; on a node it cannot reach, there is none.
            return volume if affinity_ok else None
        if node_labels is None and delay_binding:
            continue
        if (volume.get("status") or {}).get("phase") != "Available":
            continue
        if selector is not None and not selector.matches(md.get("labels") or {}):
            continue
        if volume_class(volume) != requested_class:
            continue
        if not affinity_ok:
            continue
        if node_labels is not None and not check_access_modes(claim, volume):
            continue
        if smallest is None or size < smallest_size:
            smallest, smallest_size = volume, size
    return smallest


# --- pods -----------------------------------------------------------------------------------
def ephemeral_claim_name(pod: Obj, volume: Obj) -> str:
    """``ephemeral.VolumeClaimName``: ``<pod>-<volume>``."""
    return f"{_md(pod).get('name', '')}-{volume.get('name', '')}"


def volume_is_for_pod(pod: Obj, claim: Obj) -> str:
    """``ephemeral.VolumeIsForPod``: "" when the pod owns the claim, else the error."""
    owner_uid = _md(pod).get("uid")
    for ref in _md(claim).get("ownerReferences") or []:
        if ref.get("controller") and ref.get("uid") == owner_uid:
            return ""
    pod_md, claim_md = _md(pod), _md(claim)
    return (
        f"PVC {claim_md.get('namespace', '')}/{claim_md.get('name', '')} was not created for "
        f"pod {pod_md.get('namespace', '')}/{pod_md.get('name', '')} (pod is not owner)"
    )


def pod_claims(pod: Obj) -> list[tuple[Obj, str, bool]]:
    """The pod's volumes that use claims: (volume, claim name, is ephemeral)."""
    out: list[tuple[Obj, str, bool]] = []
    for volume in _spec(pod).get("volumes") or []:
        if volume.get("persistentVolumeClaim") is not None:
            out.append((volume, str(volume["persistentVolumeClaim"].get("claimName", "")), False))
        elif volume.get("ephemeral") is not None:
            out.append((volume, ephemeral_claim_name(pod, volume), True))
    return out


def pod_claim_keys(pod: Obj) -> list[str]:
    """``namespace/claim`` of every claim the pod uses (upstream's PodPVCIndex)."""
    namespace = _md(pod).get("namespace", "")
    return [f"{namespace}/{name}" for _, name, _ in pod_claims(pod)]


def is_pod_terminated(pod: Obj) -> bool:
    """``IsPodTerminated``: finished, or deleted and no container runs any more."""
    status = pod.get("status") or {}
    if status.get("phase") in ("Failed", "Succeeded"):
        return True
    if not _md(pod).get("deletionTimestamp"):
        return False
    # A container is running unless its state says terminated or waiting.
    return not any(
        not ({"terminated", "waiting"} & set(s.get("state") or {}))
        for key in ("initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses")
        for s in status.get(key) or []
    )


# --- the built-in local-path class -------------------------------------------------------
LOCAL_PATH_PROVISIONER = "pilothouse.io/local-path"
LOCAL_PATH_CLASS = "local-path"


def local_path_storage_class() -> Obj:
    """The default StorageClass a new cluster starts with: volumes are directories on the
    node the first pod using them is scheduled to, removed with their claim."""
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": LOCAL_PATH_CLASS,
            "annotations": {ANN_IS_DEFAULT_CLASS: "true"},
        },
        "provisioner": LOCAL_PATH_PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": WAIT_FOR_FIRST_CONSUMER,
        "allowVolumeExpansion": True,
    }
