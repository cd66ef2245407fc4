"""Whether a policy or a binding applies to a request (upstream's ``matching.Matcher``).

The namespace and object selectors first, then the exclusions (any rule that matches
excludes), then the resource rules — each may name objects (``resourceNames``), and
with ``matchPolicy: Equivalent`` a rule for another version of the same stored
resource matches too, the request then seen in the rule's version. Errors the
selectors gave count only for requests the rules match. Pure functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pilothouse.api import errors, resources
from pilothouse.apiserver.admission.policy import policies
from pilothouse.apiserver.admission.webhook import matching as webhook_matching


@dataclass(frozen=True, slots=True)
class Matched:
    """The resource and kind a policy sees the request as."""

    resource: resources.Resource
    kind: webhook_matching.GVK


def _rules_match(
    rules: tuple[dict[str, Any], ...],
    match_policy: str,
    request: webhook_matching.Request,
    registry: resources.Registry,
) -> Matched | None:
    for rule in rules:
        if webhook_matching.rule_matches(rule, request, request.resource) and _named(rule, request):
            return Matched(request.resource, request.kind)
    if match_policy != "Equivalent":
        return None
    equivalents = [r for r in registry.storage_siblings(request.resource) if r != request.resource]
    for rule in rules:
        for equivalent in equivalents:
            if webhook_matching.rule_matches(rule, request, equivalent) and _named(rule, request):
                return Matched(
                    equivalent, webhook_matching.kind_for(equivalent, request.subresource)
                )
    return None


def _named(rule: dict[str, Any], request: webhook_matching.Request) -> bool:
    names = rule.get("resourceNames") or []
    return not names or request.name in names


def matches(
    match: policies.Match,
    request: webhook_matching.Request,
    *,
    registry: resources.Registry,
    namespace_labels: webhook_matching.NamespaceLabels,
) -> Matched | None:
    ns_error: errors.StatusError | None = None
    try:
        ns_matches = webhook_matching.namespace_selector_matches(
            match.namespace_selector, request, namespace_labels
        )
    except errors.StatusError as exc:
        ns_matches, ns_error = False, exc
    if not ns_matches and ns_error is None:
        return None
    obj_error: errors.StatusError | None = None
    if match.object_selector.error:
        obj_matches, obj_error = False, errors.internal(match.object_selector.error)
    else:
        obj_matches = webhook_matching.object_selector_matches(match.object_selector, request)
    if not obj_matches and obj_error is None:
        return None
    if match.excludes and _rules_match(match.excludes, match.match_policy, request, registry):
        return None
    if match.rules:
        found = _rules_match(match.rules, match.match_policy, request, registry)
    else:
        found = Matched(request.resource, request.kind)
    if found is None:
        return None
    if ns_error is not None:
        raise ns_error
    if obj_error is not None:
        raise obj_error
    return found
