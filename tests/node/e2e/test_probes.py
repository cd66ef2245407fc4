"""Health checks that heal, with real containers: liveness restarts, readiness flips,
startup probes holding liveness back, and preStop running before SIGTERM.

Exec probes run through ``crun exec`` inside the container; httpGet probes reach
busybox httpd on the pod's IP. Needs root; CI runs as root.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from .realcluster import Cluster, pod_manifest

pytestmark = [
    pytest.mark.root,
    pytest.mark.containers,
    pytest.mark.netns,
    pytest.mark.kubectl,
    pytest.mark.slow,
]


def _exec_probe(path: str, **fields: Any) -> dict[str, Any]:
    return {"exec": {"command": ["cat", path]}, "periodSeconds": 1, **fields}


def _container(pod: dict[str, Any]) -> dict[str, Any]:
    statuses = (pod.get("status") or {}).get("containerStatuses") or [{}]
    return statuses[0]


def _ready(pod: dict[str, Any]) -> str:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return next((c["status"] for c in conditions if c["type"] == "Ready"), "")


def _events(cluster: Cluster, ns: str, name: str) -> list[str]:
    out = cluster.kubectl(
        "-n",
        ns,
        "get",
        "events",
        "--field-selector",
        f"involvedObject.name={name}",
        "-o",
        "jsonpath={range .items[*]}{.reason}: {.message}{'\\n'}{end}",
    ).stdout
    return out.splitlines()


def test_failing_liveness_probe_restarts_the_container(cluster: Cluster, ns: str) -> None:
    # Healthy for 3 s, then the probe's file goes: the container must be restarted.
    script = "touch /tmp/healthy; sleep 3; rm /tmp/healthy; sleep 3600"
    cluster.apply(
        ns,
        pod_manifest(
            "sick",
            cluster.image,
            ["sh", "-c", script],
            container={"livenessProbe": _exec_probe("/tmp/healthy", failureThreshold=2)},
        ),
    )
    first = _container(cluster.running(ns, "sick"))["containerID"]
    restarted = cluster.wait(
        lambda: (lambda c: c if c.get("restartCount", 0) >= 1 else None)(
            _container(cluster.pod(ns, "sick"))
        ),
        timeout=60,
        what="a restart after the liveness probe failed",
    )
    assert restarted["containerID"] != first
    assert restarted["lastState"]["terminated"]["containerID"] == first
    events = _events(cluster, ns, "sick")
    assert any(e.startswith("Unhealthy: Liveness probe failed") for e in events), events
    assert any("failed liveness probe, will be restarted" in e for e in events), events


def test_readiness_probe_moves_the_pod_in_and_out_of_ready(cluster: Cluster, ns: str) -> None:
    script = "mkdir -p /www && echo ok > /www/ready && exec httpd -f -p 8080 -h /www"
    probe = {"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 1}
    cluster.apply(
        ns,
        pod_manifest(
            "web", cluster.image, ["sh", "-c", script], container={"readinessProbe": probe}
        ),
    )
    cluster.running(ns, "web")
    cluster.wait(lambda: _ready(cluster.pod(ns, "web")) == "True", what="Ready")
    cluster.kubectl("-n", ns, "exec", "web", "--", "rm", "/www/ready")
    cluster.wait(lambda: _ready(cluster.pod(ns, "web")) == "False", what="not Ready")
    pod = cluster.pod(ns, "web")
    assert _container(pod)["ready"] is False and _container(pod)["restartCount"] == 0
    assert pod["status"]["phase"] == "Running"  # unready is not unhealthy: no restart
    cluster.kubectl("-n", ns, "exec", "web", "--", "sh", "-c", "echo ok > /www/ready")
    cluster.wait(lambda: _ready(cluster.pod(ns, "web")) == "True", what="Ready again")


@pytest.mark.parametrize("with_startup_probe", [True, False])
def test_startup_probe_holds_liveness_back(
    cluster: Cluster, ns: str, with_startup_probe: bool
) -> None:
    # The app takes 8 s to come up; liveness alone (1 s period, threshold 1) kills it first.
    # (8 s, not less: the "not started yet" check below must hold on a slow machine too.)
    script = "sleep 8; touch /tmp/up; sleep 3600"
    container: dict[str, Any] = {
        "livenessProbe": _exec_probe("/tmp/up", failureThreshold=1, initialDelaySeconds=1)
    }
    if with_startup_probe:
        container["startupProbe"] = _exec_probe("/tmp/up", failureThreshold=30)
    cluster.apply(
        ns, pod_manifest("slow", cluster.image, ["sh", "-c", script], container=container)
    )
    cluster.running(ns, "slow")
    if not with_startup_probe:
        cluster.wait(
            lambda: _container(cluster.pod(ns, "slow")).get("restartCount", 0) >= 1,
            timeout=30,
            what="liveness to kill the slow starter",
        )
        return
    early = _container(cluster.pod(ns, "slow"))
    assert early["started"] is False
    cluster.wait(lambda: _container(cluster.pod(ns, "slow")).get("started"), what="started")
    time.sleep(3)  # liveness now runs, and passes
    final = _container(cluster.pod(ns, "slow"))
    assert final["restartCount"] == 0 and final["ready"] is True


def test_prestop_runs_before_sigterm(cluster: Cluster, ns: str, tmp_path: Path) -> None:
    shared = tmp_path / "order"
    shared.mkdir()
    script = "trap 'echo sigterm >> /shared/log; exit 0' TERM; while true; do sleep 0.1; done"
    hook = {"exec": {"command": ["sh", "-c", "echo prestop >> /shared/log; sleep 1"]}}
    cluster.apply(
        ns,
        pod_manifest(
            "polite",
            cluster.image,
            ["sh", "-c", script],
            terminationGracePeriodSeconds=20,
            volumes=[{"name": "shared", "hostPath": {"path": str(shared)}}],
            container={
                "lifecycle": {"preStop": hook},
                "volumeMounts": [{"name": "shared", "mountPath": "/shared"}],
            },
        ),
    )
    cluster.running(ns, "polite")
    started = time.monotonic()
    cluster.kubectl("-n", ns, "delete", "pod", "polite")
    assert time.monotonic() - started < 15  # the hook's second, then SIGTERM ends it
    assert (shared / "log").read_text().splitlines() == ["prestop", "sigterm"]


def test_probes_pointing_at_nothing_say_why_and_the_agent_carries_on(
    cluster: Cluster, ns: str
) -> None:
    cluster.apply(
        ns,
        pod_manifest(
            "lost",
            cluster.image,
            ["sleep", "3600"],
            container={
                "readinessProbe": {"httpGet": {"path": "/", "port": 9999}, "periodSeconds": 1},
                "livenessProbe": {
                    "exec": {"command": ["/no/such/binary"]},
                    "periodSeconds": 1,
                    "failureThreshold": 1000,  # report, never restart, during the test
                },
            },
        ),
    )
    cluster.running(ns, "lost")

    def both_reported() -> list[str] | None:
        events = _events(cluster, ns, "lost")
        readiness = [e for e in events if e.startswith("Unhealthy: Readiness probe failed")]
        liveness = [e for e in events if e.startswith("Unhealthy: Liveness probe failed")]
        return events if readiness and liveness else None

    events = cluster.wait(both_reported, timeout=30, what="Unhealthy events for both probes")
    assert any(":9999" in e and "connection refused" in e for e in events), events
    assert any("/no/such/binary" in e for e in events), events
    pod = cluster.pod(ns, "lost")
    assert _ready(pod) == "False" and _container(pod)["restartCount"] == 0
    # The agent is unaffected: the next pod starts as usual.
    cluster.apply(ns, pod_manifest("next", cluster.image, ["sleep", "3600"]))
    cluster.running(ns, "next", timeout=30)
