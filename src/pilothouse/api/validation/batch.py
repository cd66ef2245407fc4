"""batch/v1: Jobs and CronJobs (``pkg/apis/batch/validation``).

A Job's generated selector is checked as upstream checks it: unless
``spec.manualSelector`` is true the object must carry its ``metadata.uid`` and the
template the ``controller-uid``/``job-name`` labels the strategy adds on create.
"""

from __future__ import annotations

from typing import Any

from pilothouse.api import errors
from pilothouse.api.errors import FieldError
from pilothouse.api.validation import apps, cron, meta, names, pods
from pilothouse.api.validation.fields import as_dict, as_list, as_str, is_int, semantic_equal

CONTROLLER_UID_LABEL = "batch.kubernetes.io/controller-uid"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
LEGACY_CONTROLLER_UID_LABEL = "controller-uid"
LEGACY_JOB_NAME_LABEL = "job-name"
_MAX_PARALLELISM_INDEXED = 100_000
_MAX_FAILED_INDEXES = 100_000
_ACTIONS = ("Count", "FailIndex", "FailJob", "Ignore")


def _has_label(labels: dict[str, Any], key: str, expected: str, path: str) -> list[FieldError]:
    if key not in labels:
        return [errors.required(f"{path}.labels[{key}]", f"must be '{expected}'")]
    if labels[key] != expected:
        return [
            errors.invalid_value(
                f"{path}.labels[{key}]", errors.go_string_map(labels), f"must be '{expected}'"
            )
        ]
    return []


def _generated_selector(job: dict[str, Any]) -> list[FieldError]:
    spec = as_dict(job.get("spec"))
    if spec.get("manualSelector") is True or spec.get("selector") is None:
        return []
    job_meta = as_dict(job.get("metadata"))
    uid, name = as_str(job_meta.get("uid")), as_str(job_meta.get("name"))
    errs: list[FieldError] = []
    if not uid:
        errs.append(errors.required("metadata.uid"))
    labels = as_dict(as_dict(as_dict(spec.get("template")).get("metadata")).get("labels"))
    path = "spec.template.metadata"
    for key, expected in (
        (LEGACY_CONTROLLER_UID_LABEL, uid),
        (LEGACY_JOB_NAME_LABEL, name),
        (CONTROLLER_UID_LABEL, uid),
        (JOB_NAME_LABEL, name),
    ):
        errs.extend(_has_label(labels, key, expected, path))
    expected_labels = {
        CONTROLLER_UID_LABEL: uid,
        JOB_NAME_LABEL: name,
        LEGACY_CONTROLLER_UID_LABEL: uid,
        LEGACY_JOB_NAME_LABEL: name,
    }
    selector = spec.get("selector")
    if meta.label_selector_is_valid(selector) and not meta.label_selector_matches(
        selector, expected_labels
    ):
        errs.append(
            errors.invalid_value(
                "spec.selector", apps.go_selector(selector), "`selector` not auto-generated"
            )
        )
    return errs


def _pod_failure_policy(spec: dict[str, Any], path: str) -> list[FieldError]:
    policy = as_dict(spec.get("podFailurePolicy"))
    rules = as_list(policy.get("rules"))
    errs: list[FieldError] = []
    if len(rules) > 20:
        errs.append(errors.too_many(f"{path}.rules", len(rules), 20))
    tspec = as_dict(as_dict(spec.get("template")).get("spec"))
    container_names = {
        as_str(as_dict(c).get("name"))
        for key in ("containers", "initContainers")
        for c in as_list(tspec.get(key))
    }
    for i, rule in enumerate(rules):
        rule = as_dict(rule)
        rpath = f"{path}.rules[{i}]"
        action = as_str(rule.get("action"))
        if not action:
            errs.append(
                errors.required(
                    f"{rpath}.action", 'valid values: ["Count" "FailIndex" "FailJob" "Ignore"]'
                )
            )
        elif action == "FailIndex":
            if spec.get("backoffLimitPerIndex") is None:
                errs.append(
                    errors.invalid_value(
                        f"{rpath}.action", action, "requires the backoffLimitPerIndex to be set"
                    )
                )
        elif action not in _ACTIONS:
            errs.append(errors.not_supported(f"{rpath}.action", action, _ACTIONS))
        exit_codes = rule.get("onExitCodes")
        conditions = as_list(rule.get("onPodConditions"))
        if isinstance(exit_codes, dict):
            errs.extend(_on_exit_codes(exit_codes, f"{rpath}.onExitCodes", container_names))
        for j, pattern in enumerate(conditions):
            pattern = as_dict(pattern)
            ppath = f"{rpath}.onPodConditions[{j}]"
            kind = as_str(pattern.get("type"))
            errs.extend(
                errors.invalid_value(f"{ppath}.type", kind, m)
                for m in names.is_qualified_name(kind)
            )
            status = as_str(pattern.get("status"))
            if not status:
                errs.append(
                    errors.required(f"{ppath}.status", 'valid values: ["False" "True" "Unknown"]')
                )
            elif status not in ("False", "True", "Unknown"):
                errs.append(
                    errors.not_supported(f"{ppath}.status", status, ("False", "True", "Unknown"))
                )
        if exit_codes is not None and conditions:
            errs.append(
                errors.invalid_value(
                    rpath,
                    errors.OMITTED,
                    "specifying both OnExitCodes and OnPodConditions is not supported",
                )
            )
        if exit_codes is None and not conditions:
            errs.append(
                errors.invalid_value(
                    rpath,
                    errors.OMITTED,
                    "specifying one of OnExitCodes and OnPodConditions is required",
                )
            )
    return errs


def _on_exit_codes(req: dict[str, Any], path: str, container_names: set[str]) -> list[FieldError]:
    errs: list[FieldError] = []
    operator = as_str(req.get("operator"))
    if not operator:
        errs.append(errors.required(f"{path}.operator", 'valid values: ["In" "NotIn"]'))
    elif operator not in ("In", "NotIn"):
        errs.append(errors.not_supported(f"{path}.operator", operator, ("In", "NotIn")))
    container = req.get("containerName")
    if container is not None and container not in container_names:
        errs.append(
            errors.invalid_value(
                f"{path}.containerName",
                container,
                "must be one of the container or initContainer names in the pod template",
            )
        )
    values = [v for v in as_list(req.get("values")) if is_int(v)]
    if not values:
        errs.append(
            errors.invalid_value(
                f"{path}.values", errors.GoValue("[]int32(nil)"), "at least one value is required"
            )
        )
    elif len(values) > 255:
        errs.append(errors.too_many(f"{path}.values", len(values), 255))
    for j, value in enumerate(values):
        if operator == "In" and value == 0:
            errs.append(
                errors.invalid_value(
                    f"{path}.values[{j}]", value, "must not be 0 for the In operator"
                )
            )
        if value in values[:j]:
            errs.append(errors.duplicate(f"{path}.values[{j}]", value))
    if values != sorted(values):
        errs.append(
            errors.invalid_value(
                f"{path}.values",
                errors.GoValue("[]int32{" + ", ".join(map(str, values)) + "}"),
                "must be ordered",
            )
        )
    return errs


def _job_spec(spec: dict[str, Any], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for key in (
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
        "backoffLimitPerIndex",
        "maxFailedIndexes",
    ):
        errs.extend(meta.validate_nonnegative(spec.get(key), f"{path}.{key}"))
    if spec.get("maxFailedIndexes") is not None and spec.get("backoffLimitPerIndex") is None:
        errs.append(
            errors.required(f"{path}.backoffLimitPerIndex", "when maxFailedIndexes is specified")
        )
    managed_by = spec.get("managedBy")
    if managed_by is not None:
        errs.extend(_domain_prefixed_path(as_str(managed_by), f"{path}.managedBy"))
        if len(as_str(managed_by)) > 63:
            errs.append(errors.too_long(f"{path}.managedBy", 63))
    mode = spec.get("completionMode")
    completions, parallelism = spec.get("completions"), spec.get("parallelism")
    if mode is not None and mode not in ("NonIndexed", "Indexed"):
        errs.append(errors.not_supported(f"{path}.completionMode", mode, ("NonIndexed", "Indexed")))
    if mode == "Indexed":
        if completions is None:
            errs.append(errors.required(f"{path}.completions", "when completion mode is Indexed"))
        if is_int(parallelism) and parallelism > _MAX_PARALLELISM_INDEXED:
            errs.append(
                errors.invalid_value(
                    f"{path}.parallelism",
                    parallelism,
                    f"must be less than or equal to {_MAX_PARALLELISM_INDEXED} when completion mode is Indexed",
                )
            )
        max_failed = spec.get("maxFailedIndexes")
        if is_int(completions) and is_int(max_failed) and max_failed > completions:
            errs.append(
                errors.invalid_value(
                    f"{path}.maxFailedIndexes",
                    max_failed,
                    "must be less than or equal to completions",
                )
            )
        if is_int(max_failed) and max_failed > _MAX_FAILED_INDEXES:
            errs.append(
                errors.invalid_value(
                    f"{path}.maxFailedIndexes",
                    max_failed,
                    f"must be less than or equal to {_MAX_FAILED_INDEXES}",
                )
            )
    else:
        for key in ("backoffLimitPerIndex", "maxFailedIndexes"):
            if spec.get(key) is not None:
                errs.append(
                    errors.invalid_value(
                        f"{path}.{key}", spec[key], "requires indexed completion mode"
                    )
                )
    if spec.get("podFailurePolicy") is not None:
        errs.extend(_pod_failure_policy(spec, f"{path}.podFailurePolicy"))
    if spec.get("successPolicy") is not None and mode != "Indexed":
        errs.append(
            errors.invalid_value(
                f"{path}.successPolicy",
                errors.GoValue(repr(spec["successPolicy"])),
                "requires indexed completion mode",
            )
        )
    replacement = spec.get("podReplacementPolicy")
    if replacement is not None:
        if spec.get("podFailurePolicy") is not None:
            if replacement != "Failed":
                errs.append(
                    errors.not_supported(f"{path}.podReplacementPolicy", replacement, ("Failed",))
                )
        elif replacement not in ("Failed", "TerminatingOrFailed"):
            errs.append(
                errors.not_supported(
                    f"{path}.podReplacementPolicy", replacement, ("Failed", "TerminatingOrFailed")
                )
            )
    errs.extend(pods.validate_pod_template_spec(spec.get("template"), f"{path}.template"))
    restart = as_str(as_dict(as_dict(spec.get("template")).get("spec")).get("restartPolicy"))
    rpath = f"{path}.template.spec.restartPolicy"
    if restart in ("Always", ""):
        errs.append(errors.required(rpath, 'valid values: "OnFailure", "Never"'))
    elif restart not in ("OnFailure", "Never"):
        errs.append(errors.not_supported(rpath, restart, ("OnFailure", "Never")))
    elif spec.get("podFailurePolicy") is not None and restart != "Never":
        errs.append(
            errors.invalid_value(
                rpath, restart, 'only "Never" is supported when podFailurePolicy is specified'
            )
        )
    return errs


def _domain_prefixed_path(value: str, path: str) -> list[FieldError]:
    if not value:
        return [errors.required(path)]
    host, sep, rest = value.partition("/")
    if not sep or not host or not rest:
        return [
            errors.invalid_value(
                path, value, 'must be a domain-prefixed path (such as "acme.io/foo")'
            )
        ]
    return [errors.invalid_value(path, host, m) for m in names.is_dns1123_subdomain(host)]


def _job_spec_with_selector(spec: dict[str, Any]) -> list[FieldError]:
    errs = _job_spec(spec, "spec")
    selector = spec.get("selector")
    if selector is None:
        errs.append(errors.required("spec.selector"))
    else:
        errs.extend(meta.validate_label_selector(selector, "spec.selector"))
    labels = as_dict(as_dict(as_dict(spec.get("template")).get("metadata")).get("labels"))
    if meta.label_selector_is_valid(selector) and (
        selector is None or not meta.label_selector_matches(selector, labels)
    ):
        errs.append(
            errors.invalid_value(
                "spec.template.metadata.labels",
                errors.go_string_map(labels),
                "`selector` does not match template `labels`",
            )
        )
    return errs


def validate_job(job: dict[str, Any]) -> list[FieldError]:
    errs = meta.validate_object_meta(job, namespaced=True, name_fn=names.name_is_dns_subdomain)
    errs += _generated_selector(job)
    spec = as_dict(job.get("spec"))
    errs += _job_spec_with_selector(spec)
    name = as_str(as_dict(job.get("metadata")).get("name"))
    completions = spec.get("completions")
    if spec.get("completionMode") == "Indexed" and is_int(completions) and completions > 0:
        hostname = f"{name}-{completions - 1}"
        if names.is_dns1123_label(hostname):
            errs.append(
                errors.invalid_value(
                    "metadata.name",
                    name,
                    f"will not able to create pod with invalid DNS label: {hostname}",
                )
            )
    return errs


def _mutable_scheduling(template: dict[str, Any], old_template: dict[str, Any]) -> dict[str, Any]:
    """The old template with what a suspended, never-started Job may change taken from new."""
    merged = {**old_template, "metadata": {**as_dict(old_template.get("metadata"))}}
    new_meta, merged_meta = as_dict(template.get("metadata")), merged["metadata"]
    for key in ("labels", "annotations"):
        merged_meta[key] = new_meta.get(key)
    spec, merged_spec = as_dict(template.get("spec")), dict(as_dict(old_template.get("spec")))
    for key in ("nodeSelector", "tolerations", "schedulingGates"):
        merged_spec[key] = spec.get(key)
    affinity, old_affinity = spec.get("affinity"), as_dict(merged_spec.get("affinity"))
    if affinity is None:
        rest = {k: v for k, v in old_affinity.items() if k != "nodeAffinity"}
        merged_spec["affinity"] = rest or None
    else:
        merged_spec["affinity"] = {
            **old_affinity,
            "nodeAffinity": as_dict(affinity).get("nodeAffinity"),
        }
    merged["spec"] = merged_spec
    return merged


def validate_job_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    errs = meta.validate_object_meta_update(new, old)
    spec, old_spec = as_dict(new.get("spec")), as_dict(old.get("spec"))
    errs += _job_spec_with_selector(spec)
    indexed = spec.get("completionMode") == "Indexed"
    if not indexed or spec.get("completions") is None:
        errs += meta.validate_immutable(
            spec.get("completions"), old_spec.get("completions"), "spec.completions"
        )
    elif spec.get("completions") != old_spec.get("completions") and spec.get(
        "completions"
    ) != spec.get("parallelism"):
        errs.append(
            errors.invalid_value(
                "spec.completions",
                spec["completions"],
                "can only be modified in tandem with spec.parallelism",
            )
        )
    errs += meta.validate_immutable(
        spec.get("selector"),
        old_spec.get("selector"),
        "spec.selector",
        shown=apps.go_selector(spec.get("selector")),
    )
    template, old_template = as_dict(spec.get("template")), as_dict(old_spec.get("template"))
    never_started = old_spec.get("suspend") is True and not as_dict(old.get("status")).get(
        "startTime"
    )
    if never_started:
        old_template = _mutable_scheduling(template, old_template)
    if not semantic_equal(template, old_template):
        errs.append(
            errors.invalid_value(
                "spec.template", errors.GoValue(repr(template)), meta.FIELD_IMMUTABLE
            )
        )
    for key in (
        "completionMode",
        "podFailurePolicy",
        "backoffLimitPerIndex",
        "managedBy",
        "successPolicy",
    ):
        errs += meta.validate_immutable(
            spec.get(key),
            old_spec.get(key),
            f"spec.{key}",
            shown=spec.get(key)
            if not isinstance(spec.get(key), dict)
            else errors.GoValue(repr(spec.get(key))),
        )
    return errs


def _cron_job_spec(spec: dict[str, Any], old_spec: dict[str, Any] | None) -> list[FieldError]:
    errs: list[FieldError] = []
    schedule = as_str(spec.get("schedule"))
    time_zone = spec.get("timeZone")
    if not schedule:
        errs.append(errors.required("spec.schedule"))
    else:
        problem = cron.parse_error(schedule)
        if problem:
            errs.append(errors.invalid_value("spec.schedule", schedule, problem))
        allow_tz = old_spec is not None and "TZ" in as_str(old_spec.get("schedule"))
        if allow_tz and "TZ" in schedule and time_zone is not None:
            errs.append(
                errors.invalid_value(
                    "spec.schedule",
                    schedule,
                    "cannot use both timeZone field and TZ or CRON_TZ in schedule",
                )
            )
        elif not allow_tz and "TZ" in schedule:
            errs.append(
                errors.invalid_value(
                    "spec.schedule",
                    schedule,
                    "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
                )
            )
    errs.extend(
        meta.validate_nonnegative(
            spec.get("startingDeadlineSeconds"), "spec.startingDeadlineSeconds"
        )
    )
    if time_zone is not None and (old_spec is None or old_spec.get("timeZone") != time_zone):
        problem = cron.time_zone_error(as_str(time_zone))
        if problem:
            errs.append(errors.invalid_value("spec.timeZone", time_zone, problem))
    policy = spec.get("concurrencyPolicy")
    if not policy:
        errs.append(errors.required("spec.concurrencyPolicy"))
    elif policy not in ("Allow", "Forbid", "Replace"):
        errs.append(
            errors.not_supported("spec.concurrencyPolicy", policy, ("Allow", "Forbid", "Replace"))
        )
    job_spec = as_dict(as_dict(spec.get("jobTemplate")).get("spec"))
    errs.extend(_job_spec(job_spec, "spec.jobTemplate.spec"))
    if job_spec.get("selector") is not None:
        errs.append(
            errors.invalid_value(
                "spec.jobTemplate.spec.selector",
                apps.go_selector(job_spec["selector"]),
                "`selector` will be auto-generated",
            )
        )
    if job_spec.get("manualSelector") is True:
        errs.append(
            errors.not_supported("spec.jobTemplate.spec.manualSelector", True, ("nil", "false"))
        )
    for key in ("successfulJobsHistoryLimit", "failedJobsHistoryLimit"):
        errs.extend(meta.validate_nonnegative(spec.get(key), f"spec.{key}"))
    return errs


def validate_cron_job(obj: dict[str, Any]) -> list[FieldError]:
    errs = meta.validate_object_meta(obj, namespaced=True, name_fn=names.name_is_dns_subdomain)
    errs += _cron_job_spec(as_dict(obj.get("spec")), None)
    name = as_str(as_dict(obj.get("metadata")).get("name"))
    if len(name) > 52:
        errs.append(
            errors.invalid_value("metadata.name", name, "must be no more than 52 characters")
        )
    return errs


def validate_cron_job_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    errs = meta.validate_object_meta_update(new, old)
    return errs + _cron_job_spec(as_dict(new.get("spec")), as_dict(old.get("spec")))
