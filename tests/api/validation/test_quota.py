"""ResourceQuota and LimitRange validation, worded as upstream's."""

from __future__ import annotations

from typing import Any

from pilothouse.api import defaults, validation

Obj = dict[str, Any]


def quota(spec: Obj) -> list[str]:
    obj = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "q", "namespace": "d"},
        "spec": spec,
    }
    defaults.apply_defaults("", "v1", "ResourceQuota", obj)
    return [e.message() for e in validation.validate_create("", "v1", "ResourceQuota", obj)]


def limits(*items: Obj) -> list[str]:
    obj = {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": {"name": "l", "namespace": "d"},
        "spec": {"limits": list(items)},
    }
    defaults.apply_defaults("", "v1", "LimitRange", obj)
    return [e.message() for e in validation.validate_create("", "v1", "LimitRange", obj)]


def test_a_resource_quota_does_not_know() -> None:
    assert quota({"hard": {"foo": "1"}}) == [
        'spec.hard[foo]: Invalid value: "foo": must be a standard resource type or fully qualified',
        'spec.hard[foo]: Invalid value: "foo": must be a standard resource for quota',
    ]
    assert quota({"hard": {"storage": "1Gi"}}) == [
        'spec.hard[storage]: Invalid value: "storage": must be a standard resource for quota'
    ]
    # Qualified names are accepted; the controller tracks those it can count.
    assert quota({"hard": {"count/widgets.example.com": "3", "requests.nvidia.com/gpu": "1"}}) == []


def test_values() -> None:
    assert quota({"hard": {"pods": "1500m"}}) == [
        'spec.hard[pods]: Invalid value: "1500m": must be an integer'
    ]
    assert quota({"hard": {"cpu": "-1"}}) == [
        'spec.hard[cpu]: Invalid value: "-1": must be greater than or equal to 0'
    ]


def test_scopes() -> None:
    assert quota({"hard": {"pods": "1"}, "scopes": ["BestEffort", "NotBestEffort"]}) == [
        'spec.scopes: Invalid value: []core.ResourceQuotaScope{"BestEffort", "NotBestEffort"}: '
        "conflicting scopes"
    ]
    assert quota({"hard": {"services": "1"}, "scopes": ["Terminating"]}) == [
        'spec.scopes: Invalid value: []core.ResourceQuotaScope{"Terminating"}: unsupported '
        "scope applied to resource"
    ]
    assert quota({"hard": {"pods": "1"}, "scopes": ["Weekend"]}) == [
        'spec.scopes: Invalid value: []core.ResourceQuotaScope{"Weekend"}: unsupported scope'
    ]
    selector = {
        "matchExpressions": [{"scopeName": "PriorityClass", "operator": "In", "values": []}]
    }
    assert quota({"hard": {"pods": "1"}, "scopeSelector": selector}) == [
        "spec.scopeSelector.matchExpressions.values: Required value: must be at least one value "
        "when `operator` is 'In' or 'NotIn' for scope selector"
    ]
    exists_only = {
        "matchExpressions": [{"scopeName": "BestEffort", "operator": "In", "values": ["x"]}]
    }
    assert quota({"hard": {"pods": "1"}, "scopeSelector": exists_only}) == [
        "spec.scopeSelector.matchExpressions.operator: Invalid value: \"In\": must be 'Exists' "
        "when scope is any of ResourceQuotaScopeTerminating, ResourceQuotaScopeNotTerminating, "
        "ResourceQuotaScopeBestEffort, ResourceQuotaScopeNotBestEffort or "
        "ResourceQuotaScopeCrossNamespacePodAffinity"
    ]


def test_scopes_are_immutable() -> None:
    old = {
        "metadata": {"name": "q", "namespace": "d", "resourceVersion": "1"},
        "spec": {"hard": {"pods": "1"}, "scopes": ["BestEffort"]},
    }
    new = {
        "metadata": {"name": "q", "namespace": "d", "resourceVersion": "1"},
        "spec": {"hard": {"pods": "1"}},
    }
    errs = validation.validate_update("", "v1", "ResourceQuota", new, old)
    assert [e.message() for e in errs] == [
        "spec.scopes: Invalid value: []core.ResourceQuotaScope(nil): field is immutable"
    ]


def test_limit_ranges() -> None:
    assert limits({"type": "Container", "min": {"cpu": "2"}, "max": {"cpu": "1"}}) == [
        'spec.limits[0].min[cpu]: Invalid value: "2": min value 2 is greater than max value 1',
        'spec.limits[0].defaultRequest[cpu]: Invalid value: "1": min value 2 is greater than '
        "default request value 1",
        'spec.limits[0].default[cpu]: Invalid value: "2": min value 2 is greater than default value 1',
    ]
    assert limits({"type": "Pod", "default": {"cpu": "1"}}) == [
        "spec.limits[0].default: Forbidden: may not be specified when `type` is 'Pod'"
    ]
    assert limits({"type": "PersistentVolumeClaim", "max": {"cpu": "1"}}) == [
        "spec.limits[0].limits: Required value: either minimum or maximum storage value is "
        "required, but neither was provided"
    ]
    assert limits({"type": "Container", "maxLimitRequestRatio": {"cpu": "500m"}}) == [
        'spec.limits[0].maxLimitRequestRatio[cpu]: Invalid value: "500m": ratio 500m is less than 1'
    ]
    assert limits({"type": "Widget"}) == [
        'spec.limits[0].type: Invalid value: "Widget": must be a standard limit type or fully qualified'
    ]
    assert limits({"type": "Container"}, {"type": "Container"}) == [
        'spec.limits[1].type: Duplicate value: "Container"'
    ]
    assert limits({"type": "Container", "max": {"cpu": "1"}, "min": {"cpu": "100m"}}) == []
