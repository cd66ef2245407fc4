"""apps/v1: Deployments, ReplicaSets, StatefulSets, DaemonSets, ControllerRevisions.

Follows ``pkg/apis/apps/validation`` plus the apps/v1 strategies' rule that a
workload's ``spec.selector`` never changes.
"""

from __future__ import annotations

from typing import Any

from pilothouse.api import errors, gostrings, intstr
from pilothouse.api.errors import FieldError
from pilothouse.api.validation import meta, names, pods
from pilothouse.api.validation.fields import (
    as_dict,
    as_int,
    as_list,
    as_str,
    is_int,
    semantic_equal,
)


def go_selector(selector: Any) -> errors.GoValue:
    """A label selector as upstream prints a ``*metav1.LabelSelector`` (``%#v``)."""
    selector = as_dict(selector)
    labels = (
        errors.go_string_map(selector.get("matchLabels"))
        if selector.get("matchLabels")
        else "map[string]string(nil)"
    )
    exprs = as_list(selector.get("matchExpressions"))
    if exprs:
        parts = []
        for e in exprs:
            e = as_dict(e)
            values = errors.go_string_list(e.get("values")) if e.get("values") else "[]string(nil)"
            parts.append(
                f'v1.LabelSelectorRequirement{{Key:"{as_str(e.get("key"))}", Operator:"{as_str(e.get("operator"))}", Values:{values!r}}}'
            )
        expr_text = "[]v1.LabelSelectorRequirement{" + ", ".join(parts) + "}"
    else:
        expr_text = "[]v1.LabelSelectorRequirement(nil)"
    return errors.GoValue(
        f"&v1.LabelSelector{{MatchLabels:{labels!r}, MatchExpressions:{expr_text}}}"
    )


def go_intstr(value: Any) -> errors.GoValue:
    """An IntOrString as upstream prints one (``%#v``)."""
    if intstr.is_int(value):
        return errors.GoValue(f'intstr.IntOrString{{Type:0, IntVal:{value}, StrVal:""}}')
    return errors.GoValue(
        f"intstr.IntOrString{{Type:1, IntVal:0, StrVal:{gostrings.quote(as_str(value))}}}"
    )


def int_or_percent_value(value: Any) -> int:
    percent = intstr.percent_value(value)
    return percent if percent is not None else intstr.int_value(value)


def validate_positive_int_or_percent(value: Any, path: str) -> list[FieldError]:
    if isinstance(value, str):
        return [
            errors.invalid_value(path, go_intstr(value), m) for m in names.is_valid_percent(value)
        ]
    if intstr.is_int(value):
        return meta.validate_nonnegative(value, path)
    return [
        errors.invalid_value(
            path, errors.GoValue(repr(value)), "must be an integer or percentage (e.g '5%%')"
        )
    ]


def not_more_than_100_percent(value: Any, path: str) -> list[FieldError]:
    percent = intstr.percent_value(value)
    if percent is None or percent <= 100:
        return []
    return [errors.invalid_value(path, go_intstr(value), "must not be greater than 100%")]


def _template_labels(spec: dict[str, Any]) -> dict[str, Any]:
    return as_dict(as_dict(as_dict(spec.get("template")).get("metadata")).get("labels"))


def _selector_matches_template(spec: dict[str, Any]) -> list[FieldError]:
    """A nil selector matches nothing, an empty one everything (LabelSelectorAsSelector)."""
    selector = spec.get("selector")
    labels = _template_labels(spec)
    if selector is not None and meta.label_selector_matches(selector, labels):
        return []
    return [
        errors.invalid_value(
            "spec.template.metadata.labels",
            errors.go_string_map(labels),
            "`selector` does not match template `labels`",
        )
    ]


def _selector_and_template(
    spec: dict[str, Any], kind: str, invalid_detail: str
) -> tuple[list[FieldError], bool]:
    """Selector rules; also whether upstream goes on to check the template."""
    errs: list[FieldError] = []
    selector = spec.get("selector")
    if selector is None:
        errs.append(errors.required("spec.selector"))
    else:
        errs.extend(meta.validate_label_selector(selector, "spec.selector"))
        sel = as_dict(selector)
        if not as_dict(sel.get("matchLabels")) and not as_list(sel.get("matchExpressions")):
            errs.append(
                errors.invalid_value(
                    "spec.selector", go_selector(selector), f"empty selector is invalid for {kind}"
                )
            )
    if selector is not None and not meta.label_selector_is_valid(selector):
        errs.append(errors.invalid_value("spec.selector", go_selector(selector), invalid_detail))
        return errs, False
    return errs + _selector_matches_template(spec), True


def pod_template_rules(spec: dict[str, Any], kind_label: str) -> list[FieldError]:
    """A replicating controller's template: valid, restarted always, never deadlined
    (also core/v1 ReplicationControllers')."""
    template = as_dict(spec.get("template"))
    tspec = as_dict(template.get("spec"))
    errs = pods.validate_pod_template_spec(template, "spec.template")
    restart = tspec.get("restartPolicy")
    if restart != "Always":
        errs.append(
            errors.not_supported("spec.template.spec.restartPolicy", as_str(restart), ("Always",))
        )
    if tspec.get("activeDeadlineSeconds") is not None:
        errs.append(
            errors.field_forbidden(
                "spec.template.spec.activeDeadlineSeconds",
                f"activeDeadlineSeconds in {kind_label} is not Supported",
            )
        )
    return errs


def _replica_set_spec(spec: dict[str, Any], kind: str) -> list[FieldError]:
    errs = meta.validate_nonnegative(spec.get("replicas"), "spec.replicas")
    if kind == "replicaset":
        errs += meta.validate_nonnegative(spec.get("minReadySeconds"), "spec.minReadySeconds")
    selector_errs, check_template = _selector_and_template(
        spec, "deployment", "invalid label selector"
    )
    errs += selector_errs
    if check_template:
        errs += pod_template_rules(spec, "ReplicaSet")
    return errs


def validate_deployment(obj: dict[str, Any]) -> list[FieldError]:
    errs = meta.validate_object_meta(obj, namespaced=True, name_fn=names.name_is_dns_subdomain)
    spec = as_dict(obj.get("spec"))
    errs += _replica_set_spec(spec, "deployment")
    strategy = as_dict(spec.get("strategy"))
    kind = strategy.get("type")
    if kind == "Recreate":
        if strategy.get("rollingUpdate") is not None:
            errs.append(
                errors.field_forbidden(
                    "spec.strategy.rollingUpdate",
                    "may not be specified when strategy `type` is 'Recreate'",
                )
            )
    elif kind == "RollingUpdate":
        rolling = strategy.get("rollingUpdate")
        if not isinstance(rolling, dict):
            errs.append(
                errors.required(
                    "spec.strategy.rollingUpdate", "this should be defaulted and never be nil"
                )
            )
        else:
            path = "spec.strategy.rollingUpdate"
            unavailable, surge = rolling.get("maxUnavailable"), rolling.get("maxSurge")
            errs += validate_positive_int_or_percent(unavailable, f"{path}.maxUnavailable")
            errs += validate_positive_int_or_percent(surge, f"{path}.maxSurge")
            if int_or_percent_value(unavailable) == 0 and int_or_percent_value(surge) == 0:
                errs.append(
                    errors.invalid_value(
                        f"{path}.maxUnavailable",
                        go_intstr(unavailable),
                        "may not be 0 when `maxSurge` is 0",
                    )
                )
            errs += not_more_than_100_percent(unavailable, f"{path}.maxUnavailable")
    else:
        errs.append(
            errors.not_supported(
                "spec.strategy", errors.GoValue(repr(strategy)), ("Recreate", "RollingUpdate")
            )
        )
    errs += meta.validate_nonnegative(spec.get("minReadySeconds"), "spec.minReadySeconds")
    errs += meta.validate_nonnegative(spec.get("revisionHistoryLimit"), "spec.revisionHistoryLimit")
    rollback = spec.get("rollbackTo")
    if isinstance(rollback, dict):
        errs += meta.validate_nonnegative(rollback.get("revision"), "spec.rollback.version")
    deadline = spec.get("progressDeadlineSeconds")
    if is_int(deadline):
        errs += meta.validate_nonnegative(deadline, "spec.progressDeadlineSeconds")
        min_ready = as_int(spec.get("minReadySeconds"))
        if deadline <= min_ready:
            errs.append(
                errors.invalid_value(
                    "spec.progressDeadlineSeconds", deadline, "must be greater than minReadySeconds"
                )
            )
    return errs


def _selector_immutable(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    selector = as_dict(new.get("spec")).get("selector")
    if semantic_equal(selector, as_dict(old.get("spec")).get("selector")):
        return []
    return [errors.invalid_value("spec.selector", go_selector(selector), meta.FIELD_IMMUTABLE)]


def validate_deployment_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    errs = meta.validate_object_meta_update(new, old)
    errs += [e for e in validate_deployment(new) if not e.field.startswith("metadata")]
    return errs + _selector_immutable(new, old)


def validate_replica_set(obj: dict[str, Any]) -> list[FieldError]:
    errs = meta.validate_object_meta(obj, namespaced=True, name_fn=names.name_is_dns_subdomain)
    return errs + _replica_set_spec(as_dict(obj.get("spec")), "replicaset")


def validate_replica_set_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    errs = meta.validate_object_meta_update(new, old)
    errs += _replica_set_spec(as_dict(new.get("spec")), "replicaset")
    return errs + _selector_immutable(new, old)


def _daemon_set_spec(spec: dict[str, Any]) -> list[FieldError]:
    errs = meta.validate_label_selector(spec.get("selector"), "spec.selector")
    selector = spec.get("selector")
    if meta.label_selector_is_valid(selector):
        errs += _selector_matches_template(spec)
    sel = as_dict(selector)
    if (
        selector is not None
        and not as_dict(sel.get("matchLabels"))
        and not as_list(sel.get("matchExpressions"))
    ):
        errs.append(
            errors.invalid_value(
                "spec.selector", go_selector(selector), "empty selector is invalid for daemonset"
            )
        )
    errs += pod_template_rules(spec, "DaemonSet")
    errs += meta.validate_nonnegative(spec.get("minReadySeconds"), "spec.minReadySeconds")
    strategy = as_dict(spec.get("updateStrategy"))
    kind = strategy.get("type")
    path = "spec.updateStrategy"
    if kind == "RollingUpdate":
        rolling = strategy.get("rollingUpdate")
        if not isinstance(rolling, dict):
            errs.append(errors.required(f"{path}.rollingUpdate"))
        else:
            unavailable, surge = rolling.get("maxUnavailable"), rolling.get("maxSurge")
            rpath = f"{path}.rollingUpdate"
            errs += validate_positive_int_or_percent(unavailable, f"{rpath}.maxUnavailable")
            errs += validate_positive_int_or_percent(surge, f"{rpath}.maxSurge")
            errs += not_more_than_100_percent(unavailable, f"{rpath}.maxUnavailable")
            errs += not_more_than_100_percent(surge, f"{rpath}.maxSurge")
            has_unavailable = int_or_percent_value(unavailable) != 0
            has_surge = int_or_percent_value(surge) != 0
            if has_unavailable and has_surge:
                errs.append(
                    errors.invalid_value(
                        f"{rpath}.maxSurge",
                        go_intstr(surge),
                        "may not be set when maxUnavailable is non-zero",
                    )
                )
            elif not has_unavailable and not has_surge:
                errs.append(
                    errors.required(f"{rpath}.maxUnavailable", "cannot be 0 when maxSurge is 0")
                )
    elif kind != "OnDelete":
        errs.append(
            errors.not_supported(
                path, errors.GoValue(repr(strategy)), ("RollingUpdate", "OnDelete")
            )
        )
    errs += meta.validate_nonnegative(spec.get("revisionHistoryLimit"), "spec.revisionHistoryLimit")
    return errs


def validate_daemon_set(obj: dict[str, Any]) -> list[FieldError]:
    errs = meta.validate_object_meta(obj, namespaced=True, name_fn=names.name_is_dns_subdomain)
    return errs + _daemon_set_spec(as_dict(obj.get("spec")))


def validate_daemon_set_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    errs = meta.validate_object_meta_update(new, old) + _daemon_set_spec(as_dict(new.get("spec")))
    return errs + _selector_immutable(new, old)


def _stateful_set_spec(spec: dict[str, Any]) -> list[FieldError]:
    errs: list[FieldError] = []
    policy = spec.get("podManagementPolicy")
    if not policy:
        errs.append(errors.required("spec.podManagementPolicy"))
    elif policy not in ("OrderedReady", "Parallel"):
        errs.append(
            errors.invalid_value(
                "spec.podManagementPolicy", policy, "must be 'OrderedReady' or 'Parallel'"
            )
        )
    strategy = as_dict(spec.get("updateStrategy"))
    kind = strategy.get("type")
    rolling = strategy.get("rollingUpdate")
    if not kind:
        errs.append(errors.required("spec.updateStrategy"))
    elif kind == "OnDelete":
        if rolling is not None:
            errs.append(
                errors.invalid_value(
                    "spec.updateStrategy.rollingUpdate",
                    errors.GoValue(repr(rolling)),
                    "only allowed for updateStrategy 'RollingUpdate'",
                )
            )
    elif kind == "RollingUpdate":
        if isinstance(rolling, dict):
            rpath = "spec.updateStrategy.rollingUpdate"
            errs += meta.validate_nonnegative(rolling.get("partition"), f"{rpath}.partition")
            unavailable = rolling.get("maxUnavailable")
            if unavailable is not None:
                errs += validate_positive_int_or_percent(unavailable, f"{rpath}.maxUnavailable")
                if int_or_percent_value(unavailable) == 0:
                    errs.append(
                        errors.invalid_value(
                            f"{rpath}.maxUnavailable", go_intstr(unavailable), "cannot be 0"
                        )
                    )
                errs += not_more_than_100_percent(unavailable, f"{rpath}.maxUnavailable")
    else:
        errs.append(
            errors.invalid_value(
                "spec.updateStrategy",
                errors.GoValue(repr(strategy)),
                "must be 'RollingUpdate' or 'OnDelete'",
            )
        )
    retention = spec.get("persistentVolumeClaimRetentionPolicy")
    if isinstance(retention, dict):
        for key in ("whenDeleted", "whenScaled"):
            value = as_str(retention.get(key))
            if value not in ("Retain", "Delete"):
                errs.append(
                    errors.not_supported(
                        f"spec.persistentVolumeClaimRetentionPolicy.{key}",
                        value,
                        ("Retain", "Delete"),
                    )
                )
    errs += meta.validate_nonnegative(spec.get("replicas"), "spec.replicas")
    errs += meta.validate_nonnegative(spec.get("minReadySeconds"), "spec.minReadySeconds")
    ordinals = spec.get("ordinals")
    if isinstance(ordinals, dict):
        errs += meta.validate_nonnegative(ordinals.get("start"), "spec.ordinals.start")
    selector_errs, check_template = _selector_and_template(spec, "statefulset", "")
    errs += selector_errs
    template = as_dict(spec.get("template"))
    template_meta = as_dict(template.get("metadata"))
    if check_template:
        # Upstream checks only the template's metadata here, not its pod spec.
        errs += meta.validate_labels(template_meta.get("labels"), "spec.template.labels")
        errs += meta.validate_annotations(
            template_meta.get("annotations"), "spec.template.annotations"
        )
        errs += pods.pod_specific_annotations(
            template_meta.get("annotations"),
            as_dict(template.get("spec")),
            "spec.template.annotations",
        )
    tspec = as_dict(template.get("spec"))
    if tspec.get("restartPolicy") != "Always":
        errs.append(
            errors.not_supported(
                "spec.template.spec.restartPolicy", as_str(tspec.get("restartPolicy")), ("Always",)
            )
        )
    if tspec.get("activeDeadlineSeconds") is not None:
        errs.append(
            errors.field_forbidden(
                "spec.template.spec.activeDeadlineSeconds",
                "activeDeadlineSeconds in StatefulSet is not Supported",
            )
        )
    return errs


def validate_stateful_set(obj: dict[str, Any]) -> list[FieldError]:
    errs = meta.validate_object_meta(obj, namespaced=True, name_fn=names.name_is_dns_label)
    return errs + _stateful_set_spec(as_dict(obj.get("spec")))


_STS_MUTABLE = (
    "replicas",
    "template",
    "updateStrategy",
    "minReadySeconds",
    "ordinals",
    "persistentVolumeClaimRetentionPolicy",
)


def validate_stateful_set_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    errs = meta.validate_object_meta_update(new, old) + _stateful_set_spec(as_dict(new.get("spec")))
    spec = {k: v for k, v in as_dict(new.get("spec")).items() if k not in _STS_MUTABLE}
    old_spec = {k: v for k, v in as_dict(old.get("spec")).items() if k not in _STS_MUTABLE}
    if not semantic_equal(spec, old_spec):
        errs.append(
            errors.field_forbidden(
                "spec",
                "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
            )
        )
    return errs


def validate_controller_revision(obj: dict[str, Any]) -> list[FieldError]:
    errs = meta.validate_object_meta(obj, namespaced=True, name_fn=names.name_is_dns_subdomain)
    if obj.get("data") is None:
        errs.append(errors.required("data", "data is mandatory"))
    return errs + meta.validate_nonnegative(obj.get("revision"), "revision")


def validate_controller_revision_update(
    new: dict[str, Any], old: dict[str, Any]
) -> list[FieldError]:
    errs = meta.validate_object_meta_update(new, old) + validate_controller_revision(new)
    return errs + meta.validate_immutable(
        new.get("data"), old.get("data"), "data", shown=errors.GoValue(repr(new.get("data")))
    )
