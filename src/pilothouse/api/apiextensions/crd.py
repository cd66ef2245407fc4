"""Reading a CustomResourceDefinition: its versions and what each one serves.

A v1 CRD carries everything per version (schema, subresources, printer columns,
selectable fields); these helpers answer the questions the API server asks of one
(which version is stored, which are served, what a version's schema is) and keep
the status conditions as upstream's ``apihelpers`` do.

No I/O here: this module is part of the bottom ``api`` layer.
"""

from __future__ import annotations

from typing import Any

from pilothouse.api import meta
from pilothouse.api.meta import Obj

GROUP = "apiextensions.k8s.io"
FINALIZER = "customresourcecleanup.apiextensions.k8s.io"

ESTABLISHED = "Established"
NAMES_ACCEPTED = "NamesAccepted"
TERMINATING = "Terminating"
NON_STRUCTURAL = "NonStructuralSchema"
KUBERNETES_API_APPROVAL_POLICY_CONFORMANT = "KubernetesAPIApprovalPolicyConformant"


def spec(crd: Obj) -> dict[str, Any]:
    value = crd.get("spec")
    return value if isinstance(value, dict) else {}


def names(crd: Obj) -> dict[str, Any]:
    value = spec(crd).get("names")
    return value if isinstance(value, dict) else {}


def accepted_names(crd: Obj) -> dict[str, Any]:
    status = crd.get("status")
    value = status.get("acceptedNames") if isinstance(status, dict) else None
    return value if isinstance(value, dict) else {}


def versions(crd: Obj) -> list[dict[str, Any]]:
    value = spec(crd).get("versions")
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def version(crd: Obj, name: str) -> dict[str, Any] | None:
    for v in versions(crd):
        if v.get("name") == name:
            return v
    return None


def storage_version(crd: Obj) -> str:
    for v in versions(crd):
        if v.get("storage"):
            return str(v.get("name") or "")
    return ""


def served_versions(crd: Obj) -> list[str]:
    return [str(v.get("name")) for v in versions(crd) if v.get("served")]


def schema(crd: Obj, version_name: str) -> dict[str, Any] | None:
    v = version(crd, version_name)
    if v is None:
        return None
    found = (v.get("schema") or {}).get("openAPIV3Schema")
    return found if isinstance(found, dict) else None


def subresources(crd: Obj, version_name: str) -> dict[str, Any]:
    v = version(crd, version_name)
    found = (v or {}).get("subresources")
    return found if isinstance(found, dict) else {}


def has_status(crd: Obj, version_name: str) -> bool:
    return "status" in subresources(crd, version_name)


def scale(crd: Obj, version_name: str) -> dict[str, Any] | None:
    found = subresources(crd, version_name).get("scale")
    return found if isinstance(found, dict) else None


def printer_columns(crd: Obj, version_name: str) -> list[dict[str, Any]]:
    v = version(crd, version_name)
    found = (v or {}).get("additionalPrinterColumns")
    return [c for c in found if isinstance(c, dict)] if isinstance(found, list) else []


def selectable_fields(crd: Obj, version_name: str) -> list[str]:
    v = version(crd, version_name)
    found = (v or {}).get("selectableFields")
    if not isinstance(found, list):
        return []
    return [str(f.get("jsonPath")) for f in found if isinstance(f, dict) and f.get("jsonPath")]


def conversion(crd: Obj) -> dict[str, Any]:
    found = spec(crd).get("conversion")
    return found if isinstance(found, dict) else {"strategy": "None"}


def namespaced(crd: Obj) -> bool:
    return spec(crd).get("scope") == "Namespaced"


# --- conditions ----------------------------------------------------------------------


def conditions(crd: Obj) -> list[dict[str, Any]]:
    status = crd.get("status")
    found = status.get("conditions") if isinstance(status, dict) else None
    return [c for c in found if isinstance(c, dict)] if isinstance(found, list) else []


def condition(crd: Obj, kind: str) -> dict[str, Any] | None:
    for c in conditions(crd):
        if c.get("type") == kind:
            return c
    return None


def is_true(crd: Obj, kind: str) -> bool:
    found = condition(crd, kind)
    return found is not None and found.get("status") == "True"


def set_condition(crd: Obj, kind: str, status: str, reason: str, message: str) -> bool:
    """Set a condition as upstream's ``SetCRDCondition``: the transition time changes
    only with the status. Returns whether anything changed."""
    status_obj = crd.setdefault("status", {})
    found = status_obj.setdefault("conditions", [])
    for c in found:
        if c.get("type") == kind:
            if (c.get("status"), c.get("reason"), c.get("message")) == (status, reason, message):
                return False
            if c.get("status") != status:
                c["lastTransitionTime"] = meta.now()
            c.update({"status": status, "reason": reason, "message": message})
            return True
    found.append(
        {
            "type": kind,
            "status": status,
            "lastTransitionTime": meta.now(),
            "reason": reason,
            "message": message,
        }
    )
    return True


def remove_condition(crd: Obj, kind: str) -> bool:
    status_obj = crd.get("status")
    if not isinstance(status_obj, dict) or not isinstance(status_obj.get("conditions"), list):
        return False
    before = len(status_obj["conditions"])
    status_obj["conditions"] = [c for c in status_obj["conditions"] if c.get("type") != kind]
    return len(status_obj["conditions"]) != before
