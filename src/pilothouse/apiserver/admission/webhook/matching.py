"""Whether a webhook applies to a request (upstream's ``ShouldCallHook``).

In upstream's order: the namespace selector, the object selector, the rules (the
request's own resource first; with ``matchPolicy: Equivalent`` then the resources
kept in the same storage, e.g. ``autoscaling/v1`` and ``autoscaling/v2``
HorizontalPodAutoscalers), and only then, for a webhook that matched, the errors
the selectors gave and the match conditions. Pure functions of the request and
the webhook; the namespace labels come from the caller.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pilothouse.api import errors, resources
from pilothouse.api.meta import Obj
from pilothouse.apiserver.admission.webhook import hooks as hooks_module
from pilothouse.apiserver.registry import conversion

CREATE, UPDATE, DELETE, CONNECT = "CREATE", "UPDATE", "DELETE", "CONNECT"

# The admission of these kinds never calls webhooks or policies (upstream's
# IsExemptAdmissionConfigurationResource): a broken webhook must not be able to
# stop its own repair.
EXEMPT_KINDS = frozenset(
    {
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "MutatingAdmissionPolicy",
        "MutatingAdmissionPolicyBinding",
    }
)

GVK = tuple[str, str, str]


@dataclass
class Request:
    """One request as webhooks and policies see it (upstream's ``admission.Attributes``).

    ``obj`` and ``old`` are in their storage form; :meth:`versioned` gives them in
    the form of any resource stored in the same place. A mutating webhook's
    patch replaces ``obj`` (the caller copies it back where it came from).
    """

    operation: str
    resource: resources.Resource
    subresource: str
    namespace: str
    name: str
    obj: Obj | None
    old: Obj | None = None
    dry_run: bool = False
    user: dict[str, Any] = field(default_factory=dict)
    options: Obj | None = None
    warn: Callable[[str], None] = field(default=lambda text: None, repr=False)
    annotate: Callable[[str, str], None] = field(default=lambda key, value: None, repr=False)

    @property
    def kind(self) -> GVK:
        return kind_for(self.resource, self.subresource)

    def versioned(self, obj: Obj | None, resource: resources.Resource) -> Obj | None:
        if obj is None:
            return None
        convert = conversion.for_resource(resource)
        return convert.to_api(obj) if convert is not None else obj

    def unversioned(self, obj: Obj, resource: resources.Resource) -> Obj:
        convert = conversion.for_resource(resource)
        return convert.to_storage(obj) if convert is not None else obj

    def is_exempt(self) -> bool:
        return (
            self.resource.group == "admissionregistration.k8s.io" and self.kind[2] in EXEMPT_KINDS
        )

    @property
    def scoped_namespace(self) -> str:
        """``attr.GetNamespace()``: a Namespace's own name for requests on namespaces."""
        if self.resource.group == "" and self.resource.plural == "namespaces":
            return self.name
        return self.namespace


def kind_for(resource: resources.Resource, subresource: str) -> GVK:
    if subresource:
        sub = resources.SUBRESOURCE_KINDS.get(subresource)
        if sub is not None:
            return sub
    return (resource.group, resource.version, resource.kind)


@dataclass(frozen=True, slots=True)
class Invocation:
    """A webhook that applies, and the resource and kind it is called for."""

    hook: hooks_module.Hook
    resource: resources.Resource
    subresource: str
    kind: GVK


def _exact_or_wildcard(items: list[Any], requested: str) -> bool:
    return "*" in items or requested in items


def rule_matches(rule: dict[str, Any], request: Request, resource: resources.Resource) -> bool:
    """Upstream's ``rules.Matcher``: scope, operation, group, version, resource."""
    scope = rule.get("scope") or "*"
    is_namespace = resource.group == "" and resource.plural == "namespaces"
    if scope == "Namespaced":
        if is_namespace or not request.scoped_namespace:
            return False
    elif scope == "Cluster":
        if not (is_namespace or not request.scoped_namespace):
            return False
    elif scope != "*":
        return False
    operations = rule.get("operations") or []
    if "*" not in operations and request.operation not in operations:
        return False
    if not _exact_or_wildcard(rule.get("apiGroups") or [], resource.group):
        return False
    if not _exact_or_wildcard(rule.get("apiVersions") or [], resource.version):
        return False
    for item in rule.get("resources") or []:
        res, _, sub = str(item).partition("/")
        if (res == "*" or res == resource.plural) and (sub == "*" or sub == request.subresource):
            return True
    return False


def _labels(obj: Obj | None) -> dict[str, str] | None:
    if not isinstance(obj, dict):
        return None
    md = obj.get("metadata")
    if not isinstance(md, dict):
        return None
    found = md.get("labels")
    return found if isinstance(found, dict) else {}


def object_selector_matches(hook_selector: hooks_module.Selector, request: Request) -> bool:
    selector = hook_selector.selector
    if hook_selector.error or selector.empty:
        return not hook_selector.error
    # Options objects of CONNECT requests have no metadata: they never match.
    for obj in (request.obj, request.old):
        labels = _labels(obj)
        if labels is not None and selector.matches(labels):
            return True
    return False


NamespaceLabels = Callable[[str], "dict[str, str] | None"]


def namespace_selector_matches(
    hook_selector: hooks_module.Selector, request: Request, namespace_labels: NamespaceLabels
) -> bool:
    """Raises the StatusError upstream answers when the namespace is not there."""
    namespace = request.scoped_namespace
    is_namespace = request.resource.group == "" and request.resource.plural == "namespaces"
    if not namespace and not is_namespace:
        return True  # cluster-scoped objects are never exempted
    if hook_selector.error:
        raise errors.internal(hook_selector.error)
    if hook_selector.selector.empty:
        return True
    if is_namespace and not request.subresource and request.operation in (CREATE, UPDATE):
        labels = _labels(request.obj) or {}
    else:
        found = namespace_labels(namespace)
        if found is None:
            raise errors.not_found("namespaces", "", namespace)
        labels = found
    return hook_selector.selector.matches(labels)


def should_call(
    hook: hooks_module.Hook,
    request: Request,
    *,
    registry: resources.Registry,
    namespace_labels: NamespaceLabels,
) -> Invocation | None:
    """The invocation of ``hook`` for ``request``, or None when it does not apply.

    Raises a StatusError for the failures upstream reports (a missing namespace,
    a selector it could not parse)."""
    ns_error: errors.StatusError | None = None
    try:
        ns_matches = namespace_selector_matches(hook.namespace_selector, request, namespace_labels)
    except errors.StatusError as exc:
        ns_matches, ns_error = False, exc
    if not ns_matches and ns_error is None:
        return None
    obj_error: errors.StatusError | None = None
    if hook.object_selector.error:
        obj_matches, obj_error = False, errors.internal(hook.object_selector.error)
    else:
        obj_matches = object_selector_matches(hook.object_selector, request)
    if not obj_matches and obj_error is None:
        return None
    invocation: Invocation | None = None
    for rule in hook.rules:
        if rule_matches(rule, request, request.resource):
            invocation = Invocation(hook, request.resource, request.subresource, request.kind)
            break
    if invocation is None and hook.match_policy == "Equivalent":
        equivalents = [
            r for r in registry.storage_siblings(request.resource) if r != request.resource
        ]
        for rule in hook.rules:
            match = next((r for r in equivalents if rule_matches(rule, request, r)), None)
            if match is not None:
                invocation = Invocation(
                    hook, match, request.subresource, kind_for(match, request.subresource)
                )
                break
    if invocation is None:
        return None
    if ns_error is not None:
        raise ns_error
    if obj_error is not None:
        raise obj_error
    return invocation
