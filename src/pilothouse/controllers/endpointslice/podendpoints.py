"""What a pod contributes to a Service's endpoints (upstream's ``k8s.io/endpointslice``
utils, shared by the EndpointSlice and Endpoints controllers).

Pure functions over JSON-shaped objects: which pods belong in a Service's
endpoints, the endpoint a pod makes in an EndpointSlice, the container port a
Service port resolves to in one pod (a named ``targetPort`` is looked up per
pod, by name *and* protocol), and the labels a slice carries.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from pilothouse.api.meta import Obj

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
SKIP_MIRROR_LABEL = "endpointslice.kubernetes.io/skip-mirror"
HEADLESS_LABEL = "service.kubernetes.io/headless"
CONTROLLER_NAME = "endpointslice-controller.k8s.io"
TRIGGER_TIME_ANNOTATION = "endpoints.kubernetes.io/last-change-trigger-time"
ZONE_LABEL = "topology.kubernetes.io/zone"
_RESERVED_LABELS = frozenset({SERVICE_NAME_LABEL, MANAGED_BY_LABEL, HEADLESS_LABEL})


def pod_ready(pod: Obj) -> bool:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


def pod_ips(pod: Obj) -> list[str]:
    status = pod.get("status") or {}
    ips = [str(p.get("ip")) for p in status.get("podIPs") or [] if p.get("ip")]
    if not ips and status.get("podIP"):
        ips = [str(status["podIP"])]
    return ips


def should_pod_be_in_endpoints(pod: Obj, *, include_terminating: bool) -> bool:
    """Terminal pods and pods without an address never are; terminating ones only
    when asked (slices carry them as terminating; Endpoints only with
    ``publishNotReadyAddresses``)."""
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return False
    if not pod_ips(pod):
        return False
    return include_terminating or not (pod.get("metadata") or {}).get("deletionTimestamp")


def should_set_hostname(pod: Obj, service: Obj) -> bool:
    spec = pod.get("spec") or {}
    return (
        bool(spec.get("hostname"))
        and spec.get("subdomain") == service["metadata"]["name"]
        and pod["metadata"].get("namespace") == service["metadata"].get("namespace")
    )


def find_port(pod: Obj, service_port: Obj) -> int | None:
    """The container port ``service_port``'s targetPort means in ``pod``, or None."""
    target = service_port.get("targetPort", service_port.get("port"))
    protocol = service_port.get("protocol") or "TCP"
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    spec = pod.get("spec") or {}
    sidecars = [c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
    for container in [*(spec.get("containers") or []), *sidecars]:
        for port in container.get("ports") or []:
            if port.get("name") == target and (port.get("protocol") or "TCP") == protocol:
                return int(port["containerPort"])
    return None


def is_headless(service: Obj) -> bool:
    ip = (service.get("spec") or {}).get("clusterIP")
    return not ip or ip == "None"


def endpoint_ports(service: Obj, pod: Obj) -> list[Obj]:
    """The slice ports of ``pod`` for ``service``: the ports it resolves, in order."""
    out: list[Obj] = []
    for sp in (service.get("spec") or {}).get("ports") or []:
        number = find_port(pod, sp)
        if number is None:
            continue
        port: Obj = {
            "name": sp.get("name") or "",
            "port": number,
            "protocol": sp.get("protocol") or "TCP",
        }
        if sp.get("appProtocol"):
            port["appProtocol"] = sp["appProtocol"]
        out.append(port)
    return out


def port_map_key(ports: list[Obj]) -> tuple[tuple[str, int, str, str], ...]:
    """Slices are grouped by their exact port set, order ignored."""
    return tuple(
        sorted(
            (str(p.get("name") or ""), int(p.get("port") or 0), str(p.get("protocol") or "TCP"),
             str(p.get("appProtocol") or ""))
            for p in ports
        )
    )  # fmt: skip


def address_family(ip: str) -> str:
    return "IPv6" if isinstance(ipaddress.ip_address(ip), ipaddress.IPv6Address) else "IPv4"


def service_address_types(service: Obj) -> list[str]:
    families = [str(f) for f in (service.get("spec") or {}).get("ipFamilies") or []]
    if families:
        return list(dict.fromkeys(families))
    ip = (service.get("spec") or {}).get("clusterIP")
    if ip and ip != "None":
        return [address_family(str(ip))]
    return ["IPv4", "IPv6"]


def pod_to_endpoint(pod: Obj, node: Obj | None, service: Obj, address_type: str) -> Obj:
    """One EndpointSlice endpoint; conditions as upstream derives them."""
    md = pod["metadata"]
    serving = pod_ready(pod)
    terminating = bool(md.get("deletionTimestamp"))
    publish = bool((service.get("spec") or {}).get("publishNotReadyAddresses"))
    ready = publish or (serving and not terminating)
    endpoint: Obj = {
        "addresses": [ip for ip in pod_ips(pod) if address_family(ip) == address_type],
        "conditions": {"ready": ready, "serving": serving, "terminating": terminating},
        "targetRef": {
            "kind": "Pod",
            "namespace": md.get("namespace", ""),
            "name": md["name"],
            "uid": md.get("uid", ""),
        },
    }
    node_name = (pod.get("spec") or {}).get("nodeName")
    if node_name:
        endpoint["nodeName"] = node_name
    zone = ((node or {}).get("metadata", {}).get("labels") or {}).get(ZONE_LABEL)
    if zone:
        endpoint["zone"] = zone
    if should_set_hostname(pod, service):
        endpoint["hostname"] = pod["spec"]["hostname"]
    return endpoint


def slice_labels(
    service: Obj, current: dict[str, str] | None = None
) -> tuple[dict[str, str], bool]:
    """A slice's labels: the Service's own (minus the reserved ones) plus the
    reserved ones; and whether the Service's labels differ from the slice's."""
    ours = {k: v for k, v in (current or {}).items() if k not in _RESERVED_LABELS}
    theirs = {
        k: v
        for k, v in (service["metadata"].get("labels") or {}).items()
        if k not in _RESERVED_LABELS
    }
    changed = ours != theirs
    if is_headless(service):
        theirs[HEADLESS_LABEL] = ""
    theirs[SERVICE_NAME_LABEL] = service["metadata"]["name"]
    theirs[MANAGED_BY_LABEL] = CONTROLLER_NAME
    return theirs, changed


def endpoint_key(endpoint: Obj) -> tuple[str, ...]:
    """Identity of an endpoint across syncs: the pod it stands for, else its addresses."""
    ref = endpoint.get("targetRef") or {}
    if ref.get("uid") or ref.get("name"):
        return ("pod", str(ref.get("namespace", "")), str(ref.get("name", "")))
    return ("addr", *sorted(str(a) for a in endpoint.get("addresses") or []))


def endpoints_equal(a: Obj, b: Obj) -> bool:
    """Equal for the purpose of writing: the pod's resourceVersion does not count."""
    return bool(_strip_rv(a) == _strip_rv(b))


def _strip_rv(endpoint: Obj) -> Any:
    ref = endpoint.get("targetRef")
    if not ref or "resourceVersion" not in ref:
        return endpoint
    return {**endpoint, "targetRef": {k: v for k, v in ref.items() if k != "resourceVersion"}}
