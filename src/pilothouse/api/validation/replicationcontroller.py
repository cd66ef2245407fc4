"""core/v1 ReplicationControllers (``ValidateReplicationController*`` in
``pkg/apis/core/validation``).

Unlike a ReplicaSet's, an RC's selector is a plain label map, may be changed
by an update, and must not be empty; the template is optional in the type
but required here.
"""

from __future__ import annotations

from typing import Any

from pilothouse.api import errors
from pilothouse.api.errors import FieldError
from pilothouse.api.validation import apps, meta, names
from pilothouse.api.validation.fields import as_dict


def _spec(spec: dict[str, Any]) -> list[FieldError]:
    errs = meta.validate_nonnegative(spec.get("minReadySeconds"), "spec.minReadySeconds")
    selector = as_dict(spec.get("selector"))
    if not selector:
        errs.append(errors.required("spec.selector"))
    errs += meta.validate_nonnegative(spec.get("replicas"), "spec.replicas")
    template = spec.get("template")
    if not isinstance(template, dict):
        errs.append(errors.required("spec.template"))
        return errs
    labels = as_dict(as_dict(template.get("metadata")).get("labels"))
    if selector and any(labels.get(k) != v for k, v in selector.items()):
        errs.append(
            errors.invalid_value(
                "spec.template.metadata.labels",
                errors.go_string_map(as_dict(template.get("metadata")).get("labels")),
                "`selector` does not match template `labels`",
            )
        )
    return errs + apps.pod_template_rules(spec, "ReplicationController")


def validate_replication_controller(obj: dict[str, Any]) -> list[FieldError]:
    errs = meta.validate_object_meta(obj, namespaced=True, name_fn=names.name_is_dns_subdomain)
    return errs + _spec(as_dict(obj.get("spec")))


def validate_replication_controller_update(
    new: dict[str, Any], old: dict[str, Any]
) -> list[FieldError]:
    # Upstream runs the create rules and the update rules, metadata checked by both.
    return validate_replication_controller(new) + (
        meta.validate_object_meta_update(new, old) + _spec(as_dict(new.get("spec")))
    )
