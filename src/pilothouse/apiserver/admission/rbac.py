"""RBAC escalation prevention on writes of roles and bindings.

Upstream does this in the RBAC registries (``pkg/registry/rbac/*/policybased``); it
sits in the admission chain here, at the same point of the write (after defaulting
and validation, before storage):

* a Role or ClusterRole may only hold rules its writer already holds, unless the
  writer may ``escalate`` it; an ``aggregationRule`` needs full (cluster-admin)
  authority;
* a RoleBinding or ClusterRoleBinding may only grant a role whose rules its writer
  holds — in the binding's namespace — unless the writer may ``bind`` that role;
* members of ``system:masters`` and the server itself are exempt, and so is an
  update that only changes what the garbage collector manages (owner references,
  finalizers).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pilothouse.api import errors, rbac
from pilothouse.api.meta import Obj
from pilothouse.apiserver.authn import user as user_module
from pilothouse.apiserver.authz import attributes as attrs_module
from pilothouse.apiserver.authz import authorizer as authz
from pilothouse.apiserver.authz import rbac as rbac_authz

if TYPE_CHECKING:
    from pilothouse.apiserver.registry.store import ResourceStore

FULL_AUTHORITY = [
    {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]},
    {"verbs": ["*"], "nonResourceURLs": ["*"]},
]
_GC_FIELDS = ("ownerReferences", "finalizers", "resourceVersion", "managedFields", "generation")


def _only_gc_fields(new: Obj, old: Obj) -> bool:
    """Whether an update changes nothing but what the garbage collector manages."""

    def strip(obj: Obj) -> Obj:
        md = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _GC_FIELDS}
        return {**{k: v for k, v in obj.items() if k != "metadata"}, "metadata": md}

    return strip(new) == strip(old)


class EscalationCheck:
    """The admission step; built with the server's authorizer and RBAC index."""

    def __init__(self, authorizer: authz.Authorizer, index: rbac_authz.RBACIndex) -> None:
        self.authorizer = authorizer
        self.index = index

    async def __call__(self, store: ResourceStore, op: str, obj: Obj) -> None:
        r = store.resource
        if r.group != rbac.GROUP_NAME or op not in ("create", "update"):
            return
        user = user_module.current()
        if user is None or user.is_privileged():
            return
        md = obj.get("metadata") or {}
        namespace, name = md.get("namespace", ""), md.get("name", "")
        if op == "update":
            old = await store.current(namespace, name)
            if old is not None and _only_gc_fields(obj, old.obj):
                return
        if r.plural in ("roles", "clusterroles"):
            self._check_role(user, r.plural, namespace, name, obj)
        elif r.plural in ("rolebindings", "clusterrolebindings"):
            self._check_binding(user, r.plural, namespace, name, obj)

    def _check_role(
        self, user: user_module.UserInfo, plural: str, namespace: str, name: str, obj: Obj
    ) -> None:
        escalate = attrs_module.resource(
            user,
            verb="escalate",
            group=rbac.GROUP_NAME,
            resource=plural,
            namespace=namespace,
            name=name,
        )
        if self.authorizer.allowed(escalate):
            return
        rules = [x for x in obj.get("rules") or [] if isinstance(x, dict)]
        self._confirm_no_escalation(user, plural, namespace, name, rules)
        if plural == "clusterroles" and obj.get("aggregationRule"):
            owner, _ = self.index.rules_for(user, namespace)
            if not rbac.covers(owner, FULL_AUTHORITY)[0]:
                raise errors.forbidden(
                    plural,
                    rbac.GROUP_NAME,
                    name,
                    "must have cluster-admin privileges to use the aggregationRule",
                )

    def _check_binding(
        self, user: user_module.UserInfo, plural: str, namespace: str, name: str, obj: Obj
    ) -> None:
        ref: dict[str, Any] = obj.get("roleRef") or {}
        kind, role_name = ref.get("kind", ""), ref.get("name", "")
        role_plural = "clusterroles" if kind == "ClusterRole" else "roles"
        bind = attrs_module.resource(
            user,
            verb="bind",
            group=ref.get("apiGroup", ""),
            resource=role_plural,
            namespace=namespace,
            name=role_name,
        )
        if self.authorizer.allowed(bind):
            return
        rules = self.index.role_rules(kind, role_name, namespace)
        if rules is None:
            raise errors.not_found(role_plural, rbac.GROUP_NAME, role_name)
        self._confirm_no_escalation(user, plural, namespace, name, rules)

    def _confirm_no_escalation(
        self,
        user: user_module.UserInfo,
        plural: str,
        namespace: str,
        name: str,
        rules: list[dict[str, Any]],
    ) -> None:
        owner, problems = self.index.rules_for(user, namespace)
        ok, missing = rbac.covers(owner, rules)
        if ok:
            return
        message = rbac.escalation_message(user.name, user.groups, missing)
        if problems:
            message += f"; resolution errors: [{rbac_authz.aggregate_message(problems)}]"
        raise errors.forbidden(plural, rbac.GROUP_NAME, name, message)
