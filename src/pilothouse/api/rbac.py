"""RBAC's rule algebra: does a rule allow a request, do some rules cover others.

Upstream's semantics (``rbac/v1`` helpers and ``auth/rbac/validation``):

* a rule allows a resource request when its verbs, API groups, resources and
  resource names all match; ``*`` matches anything, ``pods/log`` names a
  subresource and ``*/scale`` that subresource of any resource; an empty
  ``resourceNames`` matches every name;
* a non-resource rule matches a path exactly, or by prefix when it ends in ``*``;
* escalation prevention asks whether the rules someone holds *cover* the rules
  they grant: every granted rule is broken down to one verb on one resource (or
  one URL) and each piece must be covered by a held rule. What is missing is
  compacted and printed as upstream prints it (``{APIGroups:["apps"],
  Resources:["deployments"], Verbs:["get" "list"]}``).

Rules are the JSON dicts the API serves; :class:`CompiledRule` is the same rule
as frozensets, made once per role so the authorizer's hot path does set look-ups.

No I/O here: this module is part of the bottom ``api`` layer.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pilothouse.api import gostrings

GROUP_NAME = "rbac.authorization.k8s.io"
ALL = "*"

# Well-known users and groups (k8s.io/apiserver/pkg/authentication/user).
SYSTEM_PRIVILEGED_GROUP = "system:masters"
NODES_GROUP = "system:nodes"
MONITORING_GROUP = "system:monitoring"
ALL_AUTHENTICATED = "system:authenticated"
ALL_UNAUTHENTICATED = "system:unauthenticated"
ANONYMOUS = "system:anonymous"
APISERVER_USER = "system:apiserver"
KUBE_PROXY = "system:kube-proxy"
KUBE_CONTROLLER_MANAGER = "system:kube-controller-manager"
KUBE_SCHEDULER = "system:kube-scheduler"

SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
SERVICE_ACCOUNTS_GROUP = "system:serviceaccounts"
SERVICE_ACCOUNT_GROUP_PREFIX = "system:serviceaccounts:"
NODE_USER_PREFIX = "system:node:"

Rule = dict[str, Any]


# --- service account and node names ----------------------------------------------
def service_account_username(namespace: str, name: str) -> str:
    return f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}"


def service_account_groups(namespace: str) -> list[str]:
    return [SERVICE_ACCOUNTS_GROUP, SERVICE_ACCOUNT_GROUP_PREFIX + namespace]


def split_service_account_username(username: str) -> tuple[str, str] | None:
    """(namespace, name) of ``system:serviceaccount:<ns>:<name>``, or None."""
    if not username.startswith(SERVICE_ACCOUNT_PREFIX):
        return None
    namespace, sep, name = username[len(SERVICE_ACCOUNT_PREFIX) :].partition(":")
    if not sep or not namespace or not name or ":" in name:
        return None
    return namespace, name


def node_name(username: str, groups: Iterable[str]) -> str | None:
    """The node a ``system:node:<name>`` user in ``system:nodes`` is, or None."""
    if not username.startswith(NODE_USER_PREFIX) or NODES_GROUP not in groups:
        return None
    return username[len(NODE_USER_PREFIX) :] or None


# --- matching ----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CompiledRule:
    verbs: frozenset[str]
    groups: frozenset[str]
    resources: frozenset[str]
    names: frozenset[str]
    urls: tuple[str, ...]
    all_verbs: bool
    all_groups: bool
    all_resources: bool


def compile_rule(rule: Rule) -> CompiledRule:
    def strings(key: str) -> list[str]:
        value = rule.get(key)
        return [str(v) for v in value] if isinstance(value, list) else []

    verbs, groups, res = strings("verbs"), strings("apiGroups"), strings("resources")
    return CompiledRule(
        verbs=frozenset(verbs),
        groups=frozenset(groups),
        resources=frozenset(res),
        names=frozenset(strings("resourceNames")),
        urls=tuple(strings("nonResourceURLs")),
        all_verbs=ALL in verbs,
        all_groups=ALL in groups,
        all_resources=ALL in res,
    )


def resource_matches(rule: CompiledRule, combined: str, subresource: str) -> bool:
    if rule.all_resources or combined in rule.resources:
        return True
    # ``*/scale`` matches the scale subresource of anything; a bare resource never
    # matches ``*/x``.
    return bool(subresource) and f"*/{subresource}" in rule.resources


def url_matches(rule: CompiledRule, path: str) -> bool:
    for url in rule.urls:
        if url in (ALL, path):
            return True
        if url.endswith("*") and path.startswith(url.rstrip("*")):
            return True
    return False


def allows_resource(
    rule: CompiledRule,
    *,
    verb: str,
    group: str,
    resource: str,
    subresource: str = "",
    name: str = "",
) -> bool:
    """Whether ``rule`` allows ``verb`` on the resource (upstream's RuleAllows)."""
    if not (rule.all_verbs or verb in rule.verbs):
        return False
    if not (rule.all_groups or group in rule.groups):
        return False
    combined = f"{resource}/{subresource}" if subresource else resource
    if not resource_matches(rule, combined, subresource):
        return False
    return not rule.names or name in rule.names


def allows_url(rule: CompiledRule, *, verb: str, path: str) -> bool:
    return (rule.all_verbs or verb in rule.verbs) and url_matches(rule, path)


# --- covering (escalation checks) ----------------------------------------------------
def breakdown(rule: Rule) -> list[Rule]:
    """One rule per verb and resource (and name), or per verb and URL."""
    out: list[Rule] = []
    names = list(rule.get("resourceNames") or [])
    for group in rule.get("apiGroups") or []:
        for resource in rule.get("resources") or []:
            for verb in rule.get("verbs") or []:
                if names:
                    out.extend(
                        {
                            "apiGroups": [group],
                            "resources": [resource],
                            "verbs": [verb],
                            "resourceNames": [n],
                        }
                        for n in names
                    )
                else:
                    out.append({"apiGroups": [group], "resources": [resource], "verbs": [verb]})
    for url in rule.get("nonResourceURLs") or []:
        for verb in rule.get("verbs") or []:
            out.append({"nonResourceURLs": [url], "verbs": [verb]})
    return out


def _resources_cover(owner: Sequence[str], wanted: Sequence[str]) -> bool:
    if ALL in owner or set(wanted) <= set(owner):
        return True
    for path in wanted:
        if path in owner:
            continue
        if "/" not in path:
            return False
        if "*/" + path.split("/", 1)[1] not in owner:
            return False
    return True


def _url_covers(owner: str, path: str) -> bool:
    return owner == path or (owner.endswith("*") and path.startswith(owner.rstrip("*")))


def rule_covers(owner: Rule, sub: Rule) -> bool:
    owner_verbs = owner.get("verbs") or []
    owner_groups = owner.get("apiGroups") or []
    owner_names = owner.get("resourceNames") or []
    sub_names = sub.get("resourceNames") or []
    verbs = ALL in owner_verbs or set(sub.get("verbs") or []) <= set(owner_verbs)
    groups = ALL in owner_groups or set(sub.get("apiGroups") or []) <= set(owner_groups)
    resources = _resources_cover(owner.get("resources") or [], sub.get("resources") or [])
    urls = all(
        any(_url_covers(o, p) for o in owner.get("nonResourceURLs") or [])
        for p in sub.get("nonResourceURLs") or []
    )
    if not sub_names:
        names = not owner_names
    else:
        names = not owner_names or set(sub_names) <= set(owner_names)
    return verbs and groups and resources and names and urls


def covers(owner_rules: Sequence[Rule], servant_rules: Sequence[Rule]) -> tuple[bool, list[Rule]]:
    """Whether ``owner_rules`` cover ``servant_rules``, and the pieces they miss."""
    missing = [
        sub
        for servant in servant_rules
        for sub in breakdown(servant)
        if not any(rule_covers(owner, sub) for owner in owner_rules)
    ]
    return not missing, missing


def compact(rules: Sequence[Rule]) -> list[Rule]:
    """Merge rules on one group and one resource (and at most one name) that differ
    only in their verbs, as upstream compacts the missing rules it reports."""
    out: list[Rule] = []
    simple: dict[tuple[str, str, str | None], Rule] = {}
    for rule in rules:
        names = rule.get("resourceNames") or []
        groups = rule.get("apiGroups") or []
        res = rule.get("resources") or []
        is_simple = (
            len(names) <= 1
            and not rule.get("nonResourceURLs")
            and len(groups) == 1
            and len(res) == 1
            and set(rule) <= {"apiGroups", "resources", "verbs", "resourceNames"}
        )
        if not is_simple:
            out.append(rule)
            continue
        key = (groups[0], res[0], names[0] if names else None)
        found = simple.get(key)
        if found is None:
            simple[key] = {k: list(v) for k, v in rule.items()}
        else:
            for verb in rule.get("verbs") or []:
                if verb not in found["verbs"]:
                    found["verbs"].append(verb)
    return out + list(simple.values())


def _go_quoted_list(values: Sequence[str]) -> str:
    return "[" + " ".join(gostrings.quote(str(v)) for v in values) + "]"


def compact_string(rule: Rule) -> str:
    """``{APIGroups:[""], Resources:["pods"], Verbs:["get"]}`` (upstream's CompactString)."""
    parts = []
    for key, label in (
        ("apiGroups", "APIGroups"),
        ("resources", "Resources"),
        ("nonResourceURLs", "NonResourceURLs"),
        ("resourceNames", "ResourceNames"),
        ("verbs", "Verbs"),
    ):
        values = rule.get(key) or []
        if values:
            parts.append(f"{label}:{_go_quoted_list(values)}")
    return "{" + ", ".join(parts) + "}"


def escalation_message(user: str, groups: Sequence[str], missing: Sequence[Rule]) -> str:
    """Upstream's ConfirmNoEscalation message for the rules someone may not grant."""
    described = sorted({compact_string(r) for r in compact(missing)})
    return (
        f"user {gostrings.quote(user)} (groups={_go_quoted_list(groups)}) is attempting to "
        "grant RBAC permissions not currently held:\n" + "\n".join(described)
    )


# --- subjects ----------------------------------------------------------------------
def subject_applies(
    subject: dict[str, Any], *, user: str, groups: Iterable[str], namespace: str
) -> bool:
    """Whether a binding's subject names this user (upstream's appliesToUser)."""
    kind = subject.get("kind")
    name = subject.get("name") or ""
    if kind == "User":
        return user == name
    if kind == "Group":
        return name in groups
    if kind == "ServiceAccount":
        ns = subject.get("namespace") or namespace
        return bool(ns) and user == service_account_username(ns, name)
    return False
