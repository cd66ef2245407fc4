"""Webhook configurations, admission policies, bindings and APIServices: upstream's
defaults and validation messages."""

from __future__ import annotations

import copy
from typing import Any

from pilothouse.api import defaults, validation

GROUP = "admissionregistration.k8s.io"


def messages(
    kind: str, obj: dict[str, Any], old: dict[str, Any] | None = None, group: str = GROUP
) -> list[str]:
    obj = copy.deepcopy(obj)
    defaults.apply_defaults(group, "v1", kind, obj)
    if old is None:
        errs = validation.validate_create(group, "v1", kind, obj)
    else:
        old = copy.deepcopy(old)
        defaults.apply_defaults(group, "v1", kind, old)
        errs = validation.validate_update(group, "v1", kind, obj, old)
    return list(dict.fromkeys(e.message() for e in errs))


def webhook(**fields: Any) -> dict[str, Any]:
    hook: dict[str, Any] = {
        "name": "check.example.com",
        "clientConfig": {"service": {"namespace": "ns", "name": "svc"}},
        "rules": [
            {
                "operations": ["CREATE"],
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "resources": ["pods"],
            }
        ],
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
    }
    hook.update(fields)
    return hook


def config(*hooks: dict[str, Any], kind: str = "ValidatingWebhookConfiguration") -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": kind,
        "metadata": {"name": "c"},
        "webhooks": list(hooks),
    }


def test_webhook_defaults() -> None:
    obj = config(webhook(), kind="MutatingWebhookConfiguration")
    defaults.apply_defaults(GROUP, "v1", "MutatingWebhookConfiguration", obj)
    hook = obj["webhooks"][0]
    assert hook["failurePolicy"] == "Fail"
    assert hook["matchPolicy"] == "Equivalent"
    assert hook["namespaceSelector"] == {} and hook["objectSelector"] == {}
    assert hook["timeoutSeconds"] == 10
    assert hook["reinvocationPolicy"] == "Never"
    assert hook["rules"][0]["scope"] == "*"
    assert hook["clientConfig"]["service"]["port"] == 443
    assert "sideEffects" in hook  # given; v1 has no default for it
    validating = config(webhook())
    defaults.apply_defaults(GROUP, "v1", "ValidatingWebhookConfiguration", validating)
    assert "reinvocationPolicy" not in validating["webhooks"][0]


def test_a_good_configuration_passes() -> None:
    assert messages("ValidatingWebhookConfiguration", config(webhook())) == []
    assert (
        messages(
            "MutatingWebhookConfiguration", config(webhook(), kind="MutatingWebhookConfiguration")
        )
        == []
    )


def test_rules_and_resources() -> None:
    bad = webhook(
        rules=[
            {
                "operations": ["PATCH"],
                "apiGroups": ["*", "apps"],
                "apiVersions": [],
                "resources": ["*/*", "pods"],
                "scope": "Everywhere",
            }
        ]
    )
    assert messages("ValidatingWebhookConfiguration", config(bad)) == [
        'webhooks[0].rules[0].operations[0]: Unsupported value: "PATCH": supported values: "*", "CONNECT", "CREATE", "DELETE", "UPDATE"',
        'webhooks[0].rules[0].apiGroups: Invalid value: []string{"*", "apps"}: if \'*\' is present, must not specify other API groups',
        "webhooks[0].rules[0].apiVersions: Required value",
        'webhooks[0].rules[0].resources: Invalid value: []string{"*/*", "pods"}: if \'*/*\' is present, must not specify other resources',
        'webhooks[0].rules[0].scope: Unsupported value: "Everywhere": supported values: "*", "Cluster", "Namespaced"',
    ]
    sub = webhook(
        rules=[
            {
                "operations": ["*"],
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "resources": ["pods/*", "pods/status"],
            }
        ]
    )
    assert messages("ValidatingWebhookConfiguration", config(sub)) == [
        "webhooks[0].rules[0].resources[1]: Invalid value: \"pods/status\": if 'pods/*' is present, must not specify pods/status"
    ]


def test_client_config_and_names() -> None:
    both = webhook(clientConfig={"url": "https://x", "service": {"namespace": "a", "name": "b"}})
    assert messages("ValidatingWebhookConfiguration", config(both)) == [
        "webhooks[0].clientConfig: Required value: exactly one of url or service is required"
    ]
    service = webhook(
        clientConfig={"service": {"namespace": "", "name": "b", "path": "foo//bar", "port": 70000}}
    )
    got = messages("ValidatingWebhookConfiguration", config(service))
    assert got == [
        "webhooks[0].clientConfig.service.namespace: Required value: service namespace is required",
        "webhooks[0].clientConfig.service.port: Invalid value: 70000: port is not valid: must be "
        "between 1 and 65535, inclusive",
        "webhooks[0].clientConfig.service.path: Invalid value: \"foo//bar\": must start with a '/'",
        # Upstream drops the first character whether or not it is a slash.
        'webhooks[0].clientConfig.service.path: Invalid value: "foo//bar": segment[1] may not be empty',
    ]
    twice = config(webhook(), webhook())
    assert messages("ValidatingWebhookConfiguration", twice) == [
        'webhooks[1].name: Duplicate value: "check.example.com"'
    ]


def test_updates_keep_what_was_stored() -> None:
    # Stored before v1 required it: sideEffects Unknown may stay.
    old = config(webhook(sideEffects="Unknown"))
    new = config(webhook(sideEffects="Unknown", timeoutSeconds=5))
    assert messages("ValidatingWebhookConfiguration", new, old) == []
    assert messages("ValidatingWebhookConfiguration", new) == [
        'webhooks[0].sideEffects: Unsupported value: "Unknown": supported values: "None", "NoneOnDryRun"'
    ]


def policy(**spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "matchConstraints": {
            "resourceRules": [
                {
                    "operations": ["CREATE", "UPDATE"],
                    "apiGroups": ["apps"],
                    "apiVersions": ["v1"],
                    "resources": ["deployments"],
                }
            ]
        },
        "validations": [{"expression": "object.spec.replicas <= 5"}],
    }
    body.update(spec)
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": "max-replicas"},
        "spec": body,
    }


def test_policies() -> None:
    assert messages("ValidatingAdmissionPolicy", policy()) == []
    obj = policy()
    defaults.apply_defaults(GROUP, "v1", "ValidatingAdmissionPolicy", obj)
    assert obj["spec"]["failurePolicy"] == "Fail"
    assert obj["spec"]["matchConstraints"]["matchPolicy"] == "Equivalent"
    assert messages("ValidatingAdmissionPolicy", policy(validations=[], matchConstraints=None)) == [
        "spec.matchConstraints: Required value",
        "spec.validations: Required value: validations or auditAnnotations must contain at least one item",
        "spec.auditAnnotations: Required value: validations or auditAnnotations must contain at least one item",
    ]
    assert messages(
        "ValidatingAdmissionPolicy",
        policy(
            paramKind={"apiVersion": "v1/x/y", "kind": ""},
            variables=[{"name": "1bad", "expression": "1"}],
            validations=[{"expression": "true", "message": "two\nlines", "reason": "Teapot"}],
        ),
    ) == [
        'spec.paramKind.apiVersion: Invalid value: "v1/x/y": unexpected GroupVersion string: v1/x/y',
        "spec.paramKind.kind: Required value",
        'spec.variables[0].name: Invalid value: "1bad": name is not a valid CEL identifier',
        'spec.validations[0].message: Invalid value: "two\\nlines": message must not contain line breaks',
        'spec.validations[0].reason: Unsupported value: "Teapot": supported values: "Forbidden", "Invalid", "RequestEntityTooLarge"',
    ]


def binding(**spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"policyName": "max-replicas", "validationActions": ["Deny"]}
    body.update(spec)
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": "b"},
        "spec": body,
    }


def test_bindings() -> None:
    assert messages("ValidatingAdmissionPolicyBinding", binding()) == []
    assert messages(
        "ValidatingAdmissionPolicyBinding",
        binding(validationActions=["Deny", "Warn", "Deny"], paramRef={"name": "p", "selector": {}}),
    ) == [
        "spec.paramRef.name: Forbidden: name and selector are mutually exclusive",
        "spec.paramRef.selector: Forbidden: name and selector are mutually exclusive",
        "spec.paramRef.parameterNotFoundAction: Required value",
        'spec.validationActions[2]: Duplicate value: "Deny"',
        'spec.validationActions: Invalid value: []admissionregistration.ValidationAction{"Deny", "Warn", "Deny"}: must not contain both Deny and Warn (repeating the same validation failure information in the API response and headers serves no purpose)',
    ]
    assert messages(
        "ValidatingAdmissionPolicyBinding", binding(validationActions=[], policyName="")
    ) == [
        "spec.policyName: Required value",
        "spec.validationActions: Required value: at least one validation action is required",
    ]


def test_api_services() -> None:
    good = {
        "apiVersion": "apiregistration.k8s.io/v1",
        "kind": "APIService",
        "metadata": {"name": "v1beta1.metrics.k8s.io"},
        "spec": {
            "group": "metrics.k8s.io",
            "version": "v1beta1",
            "groupPriorityMinimum": 100,
            "versionPriority": 100,
            "service": {"namespace": "kube-system", "name": "metrics-server"},
            "insecureSkipTLSVerify": True,
        },
    }
    assert messages("APIService", good, group="apiregistration.k8s.io") == []
    local = copy.deepcopy(good)
    local["spec"].pop("service")
    local["spec"]["caBundle"] = "Zm9v"
    assert messages("APIService", local, group="apiregistration.k8s.io") == [
        'spec.caBundle: Invalid value: "3 bytes": local APIServices may not have a caBundle',
        "spec.insecureSkipTLSVerify: Invalid value: true: local APIServices may not have insecureSkipTLSVerify",
    ]
    core = copy.deepcopy(good)
    core["metadata"]["name"] = "v2."
    core["spec"].update(group="", version="v2")
    assert messages("APIService", core, group="apiregistration.k8s.io") == [
        "spec.group: Required value: only v1 may have an empty group and it better be legacy kube"
    ]
