"""Jobs, CronJobs and HPAs driven with the real kubectl, on hollow nodes.

One API server with the controller manager and the scheduler serves the module; three
hollow nodes run the pods, ending containers as their commands say (``sleep 1``,
``sh -c 'exit 42'``). Every test works in a namespace of its own.
"""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pilothouse import testing

from ...conftest import Kubectl

pytestmark = [pytest.mark.kubectl, pytest.mark.slow]


@pytest.fixture(scope="module")
def server() -> Iterator[testing.ServerThread]:
    with (
        tempfile.TemporaryDirectory(prefix="pilothouse-batch-") as tmp,
        testing.server_thread(Path(tmp) / "data", controllers=True) as srv,
        testing.hollow_nodes(srv, 3, name_prefix="batch-", heartbeat=5),
    ):
        yield srv


@pytest.fixture(scope="module")
def kubectl(server: testing.ServerThread) -> Kubectl:
    return Kubectl(server.kubeconfig)


@pytest.fixture
def ns(kubectl: Kubectl) -> Iterator[str]:
    name = "b-" + uuid.uuid4().hex[:8]
    kubectl("create", "namespace", name)
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)


def wait(check: Any, timeout: float = 60, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}: {last!r}")


def job(name: str, command: str, **spec: Any) -> str:
    template_spec = {
        "restartPolicy": "Never",
        "containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", command]}],
    }
    template_spec.update(spec.pop("pod", {}))
    return json.dumps(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": name},
            "spec": {"template": {"spec": template_spec}, **spec},
        }
    )


def pods_of(kubectl: Kubectl, ns: str, job_name: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = kubectl.json(
        "-n", ns, "get", "pods", "-l", f"batch.kubernetes.io/job-name={job_name}"
    )["items"]
    return items


def test_indexed_job_runs_each_index_once_at_most_three_at_a_time(
    kubectl: Kubectl, ns: str
) -> None:
    kubectl(
        "-n",
        ns,
        "apply",
        "-f",
        "-",
        input=job("idx", "sleep 1", completions=10, parallelism=3, completionMode="Indexed"),
    )
    kubectl("-n", ns, "wait", "--for=condition=complete", "job/idx", "--timeout=90s", timeout=100)
    j = kubectl.json("-n", ns, "get", "job", "idx")
    assert j["status"]["succeeded"] == 10
    assert j["status"]["completedIndexes"] == "0-9"
    assert [c["type"] for c in j["status"]["conditions"]] == ["SuccessCriteriaMet", "Complete"]
    assert {c["reason"] for c in j["status"]["conditions"]} == {"CompletionsReached"}
    pods = pods_of(kubectl, ns, "idx")
    indexes = sorted(
        int(p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]) for p in pods
    )
    assert indexes == list(range(10))  # each index exactly once, none repeated
    for p in pods:
        ix = p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
        assert p["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"] == ix
        assert p["spec"]["hostname"] == f"idx-{ix}"
        assert p["metadata"]["name"].startswith(f"idx-{ix}-")
        assert p["status"]["phase"] == "Succeeded"
        assert "finalizers" not in p["metadata"] or p["metadata"]["finalizers"] == []
        env = p["spec"]["containers"][0]["env"]
        assert {
            "name": "JOB_COMPLETION_INDEX",
            "valueFrom": {
                "fieldRef": {
                    "apiVersion": "v1",
                    "fieldPath": "metadata.labels['batch.kubernetes.io/job-completion-index']",
                }
            },
        } in env
    # Never more than parallelism at once: count overlapping [start, finish] intervals.
    spans = []
    for p in pods:
        state = p["status"]["containerStatuses"][0]["state"]["terminated"]
        spans += [(state["startedAt"], 1), (state["finishedAt"], -1)]
    running = peak = 0
    for _, delta in sorted(spans, key=lambda s: (s[0], s[1])):
        running += delta
        peak = max(peak, running)
    assert 1 <= peak <= 3
    table = kubectl("-n", ns, "get", "job", "idx").stdout.split()
    assert table[:5] == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    assert table[6:8] == ["Complete", "10/10"]
    described = kubectl("-n", ns, "describe", "job", "idx").stdout
    assert "Completed Indexes:  0-9" in described
    assert "Job completed" in described


def test_failing_pods_end_the_job_with_backoff_limit_exceeded(kubectl: Kubectl, ns: str) -> None:
    kubectl("-n", ns, "apply", "-f", "-", input=job("fail", "exit 1", backoffLimit=1))
    kubectl("-n", ns, "wait", "--for=condition=failed", "job/fail", "--timeout=60s", timeout=70)
    j = kubectl.json("-n", ns, "get", "job", "fail")
    # backoffLimit 1: the first pod and one retry (after the 10 s back-off), no more.
    assert j["status"]["failed"] == 2
    assert [c["type"] for c in j["status"]["conditions"]] == ["FailureTarget", "Failed"]
    assert j["status"]["conditions"][1]["reason"] == "BackoffLimitExceeded"
    assert j["status"]["conditions"][1]["message"] == "Job has reached the specified backoff limit"
    pods = pods_of(kubectl, ns, "fail")
    assert len(pods) == 2 and {p["status"]["phase"] for p in pods} == {"Failed"}
    first, second = sorted(pods, key=lambda p: p["metadata"]["creationTimestamp"])
    finished = first["status"]["containerStatuses"][0]["state"]["terminated"]["finishedAt"]
    gap = _ts(second["metadata"]["creationTimestamp"]) - _ts(finished)
    assert gap >= 9  # upstream's first back-off: 10 s (second precision)
    events = kubectl(
        "-n", ns, "get", "events", "--field-selector", "involvedObject.name=fail"
    ).stdout
    assert "BackoffLimitExceeded" in events
    assert kubectl("-n", ns, "get", "job", "fail").stdout.split()[6] == "Failed"


def _ts(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text).timestamp()


def test_pod_failure_policy_ignores_an_exit_code_and_fails_the_job_on_another(
    kubectl: Kubectl, ns: str
) -> None:
    policy = {
        "rules": [
            {"action": "Ignore", "onExitCodes": {"operator": "In", "values": [42]}},
            {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [43]}},
        ]
    }
    kubectl(
        "-n",
        ns,
        "apply",
        "-f",
        "-",
        input=job("ignored", "exit 42", backoffLimit=0, podFailurePolicy=policy),
    )
    # With backoffLimit 0 one counted failure would end the Job; ignored ones do not.
    wait(
        lambda: (
            len(
                [p for p in pods_of(kubectl, ns, "ignored") if p["status"].get("phase") == "Failed"]
            )
            >= 2
        ),
        timeout=40,
        what="a second pod after an ignored failure",
    )
    j = kubectl.json("-n", ns, "get", "job", "ignored")
    assert not j["status"].get("failed")
    assert not [
        c for c in j["status"].get("conditions") or [] if c["type"] in ("Failed", "FailureTarget")
    ]

    kubectl(
        "-n",
        ns,
        "apply",
        "-f",
        "-",
        input=job("fatal", "exit 43", backoffLimit=6, podFailurePolicy=policy),
    )
    kubectl("-n", ns, "wait", "--for=condition=failed", "job/fatal", "--timeout=30s", timeout=40)
    j = kubectl.json("-n", ns, "get", "job", "fatal")
    [pod] = pods_of(kubectl, ns, "fatal")
    failed = j["status"]["conditions"][-1]
    assert (failed["type"], failed["reason"]) == ("Failed", "PodFailurePolicy")
    assert failed["message"] == (
        f"Container main for pod {ns}/{pod['metadata']['name']} failed with exit code 43 "
        "matching FailJob rule at index 1"
    )


def test_cronjob_and_a_job_created_from_it(kubectl: Kubectl, ns: str) -> None:
    kubectl(
        "-n",
        ns,
        "create",
        "cronjob",
        "tick",
        "--image=busybox",
        "--schedule=*/1 * * * *",
        "--",
        "sh",
        "-c",
        "sleep 1",
    )
    table = kubectl("-n", ns, "get", "cronjob", "tick").stdout.split()
    assert table[:7] == ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST", "SCHEDULE"]
    kubectl("-n", ns, "create", "job", "manual", "--from=cronjob/tick")
    j = kubectl.json("-n", ns, "get", "job", "manual")
    assert j["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    assert j["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
    kubectl("-n", ns, "wait", "--for=condition=complete", "job/manual", "--timeout=60s", timeout=70)


def test_ttl_after_finished_deletes_the_job_and_its_pods(kubectl: Kubectl, ns: str) -> None:
    # Long enough for `kubectl wait` (a process start on a loaded machine) to see the
    # job complete before it goes: with 1 s, a quick job was sometimes gone already.
    kubectl("-n", ns, "apply", "-f", "-", input=job("brief", "true", ttlSecondsAfterFinished=4))
    kubectl("-n", ns, "wait", "--for=condition=complete", "job/brief", "--timeout=60s", timeout=70)
    wait(
        lambda: "NotFound" in kubectl("-n", ns, "get", "job", "brief", check=False).stderr,
        timeout=30,
        what="the job to go",
    )
    wait(lambda: not pods_of(kubectl, ns, "brief"), timeout=30, what="its pods to go")


def test_suspended_job_starts_nothing_until_resumed(kubectl: Kubectl, ns: str) -> None:
    kubectl("-n", ns, "apply", "-f", "-", input=job("later", "true", suspend=True))
    j = wait(
        lambda: _condition(kubectl.json("-n", ns, "get", "job", "later"), "Suspended"),
        timeout=20,
        what="Suspended",
    )
    assert (j["status"], j["reason"], j["message"]) == ("True", "JobSuspended", "Job suspended")
    assert pods_of(kubectl, ns, "later") == []
    kubectl("-n", ns, "patch", "job", "later", "--type=merge", "-p", '{"spec":{"suspend":false}}')
    kubectl("-n", ns, "wait", "--for=condition=complete", "job/later", "--timeout=60s", timeout=70)
    resumed = _condition(kubectl.json("-n", ns, "get", "job", "later"), "Suspended")
    assert resumed is not None and (resumed["status"], resumed["reason"]) == ("False", "JobResumed")


def _condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c["type"] == type_:
            return c  # type: ignore[no-any-return]
    return None


def test_autoscale_creates_a_v1_hpa_and_get_shows_targets(kubectl: Kubectl, ns: str) -> None:
    kubectl(
        "-n",
        ns,
        "create",
        "deployment",
        "web",
        "--image=busybox",
        "--replicas=2",
        "--",
        "sleep",
        "3600",
    )
    out = kubectl(
        "-n", ns, "autoscale", "deployment", "web", "--min=2", "--max=5", "--cpu-percent=50"
    ).stdout
    assert out.strip() == "horizontalpodautoscaler.autoscaling/web autoscaled"
    rows = kubectl("-n", ns, "get", "hpa").stdout.splitlines()
    assert rows[0].split() == [
        "NAME",
        "REFERENCE",
        "TARGETS",
        "MINPODS",
        "MAXPODS",
        "REPLICAS",
        "AGE",
    ]
    assert rows[1].split()[:6] == ["web", "Deployment/web", "cpu:", "<unknown>/50%", "2", "5"]
    v2 = kubectl.json("-n", ns, "get", "horizontalpodautoscalers.v2.autoscaling", "web")
    assert v2["spec"]["metrics"][0]["resource"]["target"] == {
        "type": "Utilization",
        "averageUtilization": 50,
    }
    v1 = kubectl.json("-n", ns, "get", "horizontalpodautoscalers.v1.autoscaling", "web")
    assert (
        v1["apiVersion"] == "autoscaling/v1" and v1["spec"]["targetCPUUtilizationPercentage"] == 50
    )

    # Hollow nodes serve no metrics: the HPA says so, as upstream's does without metrics-server.
    def reported() -> dict[str, Any] | None:
        return _condition(kubectl.json("-n", ns, "get", "hpa", "web"), "ScalingActive")

    active = wait(reported, timeout=40, what="ScalingActive")
    assert (active["status"], active["reason"]) == ("False", "FailedGetResourceMetric")


def test_active_deadline_ends_a_running_job(kubectl: Kubectl, ns: str) -> None:
    kubectl("-n", ns, "apply", "-f", "-", input=job("slow", "sleep 300", activeDeadlineSeconds=2))
    kubectl("-n", ns, "wait", "--for=condition=failed", "job/slow", "--timeout=30s", timeout=40)
    failed = _condition(kubectl.json("-n", ns, "get", "job", "slow"), "Failed")
    assert failed is not None
    assert (failed["reason"], failed["message"]) == (
        "DeadlineExceeded",
        "Job was active longer than specified deadline",
    )
    # The running pod was deleted and counted as failed once it went.
    wait(lambda: not pods_of(kubectl, ns, "slow"), timeout=30, what="the pod to go")
    assert kubectl.json("-n", ns, "get", "job", "slow")["status"]["failed"] == 1


def test_backoff_limit_per_index_fails_the_indexes(kubectl: Kubectl, ns: str) -> None:
    kubectl(
        "-n",
        ns,
        "apply",
        "-f",
        "-",
        input=job(
            "perindex",
            "exit 1",
            completions=2,
            parallelism=2,
            completionMode="Indexed",
            backoffLimitPerIndex=1,
        ),
    )
    kubectl("-n", ns, "wait", "--for=condition=failed", "job/perindex", "--timeout=60s", timeout=70)
    j = kubectl.json("-n", ns, "get", "job", "perindex")
    assert j["status"]["failedIndexes"] == "0,1"
    failed = _condition(j, "Failed")
    assert failed is not None
    assert (failed["reason"], failed["message"]) == ("FailedIndexes", "Job has failed indexes")
    counts = sorted(
        (
            p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"],
            p["metadata"]["annotations"]["batch.kubernetes.io/job-index-failure-count"],
        )
        for p in pods_of(kubectl, ns, "perindex")
    )
    # Each index: a first try (count 0) and one retry (count 1), then no more.
    assert counts == [("0", "0"), ("0", "1"), ("1", "0"), ("1", "1")]
