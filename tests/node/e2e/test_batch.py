"""Batch work and autoscaling with real containers: a CronJob on ``*/1 * * * *`` running
for real, and an HPA scaling a busybox Deployment out while its pods burn CPU and back
in when they stop. `pilothouse server` with its agent (crun under conmon), driven with
the real kubectl. Needs root; CI runs as root.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from .realcluster import Cluster

pytestmark = [
    pytest.mark.root,
    pytest.mark.containers,
    pytest.mark.netns,
    pytest.mark.kubectl,
    pytest.mark.slow,
]


def _conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}


def test_cronjob_every_minute_runs_a_job_to_completion(cluster: Cluster, ns: str) -> None:
    cluster.kubectl(
        "-n",
        ns,
        "create",
        "cronjob",
        "tick",
        f"--image={cluster.image}",
        "--schedule=*/1 * * * *",
        "--",
        "sh",
        "-c",
        "echo tick from $HOSTNAME",
    )
    cj = cluster.json("-n", ns, "get", "cronjob", "tick")
    assert cj["spec"]["concurrencyPolicy"] == "Allow"
    assert cj["spec"]["successfulJobsHistoryLimit"] == 3

    def completed_job() -> dict[str, Any] | None:
        jobs = cluster.json("-n", ns, "get", "jobs")["items"]
        done = [j for j in jobs if "Complete" in _conditions(j)]
        return done[0] if done else None

    # Due at the next minute boundary: at most ~60 s away, plus the pod's run.
    job = cluster.wait(completed_job, timeout=150, what="a Job of the CronJob to complete")
    name = job["metadata"]["name"]
    assert name.startswith("tick-") and int(name.removeprefix("tick-")) * 60 <= time.time()
    assert job["metadata"]["ownerReferences"][0]["name"] == "tick"
    [pod] = cluster.json("-n", ns, "get", "pods", "-l", f"batch.kubernetes.io/job-name={name}")[
        "items"
    ]
    cluster.uids.add(pod["metadata"]["uid"])
    assert pod["status"]["phase"] == "Succeeded"
    logs = cluster.kubectl("-n", ns, "logs", pod["metadata"]["name"]).stdout
    assert logs.startswith("tick from ")

    def recorded() -> dict[str, Any] | None:
        status = cluster.json("-n", ns, "get", "cronjob", "tick").get("status") or {}
        return status if status.get("lastSuccessfulTime") else None

    status = cluster.wait(recorded, timeout=30, what="lastSuccessfulTime")
    assert (
        status["lastScheduleTime"]
        == job["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"]
    )
    row = cluster.kubectl("-n", ns, "get", "cronjob", "tick").stdout.splitlines()[1].split()
    assert row[:3] == ["tick", "*/1", "*"]
    cluster.kubectl("-n", ns, "patch", "cronjob", "tick", "-p", '{"spec":{"suspend":true}}')


def _deployment(image: str) -> dict[str, Any]:
    # Burns CPU (capped at 200m by the limit) until /tmp/stop exists, then idles.
    burn = "while [ ! -e /tmp/stop ]; do :; done; exec sleep 3600"
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "burn"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "burn"}},
            "template": {
                "metadata": {"labels": {"app": "burn"}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [
                        {
                            "name": "burn",
                            "image": image,
                            "command": ["sh", "-c", burn],
                            "resources": {
                                "requests": {"cpu": "100m"},
                                "limits": {"cpu": "200m"},
                            },
                        }
                    ],
                },
            },
        },
    }


HPA = {
    "apiVersion": "autoscaling/v2",
    "kind": "HorizontalPodAutoscaler",
    "metadata": {"name": "burn"},
    "spec": {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "burn"},
        "minReplicas": 1,
        "maxReplicas": 3,
        "metrics": [
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 50},
                },
            }
        ],
        # Short windows so the test sees both directions within minutes.
        "behavior": {
            "scaleUp": {"stabilizationWindowSeconds": 0},
            "scaleDown": {
                "stabilizationWindowSeconds": 10,
                "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
            },
        },
    },
}


def test_hpa_scales_a_deployment_out_under_load_and_back_in(cluster: Cluster, ns: str) -> None:
    cluster.apply(ns, _deployment(cluster.image))
    cluster.apply(ns, HPA)

    def replicas() -> int:
        return int(cluster.json("-n", ns, "get", "deployment", "burn")["spec"]["replicas"])

    # ~200 % of the request against a 50 % target: out to the maximum, 3.
    cluster.wait(lambda: replicas() == 3, timeout=240, what="scale-out to 3")
    hpa = cluster.json("-n", ns, "get", "hpa", "burn")
    current = hpa["status"]["currentMetrics"][0]["resource"]["current"]["averageUtilization"]
    assert current > 55
    assert _conditions(hpa)["ScalingActive"]["reason"] == "ValidMetricFound"
    row = cluster.kubectl("-n", ns, "get", "hpa", "burn").stdout.splitlines()[1].split()
    assert row[1] == "Deployment/burn" and row[2] == "cpu:" and row[3].endswith("%/50%")
    events = cluster.kubectl(
        "-n",
        ns,
        "get",
        "events",
        "--field-selector",
        "involvedObject.kind=HorizontalPodAutoscaler",
        "-o",
        "jsonpath={range .items[*]}{.reason}: {.message}{'\\n'}{end}",
    ).stdout
    assert "SuccessfulRescale: New size: " in events
    assert "reason: cpu resource utilization (percentage of request) above target" in events

    # Stop the burn in every pod: back in to the minimum.
    def all_running() -> list[dict[str, Any]] | None:
        pods = cluster.json("-n", ns, "get", "pods", "-l", "app=burn")["items"]
        running = [
            p
            for p in pods
            if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
        ]
        return running if len(running) == 3 else None

    for pod in cluster.wait(all_running, timeout=90, what="3 running pods"):
        cluster.uids.add(pod["metadata"]["uid"])
        cluster.kubectl("-n", ns, "exec", pod["metadata"]["name"], "--", "touch", "/tmp/stop")
    cluster.wait(lambda: replicas() == 1, timeout=240, what="scale-in to 1")
    events = cluster.kubectl(
        "-n",
        ns,
        "get",
        "events",
        "--field-selector",
        "involvedObject.kind=HorizontalPodAutoscaler",
        "-o",
        "jsonpath={range .items[*]}{.reason}: {.message}{'\\n'}{end}",
    ).stdout
    assert "SuccessfulRescale: New size: 1; reason: All metrics below target" in events
    described = cluster.kubectl("-n", ns, "describe", "hpa", "burn").stdout
    assert "ScalingActive" in described and "ValidMetricFound" in described
    status = json.dumps(cluster.json("-n", ns, "get", "hpa", "burn")["status"])
    assert '"desiredReplicas": 1' in status
