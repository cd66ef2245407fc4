"""core/v1 ReplicationControllers: defaults and validation as upstream's
``SetDefaults_ReplicationController`` and ``ValidateReplicationController*``."""

from __future__ import annotations

import copy
from typing import Any

from pilothouse.api import errors
from pilothouse.api.defaults import apply_defaults
from pilothouse.api.validation import validate_create, validate_status_update, validate_update

Obj = dict[str, Any]


def rc(**spec: Any) -> Obj:
    obj: Obj = {
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "template": {
                "metadata": {"labels": {"app": "web", "tier": "fe"}},
                "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}]},
            },
            **spec,
        },
    }
    apply_defaults("", "v1", "ReplicationController", obj)
    return obj


def messages(errs: list[errors.FieldError]) -> list[str]:
    return [e.message() for e in errs]


def test_defaults_take_selector_and_labels_from_the_template() -> None:
    obj = rc()
    assert obj["spec"]["selector"] == {"app": "web", "tier": "fe"}
    assert obj["metadata"]["labels"] == {"app": "web", "tier": "fe"}
    assert obj["spec"]["replicas"] == 1
    template_spec = obj["spec"]["template"]["spec"]
    assert template_spec["restartPolicy"] == "Always"
    assert template_spec["containers"][0]["terminationMessagePolicy"] == "File"
    # Given values stay.
    given = rc(selector={"app": "web"}, replicas=0)
    assert given["spec"]["selector"] == {"app": "web"} and given["spec"]["replicas"] == 0
    assert validate_create("", "v1", "ReplicationController", obj) == []
    assert validate_create("", "v1", "ReplicationController", given) == []


def test_missing_template_and_selector() -> None:
    obj: Obj = {"metadata": {"name": "web", "namespace": "default"}, "spec": {}}
    apply_defaults("", "v1", "ReplicationController", obj)
    errs = validate_create("", "v1", "ReplicationController", obj)
    assert messages(errs) == ["spec.selector: Required value", "spec.template: Required value"]


def test_spec_rules_in_upstreams_order() -> None:
    obj = rc(selector={"app": "other"}, replicas=-1, minReadySeconds=-2)
    obj["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    obj["spec"]["template"]["spec"]["activeDeadlineSeconds"] = 5
    errs = validate_create("", "v1", "ReplicationController", obj)
    assert messages(errs) == [
        "spec.minReadySeconds: Invalid value: -2: must be greater than or equal to 0",
        "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
        'spec.template.metadata.labels: Invalid value: map[string]string{"app":"web", '
        '"tier":"fe"}: `selector` does not match template `labels`',
        'spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always"',
        "spec.template.spec.activeDeadlineSeconds: Forbidden: "
        "activeDeadlineSeconds in ReplicationController is not Supported",
    ]
    status = errors.invalid("ReplicationController", "", "web", errs)
    assert status.message.startswith(
        'ReplicationController "web" is invalid: [spec.minReadySeconds'
    )


def test_names_are_dns_subdomains() -> None:
    obj = rc()
    obj["metadata"]["name"] = "Web_1"
    errs = validate_create("", "v1", "ReplicationController", obj)
    assert [e.field for e in errs] == ["metadata.name"]
    assert "a lowercase RFC 1123 subdomain" in errs[0].detail


def test_selector_may_change_on_update_but_must_still_match() -> None:
    old = rc()
    old["metadata"]["resourceVersion"] = "1"
    new = copy.deepcopy(old)
    new["spec"]["selector"] = {"app": "web"}
    assert validate_update("", "v1", "ReplicationController", new, old) == []
    bad = copy.deepcopy(old)
    bad["spec"]["replicas"] = -1
    errs = validate_update("", "v1", "ReplicationController", bad, old)
    # Upstream's strategy runs the create and the update rules: the error twice
    # (its message lists it once).
    assert [e.field for e in errs] == ["spec.replicas", "spec.replicas"]
    assert errors.invalid("ReplicationController", "", "web", errs).message == (
        'ReplicationController "web" is invalid: '
        "spec.replicas: Invalid value: -1: must be greater than or equal to 0"
    )


def test_status_counts() -> None:
    old = rc()
    new = copy.deepcopy(old)
    new["status"] = {"replicas": 1, "readyReplicas": 2, "availableReplicas": 3}
    errs = validate_status_update("", "v1", "ReplicationController", new, old)
    assert messages(errs) == [
        "status.readyReplicas: Invalid value: 2: cannot be greater than status.replicas",
        "status.availableReplicas: Invalid value: 3: cannot be greater than status.replicas",
        "status.availableReplicas: Invalid value: 3: cannot be greater than readyReplicas",
    ]
