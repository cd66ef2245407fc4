"""Defaults of ``admissionregistration.k8s.io/v1`` (``pkg/apis/admissionregistration/v1``)
and of ``apiregistration.k8s.io/v1`` APIServices.

Webhooks: ``failurePolicy: Fail``, ``matchPolicy: Equivalent``, empty namespace and
object selectors, ``timeoutSeconds: 10``, a mutating webhook's ``reinvocationPolicy:
Never``, every rule's ``scope: "*"`` and a Service reference's ``port: 443``.
``sideEffects`` and ``admissionReviewVersions`` have no default in v1: validation
requires them. Policies: ``failurePolicy: Fail`` and the same match-resource
defaults as webhooks.
"""

from __future__ import annotations

from typing import Any


def _rules(rules: Any) -> None:
    for rule in rules if isinstance(rules, list) else ():
        if isinstance(rule, dict) and rule.get("scope") is None:
            rule["scope"] = "*"


def _client_config(config: Any) -> None:
    if not isinstance(config, dict):
        return
    service = config.get("service")
    if isinstance(service, dict) and service.get("port") is None:
        service["port"] = 443


def _webhook(hook: dict[str, Any], *, mutating: bool) -> None:
    if hook.get("failurePolicy") is None:
        hook["failurePolicy"] = "Fail"
    if hook.get("matchPolicy") is None:
        hook["matchPolicy"] = "Equivalent"
    if hook.get("namespaceSelector") is None:
        hook["namespaceSelector"] = {}
    if hook.get("objectSelector") is None:
        hook["objectSelector"] = {}
    if hook.get("timeoutSeconds") is None:
        hook["timeoutSeconds"] = 10
    if mutating and hook.get("reinvocationPolicy") is None:
        hook["reinvocationPolicy"] = "Never"
    _rules(hook.get("rules"))
    _client_config(hook.get("clientConfig"))


def _webhooks(obj: dict[str, Any], *, mutating: bool) -> None:
    hooks = obj.get("webhooks")
    for hook in hooks if isinstance(hooks, list) else ():
        if isinstance(hook, dict):
            _webhook(hook, mutating=mutating)


def mutating_webhook_configuration(obj: dict[str, Any]) -> None:
    _webhooks(obj, mutating=True)


def validating_webhook_configuration(obj: dict[str, Any]) -> None:
    _webhooks(obj, mutating=False)


def _match_resources(match: Any) -> None:
    if not isinstance(match, dict):
        return
    if match.get("matchPolicy") is None:
        match["matchPolicy"] = "Equivalent"
    if match.get("namespaceSelector") is None:
        match["namespaceSelector"] = {}
    if match.get("objectSelector") is None:
        match["objectSelector"] = {}
    _rules(match.get("resourceRules"))
    _rules(match.get("excludeResourceRules"))


def validating_admission_policy(obj: dict[str, Any]) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    if spec.get("failurePolicy") is None:
        spec["failurePolicy"] = "Fail"
    _match_resources(spec.get("matchConstraints"))


def validating_admission_policy_binding(obj: dict[str, Any]) -> None:
    spec = obj.get("spec")
    if isinstance(spec, dict):
        _match_resources(spec.get("matchResources"))


def api_service(obj: dict[str, Any]) -> None:
    spec = obj.get("spec")
    if isinstance(spec, dict):
        service = spec.get("service")
        if isinstance(service, dict) and service.get("port") is None:
            service["port"] = 443


DEFAULTERS = {
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"): (
        mutating_webhook_configuration
    ),
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"): (
        validating_webhook_configuration
    ),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"): validating_admission_policy,
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"): (
        validating_admission_policy_binding
    ),
    ("apiregistration.k8s.io", "APIService"): api_service,
}
