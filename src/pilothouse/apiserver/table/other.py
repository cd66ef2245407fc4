"""Tables of the remaining kinds with printers: Leases, EndpointSlices,
StorageClasses, PriorityClasses, PodDisruptionBudgets, ResourceQuotas and LimitRanges.

Ports of upstream's ``printLease``, ``printEndpointSlice``, ``printStorageClass``,
``printPriorityClass``, ``printPodDisruptionBudget``, ``printResourceQuota`` and
``printLimitRange``.
"""

from __future__ import annotations

from typing import Any

from pilothouse.apiserver.table import docs, formatting, timefmt
from pilothouse.apiserver.table.model import Cells, Object, Printer, column

_EMPTY: dict[str, Any] = {}
_NAME = column("Name", "string", docs.NAME, format_="name")
_AGE = column("Age", "string", docs.CREATION_TIMESTAMP)

_DEFAULT_CLASS_ANNOTATIONS = (
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
)

LEASE_COLUMNS = (_NAME, column("Holder", "string", docs.LEASE_HOLDER_IDENTITY), _AGE)


def lease_cells(lease: Object, now: float) -> Cells:
    meta = lease.get("metadata") or _EMPTY
    return [
        meta.get("name", ""),
        (lease.get("spec") or _EMPTY).get("holderIdentity") or "",
        timefmt.since(meta.get("creationTimestamp"), now),
    ]


ENDPOINTSLICE_COLUMNS = (
    _NAME,
    column("AddressType", "string", docs.ENDPOINTSLICE_ADDRESS_TYPE),
    column("Ports", "string", docs.ENDPOINTSLICE_PORTS),
    column("Endpoints", "string", docs.ENDPOINTSLICE_ENDPOINTS),
    _AGE,
)


def slice_ports(ports: list[dict[str, Any]], limit: int = 3) -> str:
    """``formatDiscoveryPorts``: port numbers (or names, or ``*``), at most three."""
    shown = []
    for port in ports[:limit]:
        number = port.get("port")
        if number is not None:
            shown.append(str(number))
        elif port.get("name") is not None:
            shown.append(str(port["name"]))
        else:
            shown.append("*")
    return formatting.list_with_more(shown, len(ports), limit)


def slice_endpoints(endpoints: list[dict[str, Any]], limit: int = 3) -> str:
    """``formatDiscoveryEndpoints``: the addresses of all endpoints, at most three."""
    shown: list[str] = []
    total = 0
    for endpoint in endpoints:
        addresses = endpoint.get("addresses") or ()
        total += len(addresses)
        for address in addresses:
            if len(shown) == limit:
                break
            shown.append(address)
    return formatting.list_with_more(shown, total, limit)


def endpointslice_cells(endpoint_slice: Object, now: float) -> Cells:
    meta = endpoint_slice.get("metadata") or _EMPTY
    return [
        meta.get("name", ""),
        endpoint_slice.get("addressType", ""),
        slice_ports(endpoint_slice.get("ports") or []),
        slice_endpoints(endpoint_slice.get("endpoints") or []),
        timefmt.since(meta.get("creationTimestamp"), now),
    ]


STORAGECLASS_COLUMNS = (
    _NAME,
    column("Provisioner", "string", docs.STORAGECLASS_PROVISIONER),
    column("ReclaimPolicy", "string", docs.STORAGECLASS_RECLAIM_POLICY),
    column("VolumeBindingMode", "string", docs.STORAGECLASS_VOLUME_BINDING_MODE),
    column("AllowVolumeExpansion", "string", docs.STORAGECLASS_ALLOW_VOLUME_EXPANSION),
    _AGE,
)


def storageclass_cells(storage_class: Object, now: float) -> Cells:
    meta = storage_class.get("metadata") or _EMPTY
    annotations = meta.get("annotations") or _EMPTY
    name = meta.get("name", "")
    if any(annotations.get(key) == "true" for key in _DEFAULT_CLASS_ANNOTATIONS):
        name += " (default)"
    return [
        name,
        storage_class.get("provisioner", ""),
        storage_class.get("reclaimPolicy") or "Delete",
        storage_class.get("volumeBindingMode") or "Immediate",
        bool(storage_class.get("allowVolumeExpansion")),
        timefmt.since(meta.get("creationTimestamp"), now),
    ]


PRIORITYCLASS_COLUMNS = (
    _NAME,
    column("Value", "integer", docs.PRIORITYCLASS_VALUE),
    column("Global-Default", "boolean", docs.PRIORITYCLASS_GLOBAL_DEFAULT),
    _AGE,
    column("PreemptionPolicy", "string", docs.PRIORITYCLASS_PREEMPTION_POLICY),
)


def priorityclass_cells(priority_class: Object, now: float) -> Cells:
    meta = priority_class.get("metadata") or _EMPTY
    return [
        meta.get("name", ""),
        priority_class.get("value") or 0,
        bool(priority_class.get("globalDefault")),
        timefmt.since(meta.get("creationTimestamp"), now),
        priority_class.get("preemptionPolicy") or "",
    ]


PDB_COLUMNS = (
    _NAME,
    column("Min Available", "string", "The minimum number of pods that must be available."),
    column("Max Unavailable", "string", "The maximum number of pods that may be unavailable."),
    column(
        "Allowed Disruptions",
        "integer",
        "Calculated number of pods that may be disrupted at this time.",
    ),
    _AGE,
)


def pdb_cells(budget: Object, now: float) -> Cells:
    meta = budget.get("metadata") or _EMPTY
    spec = budget.get("spec") or _EMPTY
    min_available = spec.get("minAvailable")
    max_unavailable = spec.get("maxUnavailable")
    return [
        meta.get("name", ""),
        "N/A" if min_available is None else formatting.int_or_string(min_available),
        "N/A" if max_unavailable is None else formatting.int_or_string(max_unavailable),
        (budget.get("status") or _EMPTY).get("disruptionsAllowed") or 0,
        timefmt.since(meta.get("creationTimestamp"), now),
    ]


RESOURCEQUOTA_COLUMNS = (
    _NAME,
    _AGE,
    column(
        "Request",
        "string",
        "Request represents a minimum amount of cpu/memory that a container may consume.",
    ),
    column(
        "Limit",
        "string",
        "Limits control the maximum amount of cpu/memory that a container may use independent "
        "of contention on the node.",
    ),
)


def resourcequota_cells(quota: Object, now: float) -> Cells:
    """``cpu: 100m/1, pods: 2/2`` under REQUEST; ``limits.*`` under LIMIT."""
    meta = quota.get("metadata") or _EMPTY
    status = quota.get("status") or _EMPTY
    used, hard = status.get("used") or _EMPTY, status.get("hard") or _EMPTY
    request: list[str] = []
    limit: list[str] = []
    for name in sorted((quota.get("spec") or _EMPTY).get("hard") or _EMPTY):
        pieces = name.split(".")
        into = limit if len(pieces) > 1 and pieces[0] == "limits" else request
        into.append(f"{name}: {used.get(name, '0')}/{hard.get(name, '0')}")
    return [
        meta.get("name", ""),
        timefmt.since(meta.get("creationTimestamp"), now),
        ", ".join(request),
        ", ".join(limit),
    ]


LIMITRANGE_COLUMNS = (_NAME, column("Created At", "date", docs.CREATION_TIMESTAMP))


def limitrange_cells(limit_range: Object, now: float) -> Cells:
    meta = limit_range.get("metadata") or _EMPTY
    return [meta.get("name", ""), meta.get("creationTimestamp") or "0001-01-01T00:00:00Z"]


PRINTERS = {
    ("coordination.k8s.io", "Lease"): Printer(LEASE_COLUMNS, lease_cells),
    ("discovery.k8s.io", "EndpointSlice"): Printer(ENDPOINTSLICE_COLUMNS, endpointslice_cells),
    ("storage.k8s.io", "StorageClass"): Printer(STORAGECLASS_COLUMNS, storageclass_cells),
    ("scheduling.k8s.io", "PriorityClass"): Printer(PRIORITYCLASS_COLUMNS, priorityclass_cells),
    ("policy", "PodDisruptionBudget"): Printer(PDB_COLUMNS, pdb_cells),
    ("", "ResourceQuota"): Printer(RESOURCEQUOTA_COLUMNS, resourcequota_cells),
    ("", "LimitRange"): Printer(LIMITRANGE_COLUMNS, limitrange_cells),
}
