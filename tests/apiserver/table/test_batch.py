"""Tables of batch/v1 kinds, with the cases of upstream's TestPrintJob and TestPrintCronJob."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from pilothouse.apiserver.table import batch

NOW = 1_764_088_762.0
MINUTE = 60.0
TEN_YEARS = 10 * 365 * 86400.0


def ago(seconds: float) -> str:
    return datetime.fromtimestamp(NOW - seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


FUTURE = ago(-1.9)
TEMPLATE = {
    "spec": {
        "containers": [
            {"name": "fake-job-container1", "image": "fake-job-image1"},
            {"name": "fake-job-container2", "image": "fake-job-image2"},
        ]
    }
}


def job(name: str, created: str = FUTURE, *, status: dict[str, Any] | None = None,
        deleted: bool = False, **spec: Any) -> dict[str, Any]:  # fmt: skip
    meta: dict[str, Any] = {"name": name, "creationTimestamp": created}
    if deleted:
        meta["deletionTimestamp"] = FUTURE
    return {"metadata": meta, "spec": spec, "status": status or {}}


def condition(type_: str, status: str = "True") -> dict[str, Any]:
    return {"type": type_, "status": status}


@pytest.mark.parametrize(
    ("obj", "want"),
    [
        (
            job("job1", completions=2, template=TEMPLATE,
                selector={"matchLabels": {"job-label": "job-label-value"}}, status={"succeeded": 1}),
            ["job1", "Running", "1/2", "", "0s", "fake-job-container1,fake-job-container2",
             "fake-job-image1,fake-job-image2", "job-label=job-label-value"],
        ),
        (job("job2", ago(TEN_YEARS)), ["job2", "Running", "0/1", "", "10y", "", "", "<none>"]),
        (
            # finished: completion minus start
            job("job3", ago(TEN_YEARS), status={"startTime": ago(-MINUTE), "completionTime": ago(-31 * MINUTE)}),
            ["job3", "Running", "0/1", "30m", "10y", "", "", "<none>"],
        ),
        (
            # still running: now minus start
            job("job4", ago(TEN_YEARS), status={"startTime": ago(20 * MINUTE)}),
            ["job4", "Running", "0/1", "20m", "10y", "", "", "<none>"],
        ),
        (job("job5", status={"conditions": [condition("Complete")]}),
         ["job5", "Complete", "0/1", "", "0s", "", "", "<none>"]),
        (job("job6", status={"conditions": [condition("Failed")]}),
         ["job6", "Failed", "0/1", "", "0s", "", "", "<none>"]),
        (job("job7", status={"conditions": [condition("Suspended")]}),
         ["job7", "Suspended", "0/1", "", "0s", "", "", "<none>"]),
        (job("job8", status={"conditions": [condition("FailureTarget")]}),
         ["job8", "FailureTarget", "0/1", "", "0s", "", "", "<none>"]),
        (job("job9", deleted=True), ["job9", "Terminating", "0/1", "", "0s", "", "", "<none>"]),
    ],
)  # fmt: skip
def test_print_job(obj: dict[str, Any], want: list[Any]) -> None:
    assert batch.job_cells(obj, NOW) == want


@pytest.mark.parametrize(
    ("conditions", "deleted", "want"),
    [
        ([condition("Failed"), condition("Complete")], False, "Complete"),
        ([condition("Failed"), condition("Suspended")], True, "Failed"),
        ([condition("Suspended")], True, "Terminating"),
        ([condition("Suspended", "False"), condition("FailureTarget")], False, "FailureTarget"),
        # only the first condition of a type counts
        ([condition("Complete", "False"), condition("Complete")], False, "Running"),
        ([condition("SuccessCriteriaMet")], False, "Running"),  # not a 1.32 status
    ],
)
def test_job_status_precedence(conditions: list[dict[str, Any]], deleted: bool, want: str) -> None:
    assert batch.job_status(job("j", deleted=deleted, status={"conditions": conditions})) == want


@pytest.mark.parametrize(
    ("spec", "succeeded", "want"),
    [
        ({"completions": 3}, 2, "2/3"),
        ({"parallelism": 4}, 1, "1/1 of 4"),
        ({"parallelism": 1}, 1, "1/1"),
        ({"completions": 5, "parallelism": 2}, 0, "0/5"),
    ],
)
def test_job_completions(spec: dict[str, Any], succeeded: int, want: str) -> None:
    assert batch.job_completions(spec, succeeded) == want


def cronjob(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "cronjob1", "creationTimestamp": FUTURE},
        "spec": {
            "schedule": "0/5 * * * ?",
            "jobTemplate": {
                "spec": {
                    "completions": 2,
                    "template": TEMPLATE,
                    "selector": {"matchLabels": {"a": "b"}},
                }
            },
            **spec,
        },
        "status": {"lastScheduleTime": FUTURE},
    }


def test_print_cronjob() -> None:
    wide = ["fake-job-container1,fake-job-container2", "fake-job-image1,fake-job-image2", "a=b"]
    assert batch.cronjob_cells(cronjob(suspend=False), NOW) == [
        "cronjob1", "0/5 * * * ?", "<none>", "False", 0, "0s", "0s", *wide,
    ]  # fmt: skip
    assert batch.cronjob_cells(cronjob(suspend=False, timeZone="LOCAL"), NOW)[2:4] == [
        "LOCAL",
        "False",
    ]
    obj = cronjob(suspend=True)
    obj["status"] = {"lastScheduleTime": ago(90 * 60), "active": [{"name": "j1"}, {"name": "j2"}]}
    assert batch.cronjob_cells(obj, NOW)[3:6] == ["True", 2, "90m"]
    obj = cronjob()
    obj["status"] = {}
    assert batch.cronjob_cells(obj, NOW)[3:6] == ["<unset>", 0, "<none>"]
