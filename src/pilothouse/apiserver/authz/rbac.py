"""The RBAC authorizer, deciding from an index of bindings by subject.

Upstream visits every ClusterRoleBinding (and every RoleBinding of the namespace)
for each request and asks whether it names the user. Here the bindings are indexed
by subject — ``user:<name>`` (service accounts are users named
``system:serviceaccount:<ns>:<name>``) and ``group:<name>`` — so a decision looks at
the bindings of the user and each of their groups only. Roles are compiled to
frozensets once per revision, and decisions are memoised until any RBAC object
changes: with 1,000 RoleBindings in the cluster a repeated request costs one dict
look-up.

The index follows the watch cache: each call first applies the RBAC events that
arrived since the last one (the caches' recent-event rings), or rebuilds from the
cached objects when it fell behind the ring. Everything runs on the event loop
without awaiting, so no request sees a half-applied change.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pilothouse.api import rbac
from pilothouse.apiserver import cacheentry, watchcache
from pilothouse.apiserver.authn import user as user_module
from pilothouse.apiserver.authz import attributes as attrs_module

GROUP = rbac.GROUP_NAME
ROLES = f"/registry/{GROUP}/roles/"
CLUSTER_ROLES = f"/registry/{GROUP}/clusterroles/"
ROLE_BINDINGS = f"/registry/{GROUP}/rolebindings/"
CLUSTER_ROLE_BINDINGS = f"/registry/{GROUP}/clusterrolebindings/"
PREFIXES = (ROLES, CLUSTER_ROLES, ROLE_BINDINGS, CLUSTER_ROLE_BINDINGS)
_DECISION_CACHE_SIZE = 65536


@dataclass(frozen=True, slots=True)
class BindingRef:
    """One binding of a subject: where it applies and which role it grants."""

    key: str
    name: str
    namespace: str  # "" for a ClusterRoleBinding
    role_kind: str
    role_name: str


@dataclass(frozen=True, slots=True)
class CompiledRole:
    revision: int
    rules: tuple[dict[str, Any], ...]
    compiled: tuple[rbac.CompiledRule, ...]


def _subject_keys(subject: dict[str, Any], binding_namespace: str) -> str | None:
    kind = subject.get("kind")
    name = subject.get("name") or ""
    if kind == "User":
        return "user:" + name
    if kind == "Group":
        return "group:" + name
    if kind == "ServiceAccount":
        ns = subject.get("namespace") or binding_namespace
        if not ns:
            return None
        return "user:" + rbac.service_account_username(ns, name)
    return None


def _user_keys(user: user_module.UserInfo) -> list[str]:
    return ["user:" + user.name, *("group:" + g for g in user.groups)]


def not_found_message(kind: str, name: str) -> str:
    """What upstream's listers say about a missing role (singular resource names)."""
    singular = "clusterrole" if kind == "ClusterRole" else "role"
    return f'{singular}.{GROUP} "{name}" not found'


def aggregate_message(messages: list[str]) -> str:
    """utilerrors.NewAggregate(...).Error(): one message as is, several de-duplicated in []."""
    unique = list(dict.fromkeys(messages))
    if len(unique) == 1:
        return unique[0]
    return "[" + ", ".join(unique) + "]"


class RBACIndex:
    """Bindings by subject and compiled roles, kept in step with the watch cache."""

    def __init__(self, cache: watchcache.WatchCache) -> None:
        self._caches = {p: cache.caches[p] for p in PREFIXES}
        self._seen: dict[str, int] = {p: -1 for p in PREFIXES}
        # subject key -> binding key -> ref (cluster) ; (namespace, subject key) -> …
        self._cluster: dict[str, dict[str, BindingRef]] = collections.defaultdict(dict)
        self._namespaced: dict[tuple[str, str], dict[str, BindingRef]] = collections.defaultdict(
            dict
        )
        self._indexed: dict[str, list[tuple[str, str]]] = {}  # binding key -> index slots
        self._roles: dict[str, CompiledRole] = {}
        self.generation = 0
        self._rebuild()

    # --- following the cache -----------------------------------------------------
    def _last(self, prefix: str) -> int:
        events = self._caches[prefix].events
        return events[-1].revision if events else self._caches[prefix].floor

    def refresh(self) -> None:
        """Apply what changed since the last call (cheap when nothing did)."""
        changed = False
        for prefix in PREFIXES:
            last = self._last(prefix)
            seen = self._seen[prefix]
            if last == seen:
                continue
            changed = True
            cache = self._caches[prefix]
            if seen < cache.floor:
                self._rebuild()
                return
            pending = []
            for event in reversed(cache.events):
                if event.revision <= seen:
                    break
                pending.append(event)
            for event in reversed(pending):
                self._apply(prefix, event)
            self._seen[prefix] = last
        if changed:
            self.generation += 1

    def _rebuild(self) -> None:
        self._cluster.clear()
        self._namespaced.clear()
        self._indexed.clear()
        self._roles.clear()
        for prefix in (ROLE_BINDINGS, CLUSTER_ROLE_BINDINGS):
            for entry in self._caches[prefix].objects.values():
                self._add_binding(prefix, entry.key, entry.obj)
        for prefix in PREFIXES:
            self._seen[prefix] = self._last(prefix)
        self.generation += 1

    def _apply(self, prefix: str, event: cacheentry.WatchEvent) -> None:
        key = event.entry.key
        if prefix in (ROLES, CLUSTER_ROLES):
            self._roles.pop(key, None)
            return
        self._remove_binding(key)
        if event.type != cacheentry.DELETED:
            self._add_binding(prefix, key, event.entry.obj)

    def _add_binding(self, prefix: str, key: str, obj: dict[str, Any]) -> None:
        md = obj.get("metadata") or {}
        namespace = md.get("namespace", "") if prefix == ROLE_BINDINGS else ""
        ref = obj.get("roleRef") or {}
        binding = BindingRef(
            key, md.get("name", ""), namespace, ref.get("kind", ""), ref.get("name", "")
        )
        slots: list[tuple[str, str]] = []
        for subject in obj.get("subjects") or []:
            if not isinstance(subject, dict):
                continue
            subject_key = _subject_keys(subject, namespace)
            if subject_key is None:
                continue
            if namespace:
                self._namespaced[(namespace, subject_key)][key] = binding
            else:
                self._cluster[subject_key][key] = binding
            slots.append((namespace, subject_key))
        self._indexed[key] = slots

    def _remove_binding(self, key: str) -> None:
        for namespace, subject_key in self._indexed.pop(key, ()):
            if namespace:
                table = self._namespaced.get((namespace, subject_key))
                if table is not None:
                    table.pop(key, None)
                    if not table:
                        del self._namespaced[(namespace, subject_key)]
            else:
                found = self._cluster.get(subject_key)
                if found is not None:
                    found.pop(key, None)
                    if not found:
                        del self._cluster[subject_key]

    # --- reading -------------------------------------------------------------------
    def role(self, kind: str, name: str, namespace: str) -> CompiledRole | None:
        if kind == "ClusterRole":
            key = CLUSTER_ROLES + name
            cache = self._caches[CLUSTER_ROLES]
        elif kind == "Role" and namespace:
            key = f"{ROLES}{namespace}/{name}"
            cache = self._caches[ROLES]
        else:
            return None
        entry = cache.objects.get(key)
        if entry is None:
            self._roles.pop(key, None)
            return None
        found = self._roles.get(key)
        if found is None or found.revision != entry.revision:
            rules = tuple(r for r in entry.obj.get("rules") or [] if isinstance(r, dict))
            found = CompiledRole(entry.revision, rules, tuple(rbac.compile_rule(r) for r in rules))
            self._roles[key] = found
        return found

    def bindings_for(self, user: user_module.UserInfo, namespace: str) -> Iterable[BindingRef]:
        """The bindings that apply to ``user``: cluster-wide, then in ``namespace``."""
        keys = _user_keys(user)
        seen: set[str] = set()
        for subject_key in keys:
            for ref in self._cluster.get(subject_key, {}).values():
                if ref.key not in seen:
                    seen.add(ref.key)
                    yield ref
        if namespace:
            for subject_key in keys:
                for ref in self._namespaced.get((namespace, subject_key), {}).values():
                    if ref.key not in seen:
                        seen.add(ref.key)
                        yield ref

    def rules_for(
        self, user: user_module.UserInfo, namespace: str
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """Every rule that applies to ``user`` in ``namespace`` and the resolution errors."""
        self.refresh()
        rules: list[dict[str, Any]] = []
        problems: list[str] = []
        for ref in self.bindings_for(user, namespace):
            role = self.role(ref.role_kind, ref.role_name, ref.namespace)
            if role is None:
                problems.append(not_found_message(ref.role_kind, ref.role_name))
                continue
            rules.extend(role.rules)
        return rules, problems

    def role_rules(self, kind: str, name: str, namespace: str) -> list[dict[str, Any]] | None:
        self.refresh()
        role = self.role(kind, name, namespace)
        return list(role.rules) if role is not None else None


class RBACAuthorizer:
    """Allows what some role bound to the user allows; otherwise no opinion."""

    def __init__(self, index: RBACIndex) -> None:
        self.index = index
        self._decisions: dict[tuple[Any, ...], tuple[bool, str]] = {}
        self._generation = -1

    def authorize(self, a: attrs_module.Attributes) -> tuple[bool, str]:
        index = self.index
        index.refresh()
        if index.generation != self._generation:
            self._decisions.clear()
            self._generation = index.generation
        user = a.user
        key = (
            user.name,
            user.groups,
            a.verb,
            a.resource_request,
            a.path if not a.resource_request else "",
            a.api_group,
            a.resource,
            a.subresource,
            a.namespace,
            a.name,
        )
        found = self._decisions.get(key)
        if found is not None:
            return found
        decision = self._decide(a)
        if len(self._decisions) >= _DECISION_CACHE_SIZE:
            self._decisions.clear()
        self._decisions[key] = decision
        return decision

    def _decide(self, a: attrs_module.Attributes) -> tuple[bool, str]:
        problems: list[str] = []
        for ref in self.index.bindings_for(a.user, a.namespace):
            role = self.index.role(ref.role_kind, ref.role_name, ref.namespace)
            if role is None:
                problems.append(not_found_message(ref.role_kind, ref.role_name))
                continue
            for rule in role.compiled:
                if a.resource_request:
                    ok = rbac.allows_resource(
                        rule,
                        verb=a.verb,
                        group=a.api_group,
                        resource=a.resource,
                        subresource=a.subresource,
                        name=a.name,
                    )
                else:
                    ok = rbac.allows_url(rule, verb=a.verb, path=a.path)
                if ok:
                    return True, _allowed_by(ref)
        return False, ("RBAC: " + aggregate_message(problems)) if problems else ""


def _allowed_by(ref: BindingRef) -> str:
    if ref.namespace:
        return f'RBAC: allowed by RoleBinding "{ref.name}/{ref.namespace}" of {ref.role_kind} "{ref.role_name}"'
    return f'RBAC: allowed by ClusterRoleBinding "{ref.name}" of {ref.role_kind} "{ref.role_name}"'
