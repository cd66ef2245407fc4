"""Tables of the API's extension points: webhook configurations, admission policies
and their bindings (upstream's ``printMutatingWebhook``, ``printValidatingWebhook``,
``printValidatingAdmissionPolicy``, ``printValidatingAdmissionPolicyBinding``) and
APIServices (the aggregator's own ``ConvertToTable``: ``Local`` or the Service,
``True`` or ``False (<reason>)``).
"""

from __future__ import annotations

from typing import Any

from pilothouse.apiserver.table import docs, timefmt
from pilothouse.apiserver.table.model import Cells, Object, Printer, column

_EMPTY: dict[str, Any] = {}
_NAME = column("Name", "string", docs.NAME, format_="name")
_AGE = column("Age", "string", docs.CREATION_TIMESTAMP)

WEBHOOK_COLUMNS = (
    _NAME,
    column(
        "Webhooks",
        "integer",
        "Webhooks indicates the number of webhooks registered in this configuration",
    ),
    _AGE,
)


def webhook_cells(obj: Object, now: float) -> Cells:
    meta = obj.get("metadata") or _EMPTY
    hooks = obj.get("webhooks")
    return [
        meta.get("name", ""),
        len(hooks) if isinstance(hooks, list) else 0,
        timefmt.since(meta.get("creationTimestamp"), now),
    ]


POLICY_COLUMNS = (
    _NAME,
    column(
        "Validations",
        "integer",
        "Validations indicates the number of validation rules defined in this configuration",
    ),
    column(
        "ParamKind",
        "string",
        "ParamKind specifies the kind of resources used to parameterize this policy",
    ),
    _AGE,
)


def policy_cells(obj: Object, now: float) -> Cells:
    meta = obj.get("metadata") or _EMPTY
    spec = obj.get("spec") or _EMPTY
    kind = spec.get("paramKind")
    param_kind = "<unset>"
    if isinstance(kind, dict):
        param_kind = f"{kind.get('apiVersion') or ''}/{kind.get('kind') or ''}"
    validations = spec.get("validations")
    return [
        meta.get("name", ""),
        len(validations) if isinstance(validations, list) else 0,
        param_kind,
        timefmt.since(meta.get("creationTimestamp"), now),
    ]


BINDING_COLUMNS = (
    _NAME,
    column(
        "PolicyName",
        "string",
        "PolicyName indicates the policy definition which the policy binding binded to",
    ),
    column(
        "ParamRef",
        "string",
        "ParamRef indicates the param resource which sets the configration param",
    ),
    _AGE,
)


def go_label_selector(selector: dict[str, Any]) -> str:
    """``metav1.LabelSelector.String()``, the generated Go form."""
    labels = selector.get("matchLabels") or {}
    shown_labels = "".join(f"{k}: {v}," for k, v in sorted(labels.items()))
    expressions = []
    for req in selector.get("matchExpressions") or []:
        values = ",".join(str(v) for v in req.get("values") or [])
        expressions.append(
            f"LabelSelectorRequirement{{Key:{req.get('key', '')},"
            f"Operator:{req.get('operator', '')},Values:[{values}],}}"
        )
    return (
        f"&LabelSelector{{MatchLabels:map[string]string{{{shown_labels}}},"
        f"MatchExpressions:[]LabelSelectorRequirement{{{','.join(expressions)}}},}}"
    )


def binding_cells(obj: Object, now: float) -> Cells:
    meta = obj.get("metadata") or _EMPTY
    spec = obj.get("spec") or _EMPTY
    ref = spec.get("paramRef")
    param = "<unset>"
    if isinstance(ref, dict):
        if ref.get("name"):
            # A name without a namespace may name a cluster-scoped object or one in the
            # request's namespace: upstream cannot tell either, and prints ``*``.
            param = f"{ref.get('namespace') or '*'}/{ref['name']}"
        elif isinstance(ref.get("selector"), dict):
            param = go_label_selector(ref["selector"])
    return [
        meta.get("name", ""),
        spec.get("policyName") or "",
        param,
        timefmt.since(meta.get("creationTimestamp"), now),
    ]


API_SERVICE_COLUMNS = (
    _NAME,
    column("Service", "string", "The reference to the service that hosts this API endpoint."),
    column("Available", "string", "Whether this service is available."),
    _AGE,
)


def available_cell(obj: Object) -> str:
    for condition in (obj.get("status") or _EMPTY).get("conditions") or []:
        if isinstance(condition, dict) and condition.get("type") == "Available":
            status = str(condition.get("status") or "")
            if status == "True" or not condition.get("reason"):
                return status
            return f"{status} ({condition['reason']})"
    return "Unknown"


def api_service_cells(obj: Object, now: float) -> Cells:
    meta = obj.get("metadata") or _EMPTY
    service = (obj.get("spec") or _EMPTY).get("service")
    shown = "Local"
    if isinstance(service, dict):
        shown = f"{service.get('namespace') or ''}/{service.get('name') or ''}"
    return [
        meta.get("name", ""),
        shown,
        available_cell(obj),
        timefmt.since(meta.get("creationTimestamp"), now),
    ]


PRINTERS = {
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"): Printer(
        WEBHOOK_COLUMNS, webhook_cells
    ),
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"): Printer(
        WEBHOOK_COLUMNS, webhook_cells
    ),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"): Printer(
        POLICY_COLUMNS, policy_cells
    ),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"): Printer(
        BINDING_COLUMNS, binding_cells
    ),
    ("apiregistration.k8s.io", "APIService"): Printer(API_SERVICE_COLUMNS, api_service_cells),
}
