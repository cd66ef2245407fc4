"""Which fields each kind offers to field selectors, and which a request may name.

Two upstream tables, kept apart as upstream keeps them:

* the *selectable fields* of an object (``pkg/registry/<group>/<kind>/strategy.go``,
  ``ToSelectableFields`` / ``GetAttrs``): :func:`object_fields`. Field names are
  the stored (internal) ones, e.g. ``involvedObject.kind`` even for
  ``events.k8s.io`` Events, whose wire form says ``regarding``;
* the *field label conversions* of a group-version-kind
  (``pkg/apis/<group>/<version>/conversion.go``, ``AddFieldLabelConversionFunc``):
  :func:`convert_field_selector` accepts a request's labels, maps aliases
  (``spec.host`` → ``spec.nodeName``, ``regarding.kind`` →
  ``involvedObject.kind``) and rejects the rest with upstream's message. Kinds
  without a conversion accept only ``metadata.name`` and ``metadata.namespace``
  (``runtime.DefaultMetaV1FieldSelectorConversion``).

So a request is handled as upstream does: parse, :func:`convert_field_selector`
(both failures are 400 BadRequest), then ``selector.matches(object_fields(...))``.

Kubernetes 1.32 is the target: ``status.podIPs`` (added to Pods later) is not
accepted; Service's ``spec.clusterIP`` and ``spec.type`` (1.31) are. The legacy
internal field ``name`` of Namespaces and persistent volumes (claims) is left
out, since no v1 conversion lets a request reach it.

No I/O here: this module is part of the bottom ``api`` layer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pilothouse.api import gostrings
from pilothouse.api.selectors import fields as _fields
from pilothouse.api.selectors.error import SelectorError

NAME = "metadata.name"
NAMESPACE = "metadata.namespace"


def _get(obj: Mapping[str, Any], *path: str) -> Any:
    node: Any = obj
    for part in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def _text(value: Any) -> str:
    """A field's value as upstream prints it into a ``fields.Set``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _count(value: Any) -> str:
    # int32 counters print as Go's strconv.Itoa, a missing one as 0.
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else "0"


def _pod_fields(pod: Mapping[str, Any]) -> dict[str, str]:
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    # The internal pod keeps podIPs only; v1's podIP is podIPs[0] (or, from an
    # old client, the only address given).
    pod_ips = status.get("podIPs") or []
    pod_ip = (
        pod_ips[0].get("ip", "")
        if pod_ips and isinstance(pod_ips[0], Mapping)
        else status.get("podIP")
    )
    return {
        "spec.nodeName": _text(spec.get("nodeName")),
        "spec.restartPolicy": _text(spec.get("restartPolicy")),
        "spec.schedulerName": _text(spec.get("schedulerName")),
        # serviceAccount is v1's deprecated alias, used when the name is empty.
        "spec.serviceAccountName": _text(
            spec.get("serviceAccountName") or spec.get("serviceAccount")
        ),
        "spec.hostNetwork": _text(bool(spec.get("hostNetwork"))),
        "status.phase": _text(status.get("phase")),
        "status.podIP": _text(pod_ip),
        "status.nominatedNodeName": _text(status.get("nominatedNodeName")),
    }


def _core_event_fields(event: Mapping[str, Any]) -> dict[str, str]:
    involved = event.get("involvedObject") or {}
    reporting = _text(event.get("reportingComponent"))
    return {
        **{f"involvedObject.{k}": _text(involved.get(k)) for k in _INVOLVED_OBJECT_KEYS},
        "reason": _text(event.get("reason")),
        "reportingComponent": reporting,
        "source": _text(_get(event, "source", "component")) or reporting,
        "type": _text(event.get("type")),
    }


def _events_k8s_io_event_fields(event: Mapping[str, Any]) -> dict[str, str]:
    # The same stored Event, in events.k8s.io's shape (regarding, reportingController,
    # deprecatedSource); the selectable names stay core's.
    regarding = event.get("regarding") or {}
    reporting = _text(event.get("reportingController"))
    return {
        **{f"involvedObject.{k}": _text(regarding.get(k)) for k in _INVOLVED_OBJECT_KEYS},
        "reason": _text(event.get("reason")),
        "reportingComponent": reporting,
        "source": _text(_get(event, "deprecatedSource", "component")) or reporting,
        "type": _text(event.get("type")),
    }


_INVOLVED_OBJECT_KEYS = (
    "kind",
    "namespace",
    "name",
    "uid",
    "apiVersion",
    "resourceVersion",
    "fieldPath",
)

_KIND_FIELDS: dict[tuple[str, str], Callable[[Mapping[str, Any]], dict[str, str]]] = {
    ("", "Pod"): _pod_fields,
    ("", "Node"): lambda o: {"spec.unschedulable": _text(bool(_get(o, "spec", "unschedulable")))},
    ("", "Namespace"): lambda o: {"status.phase": _text(_get(o, "status", "phase"))},
    ("", "Event"): _core_event_fields,
    ("events.k8s.io", "Event"): _events_k8s_io_event_fields,
    ("", "Secret"): lambda o: {"type": _text(o.get("type"))},
    ("", "Service"): lambda o: {
        "spec.clusterIP": _text(_get(o, "spec", "clusterIP")),
        "spec.type": _text(_get(o, "spec", "type")),
    },
    ("", "ReplicationController"): lambda o: {
        "status.replicas": _count(_get(o, "status", "replicas"))
    },
    ("apps", "ReplicaSet"): lambda o: {"status.replicas": _count(_get(o, "status", "replicas"))},
    ("batch", "Job"): lambda o: {"status.successful": _count(_get(o, "status", "succeeded"))},
    ("certificates.k8s.io", "CertificateSigningRequest"): lambda o: {
        "spec.signerName": _text(_get(o, "spec", "signerName"))
    },
}


def object_fields(group: str, kind: str, obj: Mapping[str, Any]) -> dict[str, str]:
    """The selectable fields of ``obj`` (a ``group`` ``kind`` in its wire shape).

    Every kind has ``metadata.name`` and ``metadata.namespace`` (``""`` when
    cluster-scoped, which selects the same as upstream leaving it out).
    """
    meta = obj.get("metadata") or {}
    out = {NAME: _text(meta.get("name")), NAMESPACE: _text(meta.get("namespace"))}
    extract = _KIND_FIELDS.get((group, kind))
    if extract is not None:
        out.update(extract(obj))
    return out


# --- what a request may name ----------------------------------------------

# A conversion: accepted labels (mapped to their stored name) and the message
# for the rest, with {label} (as %s) or {quoted} (as %q) in it.
_Conversion = tuple[dict[str, str], str]


def _same(*labels: str) -> dict[str, str]:
    return {label: label for label in labels}


_NOT_SUPPORTED = "field label not supported: {label}"

_CONVERSIONS: dict[tuple[str, str, str], _Conversion] = {
    ("", "v1", "Pod"): (
        {
            **_same(
                NAME,
                NAMESPACE,
                "spec.nodeName",
                "spec.restartPolicy",
                "spec.schedulerName",
                "spec.serviceAccountName",
                "spec.hostNetwork",
                "status.phase",
                "status.podIP",
                "status.nominatedNodeName",
            ),
            # Old v1 clients say spec.host.
            "spec.host": "spec.nodeName",
        },
        _NOT_SUPPORTED,
    ),
    ("", "v1", "Node"): (_same(NAME, "spec.unschedulable"), _NOT_SUPPORTED),
    ("", "v1", "ReplicationController"): (
        _same(NAME, NAMESPACE, "status.replicas"),
        _NOT_SUPPORTED,
    ),
    ("", "v1", "Event"): (
        _same(
            *(f"involvedObject.{k}" for k in _INVOLVED_OBJECT_KEYS),
            "reason",
            "reportingComponent",
            "source",
            "type",
            NAMESPACE,
            NAME,
        ),
        _NOT_SUPPORTED,
    ),
    ("", "v1", "Namespace"): (_same("status.phase", NAME), _NOT_SUPPORTED),
    ("", "v1", "Secret"): (_same("type", NAMESPACE, NAME), _NOT_SUPPORTED),
    ("", "v1", "Service"): (_same(NAMESPACE, NAME, "spec.clusterIP", "spec.type"), _NOT_SUPPORTED),
    ("batch", "v1", "Job"): (
        _same(NAME, NAMESPACE, "status.successful"),
        "field label {quoted} not supported for batchv1.Job",
    ),
    ("events.k8s.io", "v1", "Event"): (
        {
            "reason": "reason",
            **{f"regarding.{k}": f"involvedObject.{k}" for k in _INVOLVED_OBJECT_KEYS},
            "reportingController": "reportingComponent",
            "source": "source",
            "type": "type",
            NAMESPACE: NAMESPACE,
            NAME: NAME,
        },
        _NOT_SUPPORTED,
    ),
    ("certificates.k8s.io", "v1", "CertificateSigningRequest"): (
        _same(NAME, "spec.signerName"),
        _NOT_SUPPORTED,
    ),
}

_DEFAULT_CONVERSION: _Conversion = (
    _same(NAME, NAMESPACE),
    '{quoted} is not a known field selector: only "metadata.name", "metadata.namespace"',
)


def _converter(group: str, version: str, kind: str) -> _fields.Transform:
    accepted, message = _CONVERSIONS.get((group, version, kind), _DEFAULT_CONVERSION)

    def convert(label: str, value: str) -> tuple[str, str]:
        stored = accepted.get(label)
        if stored is None:
            raise SelectorError(message.format(label=label, quoted=gostrings.quote(label)))
        return stored, value

    return convert


def convert_field_selector(
    group: str, version: str, kind: str, selector: _fields.FieldSelector
) -> _fields.FieldSelector:
    """The selector with its labels in stored form, or :class:`SelectorError`.

    Upstream's ``FieldSelector.Transform(ConvertFieldLabel)``: the first
    unsupported label (in the selector's sorted order) is reported.
    """
    return selector.transform(_converter(group, version, kind))


def check_field_selector(
    group: str, version: str, kind: str, selector: _fields.FieldSelector
) -> None:
    """Raise :class:`SelectorError` when ``selector`` names a label the kind does not offer."""
    convert_field_selector(group, version, kind, selector)


def accepted_field_labels(group: str, version: str, kind: str) -> list[str]:
    """The labels a request may use for this kind (for docs, tests and error hints)."""
    accepted, _ = _CONVERSIONS.get((group, version, kind), _DEFAULT_CONVERSION)
    return sorted(accepted)
