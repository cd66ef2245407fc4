"""Tables of the workload kinds: apps/v1 Deployments, ReplicaSets, StatefulSets,
DaemonSets and ControllerRevisions, and core/v1 ReplicationControllers (a
ReplicaSet's table with a label-map selector).

Ports of upstream's ``printDeployment``, ``printReplicaSet``, ``printStatefulSet``,
``printDaemonSet``, ``printControllerRevision`` and ``printReplicationController``.
``spec.replicas`` defaults to 1, as the API's defaulting would have set it.
"""

from __future__ import annotations

from typing import Any

from pilothouse.apiserver.table import docs, formatting, timefmt
from pilothouse.apiserver.table.model import Cells, Object, Printer, column

_EMPTY: dict[str, Any] = {}
_NAME = column("Name", "string", docs.NAME, format_="name")
_AGE = column("Age", "string", docs.CREATION_TIMESTAMP)
_CONTAINERS = column("Containers", "string", "Names of each container in the template.", priority=1)
_IMAGES = column(
    "Images", "string", "Images referenced by each container in the template.", priority=1
)


def _replicas(spec: dict[str, Any]) -> int:
    replicas = spec.get("replicas")
    return 1 if replicas is None else int(replicas)


def _template_containers(spec: dict[str, Any]) -> tuple[str, str]:
    template_spec = (spec.get("template") or _EMPTY).get("spec") or _EMPTY
    return formatting.container_cells(template_spec.get("containers"))


DEPLOYMENT_COLUMNS = (
    _NAME,
    column("Ready", "string", "Number of the pod with ready state"),
    column("Up-to-date", "string", docs.DEPLOYMENT_UPDATED_REPLICAS),
    column("Available", "string", docs.DEPLOYMENT_AVAILABLE_REPLICAS),
    _AGE,
    _CONTAINERS,
    _IMAGES,
    column("Selector", "string", docs.DEPLOYMENT_SELECTOR, priority=1),
)


def deployment_cells(deployment: Object, now: float) -> Cells:
    meta = deployment.get("metadata") or _EMPTY
    spec = deployment.get("spec") or _EMPTY
    status = deployment.get("status") or _EMPTY
    try:
        selector = formatting.selector_string(spec.get("selector"))
    except formatting.SelectorError:
        selector = "<invalid>"
    names, images = _template_containers(spec)
    return [
        meta.get("name", ""),
        f"{status.get('readyReplicas') or 0}/{_replicas(spec)}",
        status.get("updatedReplicas") or 0,
        status.get("availableReplicas") or 0,
        timefmt.since(meta.get("creationTimestamp"), now),
        names,
        images,
        selector,
    ]


REPLICASET_COLUMNS = (
    _NAME,
    column("Desired", "integer", docs.REPLICASET_SPEC_REPLICAS),
    column("Current", "integer", docs.REPLICASET_STATUS_REPLICAS),
    column("Ready", "integer", docs.REPLICASET_READY_REPLICAS),
    _AGE,
    _CONTAINERS,
    _IMAGES,
    column("Selector", "string", docs.REPLICASET_SELECTOR, priority=1),
)


def replicaset_cells(replicaset: Object, now: float) -> Cells:
    meta = replicaset.get("metadata") or _EMPTY
    spec = replicaset.get("spec") or _EMPTY
    status = replicaset.get("status") or _EMPTY
    names, images = _template_containers(spec)
    return [
        meta.get("name", ""),
        _replicas(spec),
        status.get("replicas") or 0,
        status.get("readyReplicas") or 0,
        timefmt.since(meta.get("creationTimestamp"), now),
        names,
        images,
        formatting.format_label_selector(spec.get("selector")),
    ]


REPLICATION_CONTROLLER_COLUMNS = (
    _NAME,
    column("Desired", "integer", docs.RC_SPEC_REPLICAS),
    column("Current", "integer", docs.RC_STATUS_REPLICAS),
    column("Ready", "integer", docs.RC_READY_REPLICAS),
    _AGE,
    _CONTAINERS,
    _IMAGES,
    column("Selector", "string", docs.RC_SELECTOR, priority=1),
)


def replication_controller_cells(rc: Object, now: float) -> Cells:
    meta = rc.get("metadata") or _EMPTY
    spec = rc.get("spec") or _EMPTY
    status = rc.get("status") or _EMPTY
    names, images = _template_containers(spec)
    return [
        meta.get("name", ""),
        _replicas(spec),
        status.get("replicas") or 0,
        status.get("readyReplicas") or 0,
        timefmt.since(meta.get("creationTimestamp"), now),
        names,
        images,
        formatting.format_labels(spec.get("selector")),
    ]


STATEFULSET_COLUMNS = (
    _NAME,
    column("Ready", "string", "Number of the pod with ready state"),
    _AGE,
    _CONTAINERS,
    _IMAGES,
)


def statefulset_cells(statefulset: Object, now: float) -> Cells:
    meta = statefulset.get("metadata") or _EMPTY
    spec = statefulset.get("spec") or _EMPTY
    status = statefulset.get("status") or _EMPTY
    names, images = _template_containers(spec)
    return [
        meta.get("name", ""),
        f"{status.get('readyReplicas') or 0}/{_replicas(spec)}",
        timefmt.since(meta.get("creationTimestamp"), now),
        names,
        images,
    ]


DAEMONSET_COLUMNS = (
    _NAME,
    column("Desired", "integer", docs.DAEMONSET_DESIRED),
    column("Current", "integer", docs.DAEMONSET_CURRENT),
    column("Ready", "integer", docs.DAEMONSET_READY),
    column("Up-to-date", "integer", docs.DAEMONSET_UPDATED),
    column("Available", "integer", docs.DAEMONSET_AVAILABLE),
    column("Node Selector", "string", docs.POD_NODE_SELECTOR),
    _AGE,
    _CONTAINERS,
    _IMAGES,
    column("Selector", "string", docs.DAEMONSET_SELECTOR, priority=1),
)


def daemonset_cells(daemonset: Object, now: float) -> Cells:
    meta = daemonset.get("metadata") or _EMPTY
    spec = daemonset.get("spec") or _EMPTY
    status = daemonset.get("status") or _EMPTY
    template_spec = (spec.get("template") or _EMPTY).get("spec") or _EMPTY
    names, images = formatting.container_cells(template_spec.get("containers"))
    return [
        meta.get("name", ""),
        status.get("desiredNumberScheduled") or 0,
        status.get("currentNumberScheduled") or 0,
        status.get("numberReady") or 0,
        status.get("updatedNumberScheduled") or 0,
        status.get("numberAvailable") or 0,
        formatting.format_labels(template_spec.get("nodeSelector")),
        timefmt.since(meta.get("creationTimestamp"), now),
        names,
        images,
        formatting.format_label_selector(spec.get("selector")),
    ]


CONTROLLER_REVISION_COLUMNS = (
    _NAME,
    column("Controller", "string", "Controller of the object"),
    column("Revision", "string", docs.CONTROLLER_REVISION_REVISION),
    _AGE,
)


def controller_name(meta: dict[str, Any]) -> str:
    """``kind.group/name`` of the controlling owner, lower-cased kind and group."""
    for ref in meta.get("ownerReferences") or ():
        if ref.get("controller") is True:
            api_version = ref.get("apiVersion") or ""
            group = api_version.split("/", 1)[0] if "/" in api_version else ""
            kind = ref.get("kind") or ""
            name = ref.get("name") or ""
            group_kind = f"{kind}.{group}" if group else kind
            if not group_kind:
                return name
            return f"{group_kind.lower()}/{name}"
    return "<none>"


def controller_revision_cells(revision: Object, now: float) -> Cells:
    meta = revision.get("metadata") or _EMPTY
    return [
        meta.get("name", ""),
        controller_name(meta),
        revision.get("revision") or 0,
        timefmt.since(meta.get("creationTimestamp"), now),
    ]


PRINTERS = {
    ("apps", "Deployment"): Printer(DEPLOYMENT_COLUMNS, deployment_cells),
    ("apps", "ReplicaSet"): Printer(REPLICASET_COLUMNS, replicaset_cells),
    ("apps", "StatefulSet"): Printer(STATEFULSET_COLUMNS, statefulset_cells),
    ("apps", "DaemonSet"): Printer(DAEMONSET_COLUMNS, daemonset_cells),
    ("apps", "ControllerRevision"): Printer(CONTROLLER_REVISION_COLUMNS, controller_revision_cells),
    ("", "ReplicationController"): Printer(
        REPLICATION_CONTROLLER_COLUMNS, replication_controller_cells
    ),
}
