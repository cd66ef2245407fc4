"""What field management knows about particular kinds, beyond their schemas.

* :data:`STRIPPED` — fields nobody ever owns (upstream's stripmeta):
  ``apiVersion``, ``kind``, ``metadata`` itself and the metadata the server sets.
* :func:`reset_fields` — fields a request cannot change, so it does not own
  them either (upstream's strategies' ``GetResetFields``): ``status`` through the
  main resource of a kind with a status subresource; ``spec`` (and for pods and
  deployments some metadata) through ``/status``.
* :func:`zero_object` — what upstream's empty Go object of a kind looks like.
  On create, upstream compares the new object with ``New()``, whose non-pointer
  structs (``spec``, ``spec.template``, ``spec.strategy``, a container's
  ``resources``…) and fields without ``omitempty`` are already there. Only
  containers that were absent get their own ``"."`` in the creator's set, so the
  skeleton decides which intermediate nodes upstream marks. The schemas do not
  say which Go fields are pointers; required fields, the ``metadata``/``spec``/
  ``status``/``template`` structs and the table below cover the built-in kinds.

No I/O here: this module is part of the bottom ``api`` layer.
"""

from __future__ import annotations

import functools
from typing import Any

from pilothouse.api import resources, schema
from pilothouse.api.fieldmanager import fieldpath, types

STRIPPED = fieldpath.Set.of(
    ("f:apiVersion",),
    ("f:kind",),
    ("f:metadata",),
    ("f:metadata", "f:name"),
    ("f:metadata", "f:namespace"),
    ("f:metadata", "f:creationTimestamp"),
    ("f:metadata", "f:selfLink"),
    ("f:metadata", "f:uid"),
    ("f:metadata", "f:clusterName"),
    ("f:metadata", "f:generation"),
    ("f:metadata", "f:managedFields"),
    ("f:metadata", "f:resourceVersion"),
)

_STATUS = fieldpath.Set.of(("f:status",))
_SPEC = fieldpath.Set.of(("f:spec",))
# Status strategies that reset more than spec (k8s.io/kubernetes pkg/registry).
_STATUS_RESETS: dict[tuple[str, str], fieldpath.Set] = {
    ("", "Pod"): fieldpath.Set.of(
        ("f:spec",),
        ("f:metadata", "f:deletionTimestamp"),
        ("f:metadata", "f:ownerReferences"),
    ),
    ("apps", "Deployment"): fieldpath.Set.of(("f:spec",), ("f:metadata", "f:labels")),
}


def has_status_subresource(group: str, version: str, kind: str) -> bool:
    """Whether a built-in kind serves ``/status`` (custom kinds: ask their definition)."""
    resource = resources.DEFAULT.by_kind(group, version, kind)
    return resource is not None and resource.has("status")


def reset_fields(
    group: str, kind: str, subresource: str, *, status_subresource: bool
) -> fieldpath.Set | None:
    """Fields a request through this endpoint does not own, or None."""
    if subresource == "status":
        return _STATUS_RESETS.get((group, kind), _SPEC)
    if subresource == "" and status_subresource:
        return _STATUS
    return None


# Optional struct-valued fields that are Go values, not pointers, so present in
# New(): (definition, property).
_VALUE_STRUCTS = frozenset(
    {
        ("io.k8s.api.apps.v1.DeploymentSpec", "strategy"),
        ("io.k8s.api.apps.v1.DaemonSetSpec", "updateStrategy"),
        ("io.k8s.api.apps.v1.StatefulSetSpec", "updateStrategy"),
        ("io.k8s.api.core.v1.Container", "resources"),
        ("io.k8s.api.core.v1.EphemeralContainer", "resources"),
        ("io.k8s.api.core.v1.PersistentVolumeClaimSpec", "resources"),
        ("io.k8s.api.core.v1.ServiceStatus", "loadBalancer"),
        ("io.k8s.api.core.v1.NodeStatus", "daemonEndpoints"),
        ("io.k8s.api.core.v1.NodeStatus", "nodeInfo"),
        ("io.k8s.api.core.v1.NodeDaemonEndpoints", "kubeletEndpoint"),
        ("io.k8s.api.core.v1.Event", "source"),
        ("io.k8s.api.core.v1.Event", "involvedObject"),
        ("io.k8s.api.batch.v1.CronJobSpec", "jobTemplate"),
    }
)
_VALUE_STRUCT_NAMES = frozenset({"metadata", "spec", "status", "template"})
_OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


def _is_struct(node: dict[str, Any]) -> bool:
    return types.json_type(node) == "object" and isinstance(node.get("properties"), dict)


def _zero(name: str, depth: int) -> dict[str, Any]:
    definition = schema.definitions().get(name) or {}
    out: dict[str, Any] = {}
    if name == _OBJECT_META:
        # metav1.Time is a struct, so New() carries creationTimestamp: null.
        out["creationTimestamp"] = None
        return out
    properties = definition.get("properties")
    if not isinstance(properties, dict) or depth > 12:
        return out
    required = set(definition.get("required") or ())
    for prop_name, prop in properties.items():
        if not isinstance(prop, dict):
            continue
        target_name = types.reference(prop)
        target = schema.definitions().get(target_name, {}) if target_name else prop
        struct = target_name is not None and _is_struct(target)
        if struct and (
            prop_name in required
            or prop_name in _VALUE_STRUCT_NAMES
            or (name, prop_name) in _VALUE_STRUCTS
        ):
            assert target_name is not None
            out[prop_name] = _zero(target_name, depth + 1)
        elif prop_name in required:
            out[prop_name] = None
    return out


@functools.cache
def _zero_for(group: str, version: str, kind: str) -> dict[str, Any]:
    name = schema.definition_name(group, version, kind)
    if name is None:
        return {}
    zero = _zero(name, 0)
    zero.pop("apiVersion", None)
    zero.pop("kind", None)
    return zero


def zero_object(group: str, version: str, kind: str) -> dict[str, Any]:
    """The shape of upstream's empty object of a kind (shared: do not change it)."""
    return _zero_for(group, version, kind)
