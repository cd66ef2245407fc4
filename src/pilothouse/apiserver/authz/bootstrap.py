"""Create and reconcile the bootstrap RBAC policy at server start.

As kube-apiserver's ``rbac/bootstrap-roles`` post-start hook: a missing role or
binding is created; an existing one whose ``rbac.authorization.kubernetes.io/autoupdate``
annotation is not ``"false"`` gets the rules, labels, annotations and subjects it
lacks added (never removed, so an administrator's additions stay); a binding whose
``roleRef`` changed is recreated. The rules of aggregated roles (``admin``,
``edit``, ``view``) are the aggregation controller's, so they are left alone.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from pilothouse.api import errors, meta, rbac
from pilothouse.apiserver.authz import policy_data

if TYPE_CHECKING:
    from pilothouse.apiserver.registry.store import ResourceStore

log = logging.getLogger(__name__)

AUTOUPDATE = "rbac.authorization.kubernetes.io/autoupdate"
BOOTSTRAPPING_LABEL = {"kubernetes.io/bootstrapping": "rbac-defaults"}
API_VERSION = f"{rbac.GROUP_NAME}/v1"


def _metadata(
    name: str, namespace: str = "", labels: dict[str, str] | None = None
) -> dict[str, Any]:
    md: dict[str, Any] = {
        "name": name,
        "labels": {**BOOTSTRAPPING_LABEL, **(labels or {})},
        "annotations": {AUTOUPDATE: "true"},
    }
    if namespace:
        md["namespace"] = namespace
    return md


def _subjects(subjects: Iterable[tuple[str, ...]]) -> list[dict[str, Any]]:
    out = []
    for subject in subjects:
        kind, name = subject[0], subject[1]
        entry: dict[str, Any] = {"kind": kind, "name": name}
        if kind == "ServiceAccount":
            entry["namespace"] = subject[2]
        else:
            entry["apiGroup"] = rbac.GROUP_NAME
        out.append(entry)
    return out


def cluster_roles() -> list[dict[str, Any]]:
    out = []
    for name, spec in policy_data.CLUSTER_ROLES.items():
        role: dict[str, Any] = {
            "apiVersion": API_VERSION,
            "kind": "ClusterRole",
            "metadata": _metadata(name, labels=spec.get("labels")),
        }
        if "aggregationRule" in spec:
            role["aggregationRule"] = spec["aggregationRule"]
        else:
            role["rules"] = [dict(r) for r in spec["rules"]]
        out.append(role)
    for name, rules in policy_data.CONTROLLER_ROLES.items():
        out.append(
            {
                "apiVersion": API_VERSION,
                "kind": "ClusterRole",
                "metadata": _metadata(f"system:controller:{name}"),
                "rules": [dict(r) for r in rules],
            }
        )
    return out


def cluster_role_bindings() -> list[dict[str, Any]]:
    out = []
    for name, role, subjects in policy_data.CLUSTER_ROLE_BINDINGS:
        out.append(_binding("ClusterRoleBinding", name, "", "ClusterRole", role, subjects))
    for name in policy_data.CONTROLLER_ROLES:
        full = f"system:controller:{name}"
        out.append(
            _binding(
                "ClusterRoleBinding",
                full,
                "",
                "ClusterRole",
                full,
                [("ServiceAccount", name, "kube-system")],
            )
        )
    return out


def roles() -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": API_VERSION,
            "kind": "Role",
            "metadata": _metadata(name, namespace),
            "rules": [dict(r) for r in rules],
        }
        for (namespace, name), rules in policy_data.ROLES.items()
    ]


def role_bindings() -> list[dict[str, Any]]:
    return [
        _binding("RoleBinding", name, namespace, "Role", role, subjects)
        for namespace, name, role, subjects in policy_data.ROLE_BINDINGS
    ]


def _binding(
    kind: str,
    name: str,
    namespace: str,
    role_kind: str,
    role: str,
    subjects: Iterable[tuple[str, ...]],
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": _metadata(name, namespace),
        "roleRef": {"apiGroup": rbac.GROUP_NAME, "kind": role_kind, "name": role},
    }
    subject_list = _subjects(subjects)
    if subject_list:
        obj["subjects"] = subject_list
    return obj


# --- reconciliation ------------------------------------------------------------------
def _merge_meta(current: dict[str, Any], wanted: dict[str, Any]) -> None:
    md, want = current.setdefault("metadata", {}), wanted["metadata"]
    for field in ("labels", "annotations"):
        have = md.get(field) or {}
        for key, value in (want.get(field) or {}).items():
            have.setdefault(key, value)
        if have:
            md[field] = have


def _reconcile_role(current: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any]:
    _merge_meta(current, wanted)
    if "aggregationRule" in wanted:
        selectors = (current.get("aggregationRule") or {}).get("clusterRoleSelectors") or []
        for selector in wanted["aggregationRule"]["clusterRoleSelectors"]:
            if selector not in selectors:
                selectors.append(selector)
        current["aggregationRule"] = {"clusterRoleSelectors": selectors}
        return current
    have = list(current.get("rules") or [])
    _, missing = rbac.covers(have, wanted.get("rules") or [])
    if missing:
        for rule in wanted["rules"]:
            if not rbac.covers(have, [rule])[0]:
                have.append(rule)
        current["rules"] = have
    return current


def _reconcile_binding(current: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any]:
    _merge_meta(current, wanted)
    subjects = list(current.get("subjects") or [])
    for subject in wanted.get("subjects") or []:
        if subject not in subjects:
            subjects.append(subject)
    if subjects:
        current["subjects"] = subjects
    return current


async def _ensure(store: ResourceStore, wanted: dict[str, Any], *, binding: bool) -> None:
    md = wanted["metadata"]
    namespace, name = md.get("namespace", ""), md["name"]
    entry = await store.current(namespace, name)
    if entry is None:
        try:
            await store.create(namespace, meta.deep_copy(wanted))
        except errors.StatusError as exc:
            if not errors.is_already_exists(exc):
                log.warning("cannot create %s %s: %s", wanted["kind"], name, exc.message)
        return
    current = entry.whole()  # reconciled and written back: managedFields kept
    if ((current.get("metadata") or {}).get("annotations") or {}).get(AUTOUPDATE) == "false":
        return
    if binding and current.get("roleRef") != wanted["roleRef"]:
        log.info("recreating %s %s: its roleRef changed", wanted["kind"], name)
        await store.delete(namespace, name)
        await store.create(namespace, meta.deep_copy(wanted))
        return
    merged = (_reconcile_binding if binding else _reconcile_role)(meta.deep_copy(current), wanted)
    if merged == current:
        return

    async def mutate(_: dict[str, Any]) -> dict[str, Any]:
        return merged

    try:
        await store.guaranteed_update(namespace, name, mutate)
    except errors.StatusError as exc:
        log.warning("cannot reconcile %s %s: %s", wanted["kind"], name, exc.message)


async def ensure_policy(
    *,
    cluster_role_store: ResourceStore,
    cluster_role_binding_store: ResourceStore,
    role_store: ResourceStore,
    role_binding_store: ResourceStore,
) -> None:
    """Create or reconcile every bootstrap role and binding (idempotent)."""
    for obj in cluster_roles():
        await _ensure(cluster_role_store, obj, binding=False)
    for obj in cluster_role_bindings():
        await _ensure(cluster_role_binding_store, obj, binding=True)
    for obj in roles():
        await _ensure(role_store, obj, binding=False)
    for obj in role_bindings():
        await _ensure(role_binding_store, obj, binding=True)
