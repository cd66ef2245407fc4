"""A pod volume backed by a claim: which PersistentVolume it is and where that lives on
this node (upstream's desired-state populator ``createVolumeSpec`` and the ``local`` and
``hostPath`` volume plugins' mounters).

A claim that is missing, being deleted or not yet bound — or a volume whose
``claimRef`` does not point back at it — leaves the pod waiting in ContainerCreating
with a ``FailedMount`` event worded as the kubelet words its errors; the pod worker
tries again. ``local`` volumes are directories that must exist on the node (the
local-path provisioner's own are made ready first, an image mounted again after a
reboot); ``hostPath`` volumes follow the pod ``hostPath`` rules (type checks,
``DirectoryOrCreate``). Other volume types cannot be used on this node.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pilothouse.api import pvhelpers
from pilothouse.node.containers import ConfigError, Lookups

Obj = dict[str, Any]


class VolumeNotReady(ConfigError):
    """A volume cannot be set up yet: the pod waits (ContainerCreating, FailedMount)."""

    reason = "ContainerCreating"


def claim_for(pod: Obj, volume: Obj) -> tuple[str, bool]:
    """(claim name, read-only) of a pod volume of type persistentVolumeClaim/ephemeral."""
    if volume.get("persistentVolumeClaim") is not None:
        source = volume["persistentVolumeClaim"]
        return str(source.get("claimName", "")), bool(source.get("readOnly"))
    return pvhelpers.ephemeral_claim_name(pod, volume), False


def _unprocessed(volume_name: str, why: str) -> VolumeNotReady:
    return VolumeNotReady(
        f"Unable to attach or mount volumes: unmounted volumes=[{volume_name}], "
        f"unattached volumes=[], failed to process volumes=[{volume_name}]: {why}"
    )


def bound_volume(pod: Obj, volume: Obj, lookups: Lookups) -> Obj:
    """The PersistentVolume the pod volume's claim is bound to; raises VolumeNotReady."""
    namespace = pod["metadata"].get("namespace", "")
    name, _ = claim_for(pod, volume)
    where = f"error processing PVC {namespace}/{name}"
    claim = lookups.claims.get(name)
    if claim is None:
        raise _unprocessed(
            volume["name"],
            f"{where}: failed to fetch PVC from API server: "
            f'persistentvolumeclaims "{name}" not found',
        )
    if volume.get("ephemeral") is not None:
        why = pvhelpers.volume_is_for_pod(pod, claim)
        if why:
            raise _unprocessed(volume["name"], f"{where}: {why}")
    if claim["metadata"].get("deletionTimestamp"):
        raise _unprocessed(volume["name"], f"{where}: PVC is being deleted")
    if (claim.get("status") or {}).get("phase") != "Bound":
        raise _unprocessed(volume["name"], f"{where}: PVC is not bound")
    volume_name = (claim.get("spec") or {}).get("volumeName") or ""
    if not volume_name:
        raise _unprocessed(volume["name"], f"{where}: PVC has empty pvc.Spec.VolumeName")
    pv = lookups.volumes.get(volume_name)
    if pv is None:
        raise _unprocessed(
            volume["name"],
            f"{where}: failed to fetch PV {volume_name} from API server: "
            f'persistentvolumes "{volume_name}" not found',
        )
    ref = (pv.get("spec") or {}).get("claimRef")
    if not ref:
        raise _unprocessed(
            volume["name"],
            f"{where}: found PV object {volume_name} but it has a nil pv.Spec.ClaimRef "
            "indicating it is not yet bound to the claim",
        )
    if ref.get("uid") != claim["metadata"].get("uid"):
        raise _unprocessed(
            volume["name"],
            f"{where}: found PV object {volume_name} but its pv.Spec.ClaimRef.UID "
            f"{ref.get('uid', '')} does not point to claim.UID {claim['metadata'].get('uid', '')}",
        )
    return pv


def host_path_of(
    pv: Obj,
    *,
    check_host_path: Callable[[Obj], Path],
    local_ready: Callable[[Path], None] | None,
) -> tuple[Path, bool]:
    """Where the volume is on this node, and whether fsGroup ownership applies to it.
    Raises VolumeNotReady (FailedMount) when it cannot be used here."""
    name = pv["metadata"]["name"]
    spec = pv.get("spec") or {}
    local = spec.get("local")
    if local is not None:
        path = Path(str(local.get("path") or ""))
        if local_ready is not None:
            try:
                local_ready(path)
            except Exception as exc:
                raise VolumeNotReady(
                    f'MountVolume.SetUp failed for volume "{name}" : {exc}'
                ) from None
        if not path.exists():
            raise VolumeNotReady(
                f'MountVolume.NewMounter initialization failed for volume "{name}" : '
                f'path "{path}" does not exist'
            )
        return path, True
    host_path = spec.get("hostPath")
    if host_path is not None:
        try:
            return check_host_path(host_path), False
        except ConfigError as exc:
            raise VolumeNotReady(f'MountVolume.SetUp failed for volume "{name}" : {exc}') from None
    kinds = sorted(k for k in spec if isinstance(spec[k], dict) and k not in _NOT_SOURCES)
    raise VolumeNotReady(
        f'MountVolume.SetUp failed for volume "{name}" : volume type '
        f"{', '.join(kinds) or '?'} cannot be used on this node (local and hostPath volumes can)"
    )


_NOT_SOURCES = frozenset({"capacity", "claimRef", "nodeAffinity"})
