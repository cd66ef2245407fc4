"""Small upstream admission plugins, off by default: AlwaysAdmit, AlwaysDeny,
AlwaysPullImages, DenyServiceExternalIPs and LimitPodHardAntiAffinityTopology."""

from __future__ import annotations

from typing import Any

from pilothouse.api import errors, resources
from pilothouse.apiserver.admission.chain import Deps
from pilothouse.apiserver.admission.interface import CREATE, UPDATE, Attributes, Plugin

HOSTNAME_LABEL = "kubernetes.io/hostname"


def _pod_request(resource: resources.Resource, subresource: str) -> bool:
    return not subresource and resource.group == "" and resource.plural == "pods"


class AlwaysAdmit(Plugin):
    """Admits everything (deprecated upstream; the same as no plugin)."""

    name = "AlwaysAdmit"
    operations = frozenset({"CREATE", "UPDATE", "DELETE", "CONNECT"})

    def __init__(self, deps: Deps) -> None:
        pass

    async def admit(self, a: Attributes) -> None:
        return None


class AlwaysDeny(Plugin):
    """Refuses every write (for testing)."""

    name = "AlwaysDeny"
    operations = frozenset({"CREATE", "UPDATE", "DELETE", "CONNECT"})

    def __init__(self, deps: Deps) -> None:
        pass

    async def admit(self, a: Attributes) -> None:
        raise a.forbidden("admission control is denying all modifications")

    async def validate(self, a: Attributes) -> None:
        raise a.forbidden("admission control is denying all modifications")


def _containers(spec: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for i, c in enumerate(spec.get(key) or []):
            if isinstance(c, dict):
                out.append((f"spec.{key}[{i}]", c))
    return out


def _images(obj: dict[str, Any] | None) -> set[str]:
    spec = (obj or {}).get("spec") or {}
    return {str(c.get("image") or "") for _, c in _containers(spec)}


class AlwaysPullImages(Plugin):
    """Every container of a new pod (or one given new images) pulls its image each time,
    so a pod cannot use an image another tenant pulled without having the credentials."""

    name = "AlwaysPullImages"

    def __init__(self, deps: Deps) -> None:
        pass

    def handles(self, resource: resources.Resource, subresource: str, operation: str) -> bool:
        return _pod_request(resource, subresource) and operation in (CREATE, UPDATE)

    def _ignore(self, a: Attributes) -> bool:
        # An update that brings no new image changes nothing worth pulling.
        return a.operation == UPDATE and not (_images(a.obj) - _images(a.old))

    async def admit(self, a: Attributes) -> None:
        if a.obj is None or self._ignore(a):
            return
        for _, c in _containers(a.obj.get("spec") or {}):
            c["imagePullPolicy"] = "Always"

    async def validate(self, a: Attributes) -> None:
        if a.obj is None or self._ignore(a):
            return
        for path, c in _containers(a.obj.get("spec") or {}):
            policy = c.get("imagePullPolicy")
            if policy != "Always":
                error = errors.not_supported(f"{path}.imagePullPolicy", policy, ("Always",))
                raise a.forbidden(error.message())


class DenyServiceExternalIPs(Plugin):
    """No new ``spec.externalIPs`` on Services (CVE-2020-8554)."""

    name = "DenyServiceExternalIPs"

    def __init__(self, deps: Deps) -> None:
        pass

    def handles(self, resource: resources.Resource, subresource: str, operation: str) -> bool:
        return (
            not subresource
            and resource.group == ""
            and resource.plural == "services"
            and operation in (CREATE, UPDATE)
        )

    async def validate(self, a: Attributes) -> None:
        new_ips = ((a.obj or {}).get("spec") or {}).get("externalIPs") or []
        if not new_ips:
            return
        old_ips = set(((a.old or {}).get("spec") or {}).get("externalIPs") or [])
        if a.old is None or any(ip not in old_ips for ip in new_ips):
            raise a.forbidden("use of external IPs is denied by admission control")


class LimitPodHardAntiAffinityTopology(Plugin):
    """Required pod anti-affinity may only spread over ``kubernetes.io/hostname``."""

    name = "LimitPodHardAntiAffinityTopology"

    def __init__(self, deps: Deps) -> None:
        pass

    def handles(self, resource: resources.Resource, subresource: str, operation: str) -> bool:
        return _pod_request(resource, subresource) and operation in (CREATE, UPDATE)

    async def validate(self, a: Attributes) -> None:
        affinity = ((a.obj or {}).get("spec") or {}).get("affinity") or {}
        anti = affinity.get("podAntiAffinity") or {}
        for term in anti.get("requiredDuringSchedulingIgnoredDuringExecution") or []:
            key = (term or {}).get("topologyKey")
            if key != HOSTNAME_LABEL:
                name = ((a.obj or {}).get("metadata") or {}).get("name", "")
                raise errors.forbidden(
                    "pods",
                    "",
                    name,
                    f"affinity.PodAntiAffinity.RequiredDuringScheduling has TopologyKey {key} but "
                    f"only key {HOSTNAME_LABEL} is allowed",
                )
