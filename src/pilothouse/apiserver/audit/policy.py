"""The audit Policy (``audit.k8s.io/v1``): load, validate and evaluate it.

Rules are tried in order; the first that matches a request decides its level, the
stages left out (the policy's ``omitStages`` plus the rule's) and whether
``managedFields`` are dropped from logged objects. No rule matching means level
None: the request is not recorded. Matching follows upstream's ``checker.go``:
users, groups and verbs must each match when given; ``namespaces`` and
``resources`` apply to resource requests only (``*``, ``resource/subresource``,
``*/subresource`` and ``resource/*`` patterns, and ``resourceNames``),
``nonResourceURLs`` to the rest (``*`` or a trailing-``*`` prefix).
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass
from typing import Any

import yaml

from pilothouse.api import errors
from pilothouse.api.validation import names

NONE = "None"
METADATA = "Metadata"
REQUEST = "Request"
REQUEST_RESPONSE = "RequestResponse"
LEVELS = (NONE, METADATA, REQUEST, REQUEST_RESPONSE)

REQUEST_RECEIVED = "RequestReceived"
RESPONSE_STARTED = "ResponseStarted"
RESPONSE_COMPLETE = "ResponseComplete"
PANIC = "Panic"
STAGES = (REQUEST_RECEIVED, RESPONSE_STARTED, RESPONSE_COMPLETE, PANIC)

API_VERSIONS = ("audit.k8s.io/v1", "audit.k8s.io/v1beta1", "audit.k8s.io/v1alpha1")


def at_least(level: str, minimum: str) -> bool:
    return LEVELS.index(level) >= LEVELS.index(minimum)


class PolicyError(ValueError):
    """A policy file that cannot be used; the message is upstream's."""


@dataclass(frozen=True, slots=True)
class GroupResources:
    group: str = ""
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Rule:
    level: str
    users: tuple[str, ...] = ()
    user_groups: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ()
    resources: tuple[GroupResources, ...] = ()
    namespaces: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()
    omit_stages: frozenset[str] = frozenset()
    omit_managed_fields: bool | None = None


@dataclass(frozen=True, slots=True)
class RequestAttributes:
    """What rules match on (upstream's authorizer attributes)."""

    user: str
    groups: tuple[str, ...]
    verb: str
    path: str
    resource_request: bool
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""


@dataclass(frozen=True, slots=True)
class Decision:
    level: str
    omit_stages: frozenset[str] = frozenset()
    omit_managed_fields: bool = False


@dataclass(frozen=True)
class Policy:
    rules: tuple[Rule, ...]
    omit_stages: frozenset[str] = frozenset()
    omit_managed_fields: bool = False

    def evaluate(self, attrs: RequestAttributes) -> Decision:
        for rule in self.rules:
            if _matches(rule, attrs):
                return Decision(
                    rule.level,
                    rule.omit_stages | self.omit_stages,
                    self.omit_managed_fields
                    if rule.omit_managed_fields is None
                    else rule.omit_managed_fields,
                )
        return Decision(NONE, self.omit_stages, self.omit_managed_fields)


def _matches(rule: Rule, a: RequestAttributes) -> bool:
    if rule.users and a.user not in rule.users:
        return False
    if rule.user_groups and not any(g in rule.user_groups for g in a.groups):
        return False
    if rule.verbs and a.verb not in rule.verbs:
        return False
    if rule.namespaces or rule.resources:
        return _matches_resource(rule, a)
    if rule.non_resource_urls:
        return not a.resource_request and any(
            _path_matches(a.path, spec) for spec in rule.non_resource_urls
        )
    return True


def _path_matches(path: str, spec: str) -> bool:
    return spec == "*" or spec == path or (spec.endswith("*") and path.startswith(spec.rstrip("*")))


def _matches_resource(rule: Rule, a: RequestAttributes) -> bool:
    if not a.resource_request:
        return False
    if rule.namespaces and a.namespace not in rule.namespaces:
        return False
    if not rule.resources:
        return True
    combined = f"{a.resource}/{a.subresource}" if a.subresource else a.resource
    for gr in rule.resources:
        if gr.group != a.api_group:
            continue
        if not gr.resources:
            return True
        for res in gr.resources:
            if gr.resource_names and a.name not in gr.resource_names:
                continue
            if res in (combined, "*"):
                return True
            if a.subresource and res.startswith("*/") and res[2:] == a.subresource:
                return True
            if res.endswith("/*") and res[:-2] == a.resource:
                return True
    return False


# --- loading ------------------------------------------------------------------------


def _strings(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise PolicyError(f"failed decoding: expected a list, got {value!r}")
    return tuple(str(v) for v in value)


def _validate_stages(stages: tuple[str, ...], path: str) -> list[errors.FieldError]:
    return [
        errors.invalid_value(f"{path}[{i}]", s, "allowed stages are " + ",".join(STAGES))
        for i, s in enumerate(stages)
        if s not in STAGES
    ]


def _rule(raw: Any, path: str, problems: list[errors.FieldError]) -> Rule:
    if not isinstance(raw, dict):
        raise PolicyError(f"failed decoding: {path} must be an object")
    level = str(raw.get("level") or "")
    if not level:
        problems.append(errors.required(f"{path}.level"))
    elif level not in LEVELS:
        problems.append(errors.not_supported(f"{path}.level", level, LEVELS))
    urls = _strings(raw.get("nonResourceURLs"))
    for i, url in enumerate(urls):
        if url == "*":
            continue
        if not url.startswith("/"):
            problems.append(
                errors.invalid_value(
                    f"{path}.nonResourceURLs[{i}]",
                    url,
                    "non-resource URL rules must begin with a '/' character",
                )
            )
        if url and "*" in url[:-1]:
            problems.append(
                errors.invalid_value(
                    f"{path}.nonResourceURLs[{i}]",
                    url,
                    "non-resource URL wildcards '*' must be the final character of the rule",
                )
            )
    groups: list[GroupResources] = []
    for entry in raw.get("resources") or []:
        entry = entry if isinstance(entry, dict) else {}
        gr = GroupResources(
            group=str(entry.get("group") or ""),
            resources=_strings(entry.get("resources")),
            resource_names=_strings(entry.get("resourceNames")),
        )
        if gr.group:
            bad = names.name_is_dns_subdomain(gr.group, False)
            if bad:
                problems.append(
                    errors.invalid_value(f"{path}.resources.group", gr.group, ",".join(bad))
                )
        if gr.resource_names and not gr.resources:
            problems.append(
                errors.invalid_value(
                    f"{path}.resources.resourceNames",
                    errors.go_string_list(list(gr.resource_names)),
                    "using resourceNames requires at least one resource",
                )
            )
        groups.append(gr)
    omit = _strings(raw.get("omitStages"))
    problems += _validate_stages(omit, f"{path}.omitStages")
    namespaces = _strings(raw.get("namespaces"))
    if urls and (groups or namespaces):
        problems.append(
            errors.invalid_value(
                f"{path}.nonResourceURLs",
                errors.go_string_list(list(urls)),
                "rules cannot apply to both regular resources and non-resource URLs",
            )
        )
    managed = raw.get("omitManagedFields")
    return Rule(
        level=level,
        users=_strings(raw.get("users")),
        user_groups=_strings(raw.get("userGroups")),
        verbs=_strings(raw.get("verbs")),
        resources=tuple(groups),
        namespaces=namespaces,
        non_resource_urls=urls,
        omit_stages=frozenset(omit),
        omit_managed_fields=bool(managed) if managed is not None else None,
    )


def parse(doc: Any) -> Policy:
    """A Policy from its decoded document (YAML or JSON), validated as upstream."""
    if not isinstance(doc, dict):
        raise PolicyError("failed decoding: the policy must be an object")
    kind, api_version = doc.get("kind"), doc.get("apiVersion")
    if not kind:
        raise PolicyError("failed decoding: Object 'Kind' is missing")
    if api_version not in API_VERSIONS or kind != "Policy":
        raise PolicyError(f"unknown group version field {api_version}, Kind={kind} in policy")
    problems: list[errors.FieldError] = []
    omit = _strings(doc.get("omitStages"))
    problems += _validate_stages(omit, "omitStages")
    rules = tuple(_rule(r, f"rules[{i}]", problems) for i, r in enumerate(doc.get("rules") or []))
    if problems:
        messages = [p.message() for p in problems]
        raise PolicyError(messages[0] if len(messages) == 1 else "[" + ", ".join(messages) + "]")
    if not rules:
        raise PolicyError("loaded illegal policy with 0 rules")
    return Policy(rules, frozenset(omit), bool(doc.get("omitManagedFields")))


def load(path: pathlib.Path) -> Policy:
    """``--audit-policy-file``; errors say the file, as kube-apiserver's do."""
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise PolicyError(f'failed to read file path "{path}": {exc}') from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"failed decoding: {exc}: from file {path}") from None
    try:
        return parse(doc)
    except PolicyError as exc:
        raise PolicyError(f"{exc}: from file {path}") from None
