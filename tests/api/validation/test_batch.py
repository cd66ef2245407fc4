"""batch/v1 validation: Jobs (with generated selectors) and CronJobs."""

from __future__ import annotations

import copy
from typing import Any

from pilothouse.api import errors
from pilothouse.api.defaults import apply_defaults, prepare
from pilothouse.api.validation import validate_create, validate_update

Obj = dict[str, Any]


def job(**spec: Any) -> Obj:
    obj: Obj = {
        "metadata": {"name": "pi", "namespace": "default", "uid": "1234-abcd"},
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "pi", "image": "perl:5"}],
                }
            },
            **spec,
        },
    }
    apply_defaults("batch", "v1", "Job", obj)
    prepare.generate_job_selector(obj)
    return obj


def cron_job(**spec: Any) -> Obj:
    obj: Obj = {
        "metadata": {"name": "nightly", "namespace": "default"},
        "spec": {
            "schedule": "0 3 * * *",
            "jobTemplate": {
                "spec": {
                    "template": {
                        "spec": {
                            "restartPolicy": "OnFailure",
                            "containers": [{"name": "c", "image": "c:1"}],
                        }
                    }
                }
            },
            **spec,
        },
    }
    apply_defaults("batch", "v1", "CronJob", obj)
    return obj


def codes(errs: list[errors.FieldError]) -> list[tuple[str, str]]:
    return [(e.field, e.type) for e in errs]


def test_valid_job_and_generated_selector() -> None:
    obj = job()
    assert obj["spec"]["selector"] == {
        "matchLabels": {"batch.kubernetes.io/controller-uid": "1234-abcd"}
    }
    assert obj["spec"]["template"]["metadata"]["labels"] == {
        "job-name": "pi",
        "batch.kubernetes.io/job-name": "pi",
        "controller-uid": "1234-abcd",
        "batch.kubernetes.io/controller-uid": "1234-abcd",
    }
    assert validate_create("batch", "v1", "Job", obj) == []


def test_job_restart_policy_always() -> None:
    obj = job()
    obj["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    assert [e.message() for e in validate_create("batch", "v1", "Job", obj)] == [
        'spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never"'
    ]


def test_job_rules() -> None:
    checks = [
        (job(parallelism=-1), "spec.parallelism", errors.INVALID_VALUE),
        (job(backoffLimit=-1), "spec.backoffLimit", errors.INVALID_VALUE),
        (job(completionMode="Sometimes"), "spec.completionMode", errors.NOT_SUPPORTED),
        (job(backoffLimitPerIndex=1), "spec.backoffLimitPerIndex", errors.INVALID_VALUE),
        (
            job(completionMode="Indexed", completions=None, parallelism=1),
            "spec.completions",
            errors.REQUIRED,
        ),
        (job(podReplacementPolicy="Sometimes"), "spec.podReplacementPolicy", errors.NOT_SUPPORTED),
        (
            job(
                podFailurePolicy={
                    "rules": [
                        {"action": "Explode", "onExitCodes": {"operator": "In", "values": [1]}}
                    ]
                }
            ),
            "spec.podFailurePolicy.rules[0].action",
            errors.NOT_SUPPORTED,
        ),
        (
            job(podFailurePolicy={"rules": [{"action": "FailJob"}]}),
            "spec.podFailurePolicy.rules[0]",
            errors.INVALID_VALUE,
        ),
        (
            job(
                podFailurePolicy={
                    "rules": [
                        {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [3, 1]}}
                    ]
                }
            ),
            "spec.podFailurePolicy.rules[0].onExitCodes.values",
            errors.INVALID_VALUE,
        ),
    ]
    for obj, field, kind in checks:
        assert (field, kind) in codes(validate_create("batch", "v1", "Job", obj)), field


def test_job_generated_selector_checks() -> None:
    missing_uid = job()
    del missing_uid["metadata"]["uid"]
    assert ("metadata.uid", errors.REQUIRED) in codes(
        validate_create("batch", "v1", "Job", missing_uid)
    )
    foreign = job()
    foreign["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"] = "other"
    assert ("spec.selector", errors.INVALID_VALUE) in codes(
        validate_create("batch", "v1", "Job", foreign)
    )
    manual = job(manualSelector=True, selector={"matchLabels": {"app": "pi"}})
    manual["spec"]["template"]["metadata"] = {"labels": {"app": "pi"}}
    assert validate_create("batch", "v1", "Job", manual) == []
    mismatch = job(manualSelector=True, selector={"matchLabels": {"app": "pi"}})
    mismatch["spec"]["template"]["metadata"] = {"labels": {"app": "other"}}
    assert ("spec.template.metadata.labels", errors.INVALID_VALUE) in codes(
        validate_create("batch", "v1", "Job", mismatch)
    )


def test_job_update_immutability() -> None:
    old = job()
    template = copy.deepcopy(old)
    template["spec"]["template"]["spec"]["containers"][0]["image"] = "perl:6"
    assert codes(validate_update("batch", "v1", "Job", template, old)) == [
        ("spec.template", errors.INVALID_VALUE)
    ]
    completions = copy.deepcopy(old)
    completions["spec"]["completions"] = 3
    assert codes(validate_update("batch", "v1", "Job", completions, old)) == [
        ("spec.completions", errors.INVALID_VALUE)
    ]
    parallelism = copy.deepcopy(old)
    parallelism["spec"]["parallelism"] = 3
    parallelism["spec"]["suspend"] = True
    assert validate_update("batch", "v1", "Job", parallelism, old) == []


def test_suspended_job_may_change_scheduling_directives() -> None:
    old = job(suspend=True)
    new = copy.deepcopy(old)
    new["spec"]["template"]["spec"]["nodeSelector"] = {"zone": "a"}
    assert validate_update("batch", "v1", "Job", new, old) == []
    started = copy.deepcopy(old)
    started["status"] = {"startTime": "2024-01-01T00:00:00Z"}
    assert codes(validate_update("batch", "v1", "Job", new, started)) == [
        ("spec.template", errors.INVALID_VALUE)
    ]


def test_valid_cron_jobs() -> None:
    assert validate_create("batch", "v1", "CronJob", cron_job()) == []
    assert (
        validate_create(
            "batch", "v1", "CronJob", cron_job(schedule="@hourly", timeZone="Europe/Paris")
        )
        == []
    )


def test_cron_job_rules() -> None:
    bad = cron_job(schedule="0 3 * *")
    assert [e.message() for e in validate_create("batch", "v1", "CronJob", bad)] == [
        'spec.schedule: Invalid value: "0 3 * *": expected exactly 5 fields, found 4: [0 3 * *]'
    ]
    checks = [
        (cron_job(schedule="TZ=UTC 0 3 * * *"), "spec.schedule", errors.INVALID_VALUE),
        (cron_job(timeZone="Mars/Phobos"), "spec.timeZone", errors.INVALID_VALUE),
        (cron_job(concurrencyPolicy="Sometimes"), "spec.concurrencyPolicy", errors.NOT_SUPPORTED),
        (
            cron_job(startingDeadlineSeconds=-5),
            "spec.startingDeadlineSeconds",
            errors.INVALID_VALUE,
        ),
        (
            cron_job(successfulJobsHistoryLimit=-1),
            "spec.successfulJobsHistoryLimit",
            errors.INVALID_VALUE,
        ),
    ]
    for obj, field, kind in checks:
        assert (field, kind) in codes(validate_create("batch", "v1", "CronJob", obj)), field
    long_name = cron_job()
    long_name["metadata"]["name"] = "n" * 53
    assert codes(validate_create("batch", "v1", "CronJob", long_name)) == [
        ("metadata.name", errors.INVALID_VALUE)
    ]
    selector = cron_job()
    selector["spec"]["jobTemplate"]["spec"]["selector"] = {"matchLabels": {"a": "b"}}
    assert ("spec.jobTemplate.spec.selector", errors.INVALID_VALUE) in codes(
        validate_create("batch", "v1", "CronJob", selector)
    )
    always = cron_job()
    always["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    assert ("spec.jobTemplate.spec.template.spec.restartPolicy", errors.REQUIRED) in codes(
        validate_create("batch", "v1", "CronJob", always)
    )


def test_cron_job_update_keeps_legacy_tz() -> None:
    old = cron_job()
    old["spec"]["schedule"] = "TZ=UTC 0 3 * * *"
    new = copy.deepcopy(old)
    new["spec"]["suspend"] = True
    assert validate_update("batch", "v1", "CronJob", new, old) == []
