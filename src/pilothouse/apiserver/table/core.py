"""Tables of the core/v1 kinds other than Pods and Events.

Ports of upstream's ``printNode``, ``printService``, ``printEndpoints``,
``printNamespace``, ``printSecret``, ``printConfigMap``, ``printServiceAccount``,
``printPersistentVolume`` and ``printPersistentVolumeClaim``.
"""

from __future__ import annotations

from typing import Any

from pilothouse.api import quantity
from pilothouse.apiserver.table import docs, formatting, timefmt
from pilothouse.apiserver.table.model import Cells, Object, Printer, column

_EMPTY: dict[str, Any] = {}
_NAME = column("Name", "string", docs.NAME, format_="name")
_AGE = column("Age", "string", docs.CREATION_TIMESTAMP)

_ROLE_PREFIX = "node-role.kubernetes.io/"
_ROLE_LABEL = "kubernetes.io/role"
_STORAGE_CLASS_ANNOTATION = "volume.beta.kubernetes.io/storage-class"
# An LB status wider than this is clipped unless printing wide; the server
# always prints wide, so the clipping never reaches the client.
_LB_WIDTH = 16


# -- Node ---------------------------------------------------------------------

NODE_COLUMNS = (
    _NAME,
    column("Status", "string", "The status of the node"),
    column("Roles", "string", "The roles of the node"),
    _AGE,
    column("Version", "string", docs.NODE_KUBELET_VERSION),
    column("Internal-IP", "string", docs.NODE_ADDRESSES, priority=1),
    column("External-IP", "string", docs.NODE_ADDRESSES, priority=1),
    column("OS-Image", "string", docs.NODE_OS_IMAGE, priority=1),
    column("Kernel-Version", "string", docs.NODE_KERNEL_VERSION, priority=1),
    column("Container-Runtime", "string", docs.NODE_CONTAINER_RUNTIME_VERSION, priority=1),
)


def _node_roles(labels: dict[str, str]) -> str:
    roles = set()
    for key, value in labels.items():
        if key.startswith(_ROLE_PREFIX):
            role = key[len(_ROLE_PREFIX) :]
            if role:
                roles.add(role)
        elif key == _ROLE_LABEL and value:
            roles.add(value)
    return ",".join(sorted(roles)) or "<none>"


def _node_address(addresses: list[dict[str, Any]], type_: str) -> str:
    for address in addresses:
        if address.get("type") == type_:
            return str(address.get("address", ""))
    return "<none>"


def node_cells(node: Object, now: float) -> Cells:
    meta = node.get("metadata") or _EMPTY
    status = node.get("status") or _EMPTY
    # Only the Ready condition shows; the last one of that type wins, as in
    # upstream's condition map.
    ready = None
    for condition in status.get("conditions") or ():
        if condition.get("type") == "Ready":
            ready = condition
    if ready is None:
        parts = ["Unknown"]
    else:
        parts = ["Ready" if ready.get("status") == "True" else "NotReady"]
    if (node.get("spec") or _EMPTY).get("unschedulable"):
        parts.append("SchedulingDisabled")
    info = status.get("nodeInfo") or _EMPTY
    addresses = status.get("addresses") or []
    return [
        meta.get("name", ""),
        ",".join(parts),
        _node_roles(meta.get("labels") or _EMPTY),
        timefmt.since(meta.get("creationTimestamp"), now),
        info.get("kubeletVersion", ""),
        _node_address(addresses, "InternalIP"),
        _node_address(addresses, "ExternalIP"),
        info.get("osImage") or "<unknown>",
        info.get("kernelVersion") or "<unknown>",
        info.get("containerRuntimeVersion") or "<unknown>",
    ]


# -- Service ------------------------------------------------------------------

SERVICE_COLUMNS = (
    _NAME,
    column("Type", "string", docs.SERVICE_TYPE),
    column("Cluster-IP", "string", docs.SERVICE_CLUSTER_IP),
    column("External-IP", "string", docs.SERVICE_EXTERNAL_IPS),
    column("Port(s)", "string", docs.SERVICE_PORTS),
    _AGE,
    column("Selector", "string", docs.SERVICE_SELECTOR, priority=1),
)


def _load_balancer_addresses(service: Object) -> str:
    """``loadBalancerStatusStringer`` (wide): the sorted set of ingress IPs or names."""
    ingress = (((service.get("status") or _EMPTY).get("loadBalancer")) or _EMPTY).get("ingress")
    found = set()
    for entry in ingress or ():
        address = entry.get("ip") or entry.get("hostname")
        if address:
            found.add(address)
    return ",".join(sorted(found))


def service_external_ip(service: Object) -> str:
    """``getServiceExternalIP``: what EXTERNAL-IP shows for each service type."""
    spec = service.get("spec") or _EMPTY
    external_ips = spec.get("externalIPs") or []
    type_ = spec.get("type")
    if type_ in ("ClusterIP", "NodePort"):
        return ",".join(external_ips) if external_ips else "<none>"
    if type_ == "LoadBalancer":
        lb = _load_balancer_addresses(service)
        if external_ips:
            return ",".join((lb.split(",") if lb else []) + list(external_ips))
        return lb or "<pending>"
    if type_ == "ExternalName":
        return str(spec.get("externalName", ""))
    return "<unknown>"


def service_ports(ports: list[dict[str, Any]]) -> str:
    """``makePortString``: ``80/TCP,443:30443/TCP``, or ``<none>``."""
    pieces = []
    for port in ports:
        protocol = port.get("protocol", "")
        node_port = port.get("nodePort") or 0
        if node_port > 0:
            pieces.append(f"{port.get('port', 0)}:{node_port}/{protocol}")
        else:
            pieces.append(f"{port.get('port', 0)}/{protocol}")
    return ",".join(pieces) or "<none>"


def service_cells(service: Object, now: float) -> Cells:
    meta = service.get("metadata") or _EMPTY
    spec = service.get("spec") or _EMPTY
    # Conversion from v1 fills clusterIPs from clusterIP when only that is set.
    cluster_ips = spec.get("clusterIPs")
    cluster_ip = (cluster_ips[0] if cluster_ips else spec.get("clusterIP")) or "<none>"
    return [
        meta.get("name", ""),
        spec.get("type", ""),
        cluster_ip,
        service_external_ip(service),
        service_ports(spec.get("ports") or []),
        timefmt.since(meta.get("creationTimestamp"), now),
        formatting.format_labels(spec.get("selector")),
    ]


# -- Endpoints ----------------------------------------------------------------

ENDPOINTS_COLUMNS = (
    _NAME,
    column("Endpoints", "string", docs.ENDPOINTS_SUBSETS),
    _AGE,
)


def format_endpoints(subsets: list[dict[str, Any]], limit: int = 3) -> str:
    """``formatEndpoints``: ``10.0.0.1:80,10.0.0.2:80 + 3 more...``, or ``<none>``."""
    if not subsets:
        return "<none>"
    shown: list[str] = []
    total = 0
    for subset in subsets:
        addresses = subset.get("addresses") or []
        ports = subset.get("ports") or []
        if not ports:  # headless services may have no ports
            total += len(addresses)
            for address in addresses:
                if len(shown) == limit:
                    break
                shown.append(address.get("ip", ""))
            continue
        for port in ports:
            total += len(addresses)
            for address in addresses:
                if len(shown) == limit:
                    break
                shown.append(formatting.join_host_port(address.get("ip", ""), port.get("port", 0)))
    text = ",".join(shown)
    if total > limit:
        return f"{text} + {total - limit} more..."
    return text


def endpoints_cells(endpoints: Object, now: float) -> Cells:
    meta = endpoints.get("metadata") or _EMPTY
    return [
        meta.get("name", ""),
        format_endpoints(endpoints.get("subsets") or []),
        timefmt.since(meta.get("creationTimestamp"), now),
    ]


# -- Namespace, Secret, ConfigMap, ServiceAccount -------------------------------

NAMESPACE_COLUMNS = (_NAME, column("Status", "string", "The status of the namespace"), _AGE)
SECRET_COLUMNS = (
    _NAME,
    column("Type", "string", docs.SECRET_TYPE),
    column("Data", "string", docs.SECRET_DATA),
    _AGE,
)
CONFIGMAP_COLUMNS = (_NAME, column("Data", "string", docs.CONFIGMAP_DATA), _AGE)
SERVICE_ACCOUNT_COLUMNS = (
    _NAME,
    column("Secrets", "string", docs.SERVICE_ACCOUNT_SECRETS),
    _AGE,
)


def namespace_cells(namespace: Object, now: float) -> Cells:
    meta = namespace.get("metadata") or _EMPTY
    return [
        meta.get("name", ""),
        (namespace.get("status") or _EMPTY).get("phase", ""),
        timefmt.since(meta.get("creationTimestamp"), now),
    ]


def secret_cells(secret: Object, now: float) -> Cells:
    meta = secret.get("metadata") or _EMPTY
    data = secret.get("data") or _EMPTY
    string_data = secret.get("stringData")
    # stringData is merged into data on write; count the union if it lingers.
    keys = len(data.keys() | string_data.keys()) if string_data else len(data)
    return [
        meta.get("name", ""),
        secret.get("type", ""),
        keys,
        timefmt.since(meta.get("creationTimestamp"), now),
    ]


def configmap_cells(configmap: Object, now: float) -> Cells:
    meta = configmap.get("metadata") or _EMPTY
    return [
        meta.get("name", ""),
        len(configmap.get("data") or ()) + len(configmap.get("binaryData") or ()),
        timefmt.since(meta.get("creationTimestamp"), now),
    ]


def service_account_cells(account: Object, now: float) -> Cells:
    meta = account.get("metadata") or _EMPTY
    return [
        meta.get("name", ""),
        len(account.get("secrets") or ()),
        timefmt.since(meta.get("creationTimestamp"), now),
    ]


# -- PersistentVolume, PersistentVolumeClaim -----------------------------------

PV_COLUMNS = (
    _NAME,
    column("Capacity", "string", docs.PV_CAPACITY),
    column("Access Modes", "string", docs.PV_ACCESS_MODES),
    column("Reclaim Policy", "string", docs.PV_RECLAIM_POLICY),
    column("Status", "string", docs.PV_PHASE),
    column("Claim", "string", docs.PV_CLAIM_REF),
    column("StorageClass", "string", "StorageClass of the pv"),
    column("VolumeAttributesClass", "string", "VolumeAttributesClass of the pv"),
    column("Reason", "string", docs.PV_REASON),
    _AGE,
    column("VolumeMode", "string", docs.PV_VOLUME_MODE, priority=1),
)
PVC_COLUMNS = (
    _NAME,
    column("Status", "string", docs.PVC_PHASE),
    column("Volume", "string", docs.PVC_VOLUME_NAME),
    column("Capacity", "string", docs.PVC_CAPACITY),
    column("Access Modes", "string", docs.PVC_ACCESS_MODES),
    column("StorageClass", "string", "StorageClass of the pvc"),
    column("VolumeAttributesClass", "string", "VolumeAttributesClass of the pvc"),
    _AGE,
    column("VolumeMode", "string", docs.PVC_VOLUME_MODE, priority=1),
)

_ACCESS_MODES = (
    ("ReadWriteOnce", "RWO"),
    ("ReadOnlyMany", "ROX"),
    ("ReadWriteMany", "RWX"),
    ("ReadWriteOncePod", "RWOP"),
)


def access_modes(modes: list[str] | None) -> str:
    """``GetAccessModesAsString``: always in the order RWO,ROX,RWX,RWOP."""
    if not modes:
        return ""
    return ",".join(short for mode, short in _ACCESS_MODES if mode in modes)


def _storage(resources: dict[str, Any] | None) -> str:
    """``Quantity.String()`` of the ``storage`` entry; a missing one is the zero ``0``."""
    value = (resources or _EMPTY).get("storage")
    if value is None:
        return "0"
    try:
        return quantity.canonicalize(value)
    except quantity.QuantityError:
        return str(value)  # not a quantity upstream would have stored; show it as is


def pv_cells(volume: Object, now: float) -> Cells:
    meta = volume.get("metadata") or _EMPTY
    spec = volume.get("spec") or _EMPTY
    status = volume.get("status") or _EMPTY
    claim = spec.get("claimRef")
    claim_text = f"{claim.get('namespace', '')}/{claim.get('name', '')}" if claim else ""
    phase = "Terminating" if meta.get("deletionTimestamp") is not None else status.get("phase", "")
    annotations = meta.get("annotations") or _EMPTY
    if _STORAGE_CLASS_ANNOTATION in annotations:
        storage_class = annotations[_STORAGE_CLASS_ANNOTATION]
    else:
        storage_class = spec.get("storageClassName", "")
    attributes_class = spec.get("volumeAttributesClassName")
    volume_mode = spec.get("volumeMode")
    return [
        meta.get("name", ""),
        _storage(spec.get("capacity")),
        access_modes(spec.get("accessModes")),
        spec.get("persistentVolumeReclaimPolicy", ""),
        phase,
        claim_text,
        storage_class,
        formatting.UNSET if attributes_class is None else attributes_class,
        status.get("reason", ""),
        timefmt.since(meta.get("creationTimestamp"), now),
        formatting.UNSET if volume_mode is None else volume_mode,
    ]


def pvc_cells(claim: Object, now: float) -> Cells:
    meta = claim.get("metadata") or _EMPTY
    spec = claim.get("spec") or _EMPTY
    status = claim.get("status") or _EMPTY
    phase = "Terminating" if meta.get("deletionTimestamp") is not None else status.get("phase", "")
    volume_name = spec.get("volumeName", "")
    capacity = ""
    modes = ""
    if volume_name:
        modes = access_modes(status.get("accessModes"))
        capacity = _storage(status.get("capacity"))
    annotations = meta.get("annotations") or _EMPTY
    if _STORAGE_CLASS_ANNOTATION in annotations:
        storage_class = annotations[_STORAGE_CLASS_ANNOTATION]
    else:
        storage_class = spec.get("storageClassName") or ""
    attributes_class = spec.get("volumeAttributesClassName")
    volume_mode = spec.get("volumeMode")
    return [
        meta.get("name", ""),
        phase,
        volume_name,
        capacity,
        modes,
        storage_class,
        formatting.UNSET if attributes_class is None else attributes_class,
        timefmt.since(meta.get("creationTimestamp"), now),
        formatting.UNSET if volume_mode is None else volume_mode,
    ]


PRINTERS = {
    ("", "Node"): Printer(NODE_COLUMNS, node_cells),
    ("", "Service"): Printer(SERVICE_COLUMNS, service_cells),
    ("", "Endpoints"): Printer(ENDPOINTS_COLUMNS, endpoints_cells),
    ("", "Namespace"): Printer(NAMESPACE_COLUMNS, namespace_cells),
    ("", "Secret"): Printer(SECRET_COLUMNS, secret_cells),
    ("", "ConfigMap"): Printer(CONFIGMAP_COLUMNS, configmap_cells),
    ("", "ServiceAccount"): Printer(SERVICE_ACCOUNT_COLUMNS, service_account_cells),
    ("", "PersistentVolume"): Printer(PV_COLUMNS, pv_cells),
    ("", "PersistentVolumeClaim"): Printer(PVC_COLUMNS, pvc_cells),
}
