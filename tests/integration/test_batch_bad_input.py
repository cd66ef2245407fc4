"""Bad Jobs, CronJobs and HorizontalPodAutoscalers are refused with upstream's words."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ..conftest import Kubectl

pytestmark = pytest.mark.kubectl

CONTAINER = {"name": "c", "image": "busybox"}


def create(kubectl: Kubectl, ns: str, obj: dict[str, Any]) -> str:
    proc = kubectl("-n", ns, "create", "-f", "-", input=json.dumps(obj), check=False)
    assert proc.returncode != 0, proc.stdout
    return proc.stderr.strip()


def job(name: str, **spec: Any) -> dict[str, Any]:
    template = spec.pop("template", {"spec": {"restartPolicy": "Never", "containers": [CONTAINER]}})
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"template": template, **spec},
    }


def test_job_with_restart_policy_always(kubectl: Kubectl, namespace: str) -> None:
    bad = job("always", template={"spec": {"restartPolicy": "Always", "containers": [CONTAINER]}})
    assert create(kubectl, namespace, bad) == (
        'The Job "always" is invalid: spec.template.spec.restartPolicy: Required value: '
        'valid values: "OnFailure", "Never"'
    )


def test_job_selector_not_matching_its_template(kubectl: Kubectl, namespace: str) -> None:
    bad = job(
        "mismatch",
        manualSelector=True,
        selector={"matchLabels": {"app": "a"}},
        template={
            "metadata": {"labels": {"app": "b"}},
            "spec": {"restartPolicy": "Never", "containers": [CONTAINER]},
        },
    )
    assert create(kubectl, namespace, bad) == (
        'The Job "mismatch" is invalid: spec.template.metadata.labels: Invalid value: '
        'map[string]string{"app":"b"}: `selector` does not match template `labels`'
    )


def test_indexed_job_needs_completions(kubectl: Kubectl, namespace: str) -> None:
    assert create(kubectl, namespace, job("idx", completionMode="Indexed", parallelism=3)) == (
        'The Job "idx" is invalid: spec.completions: Required value: when completion mode is Indexed'
    )


def test_indexed_job_completions_change_only_with_parallelism(
    kubectl: Kubectl, namespace: str
) -> None:
    kubectl(
        "-n",
        namespace,
        "create",
        "-f",
        "-",
        input=json.dumps(
            job("scale", completionMode="Indexed", completions=4, parallelism=2, suspend=True)
        ),
    )
    proc = kubectl(
        "-n",
        namespace,
        "patch",
        "job",
        "scale",
        "--type=merge",
        "-p",
        '{"spec":{"completions":5}}',
        check=False,
    )
    assert proc.returncode != 0
    assert (
        "spec.completions: Invalid value: 5: can only be modified in tandem with spec.parallelism"
        in proc.stderr
    )


def test_cronjob_with_a_bad_schedule_or_zone(kubectl: Kubectl, namespace: str) -> None:
    proc = kubectl(
        "-n",
        namespace,
        "create",
        "cronjob",
        "bad",
        "--image=busybox",
        "--schedule=*/1 * * *",
        check=False,
    )
    assert proc.stderr.strip() == (
        'error: failed to create cronjob: CronJob.batch "bad" is invalid: spec.schedule: '
        'Invalid value: "*/1 * * *": expected exactly 5 fields, found 4: [*/1 * * *]'
    )
    cj = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "zoned"},
        "spec": {
            "schedule": "0 * * * *",
            "timeZone": "Mars/Olympus",
            "jobTemplate": {
                "spec": {
                    "template": {"spec": {"restartPolicy": "Never", "containers": [CONTAINER]}}
                }
            },
        },
    }
    assert create(kubectl, namespace, cj) == (
        'The CronJob "zoned" is invalid: spec.timeZone: Invalid value: "Mars/Olympus": '
        "unknown time zone Mars/Olympus"
    )


def hpa(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            **spec,
        },
    }


def test_hpa_bounds_and_targets(kubectl: Kubectl, namespace: str) -> None:
    assert create(kubectl, namespace, hpa("bounds", minReplicas=3, maxReplicas=2)) == (
        'The HorizontalPodAutoscaler "bounds" is invalid: spec.maxReplicas: Invalid value: 2: '
        "must be greater than or equal to `minReplicas`"
    )
    behavior = {
        "scaleDown": {
            "stabilizationWindowSeconds": 7200,
            "policies": [{"type": "Pods", "value": 0, "periodSeconds": 15}],
        }
    }
    message = create(kubectl, namespace, hpa("rules", maxReplicas=2, behavior=behavior))
    assert message == (
        'The HorizontalPodAutoscaler "rules" is invalid: \n'
        "* spec.behavior.scaleDown.stabilizationWindowSeconds: Invalid value: 7200: must be less than or equal to 3600\n"
        "* spec.behavior.scaleDown.policies[0].value: Invalid value: 0: must be greater than zero"
    )
    kubectl("-n", namespace, "create", "deployment", "web", "--image=busybox")
    proc = kubectl(
        "-n", namespace, "autoscale", "deployment", "web", "--max=3", "--cpu-percent=0", check=False
    )
    # v1's targetCPUUtilizationPercentage is checked where v2 keeps it, as upstream does.
    assert proc.stderr.strip() == (
        'The HorizontalPodAutoscaler "web" is invalid: '
        "spec.metrics[0].resource.target.averageUtilization: Invalid value: 0: must be greater than 0"
    )
