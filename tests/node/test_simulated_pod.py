"""A hollow pod's containers end, restart and back off as the kubelet's would."""

from __future__ import annotations

from typing import Any

from pilothouse.node import simulated_pod
from pilothouse.node import status as node_status

T0 = 1_700_000_000.0


def _pod(restart: str, *containers: list[str]) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u1"},
        "spec": {
            "restartPolicy": restart,
            "containers": [
                {"name": f"c{i}", "image": "busybox", "command": argv}
                for i, argv in enumerate(containers)
            ],
        },
    }


def _phase(pod: dict[str, Any], run: simulated_pod.PodRun) -> str:
    status = node_status.pod_status(
        pod,
        containers=run.states(),
        host_ip="10.0.0.1",
        pod_ip="10.1.0.2",
        sandbox_ready=True,
        start_time="",
    )
    return str(status["phase"])


def test_never_ends_after_its_sleep_with_its_exit_code() -> None:
    pod = _pod("Never", ["sh", "-c", "sleep 5; exit 3"])
    run = simulated_pod.PodRun(pod, now=T0)
    assert _phase(pod, run) == "Running"
    assert run.next_change() == T0 + 5
    run.advance(T0 + 4.9)
    assert not run.done
    run.advance(T0 + 5)
    assert run.done
    [state] = run.states()
    assert (state.state, state.exit_code, state.reason) == ("terminated", 3, "Error")
    assert _phase(pod, run) == "Failed"
    assert run.next_change() is None


def test_succeeds_when_every_container_exits_zero() -> None:
    pod = _pod("OnFailure", ["true"], ["sleep", "2"])
    run = simulated_pod.PodRun(pod, now=T0)
    assert not run.done and _phase(pod, run) == "Running"
    run.advance(T0 + 2)
    assert run.done and _phase(pod, run) == "Succeeded"


def test_on_failure_restarts_with_doubling_back_off() -> None:
    pod = _pod("OnFailure", ["sh", "-c", "exit 1"])
    run = simulated_pod.PodRun(pod, now=T0)
    [state] = run.states()
    assert state.state == "waiting" and state.reason == "CrashLoopBackOff"
    assert state.message == "back-off 10s restarting failed container=c0 pod=p_ns(u1)"
    assert _phase(pod, run) == "Running"  # as the kubelet reports a crash-looping pod
    assert run.next_change() == T0 + 10
    run.advance(T0 + 10)  # restarted, failed again: now 20 s
    [state] = run.states()
    assert state.restart_count == 1 and state.last_state["terminated"]["exitCode"] == 1
    assert run.next_change() == T0 + 30
    run.advance(T0 + 10_000)
    [state] = run.states()
    assert state.restart_count >= 30  # capped at 5 minutes between restarts
    assert not run.done


def test_unknown_commands_run_until_deleted() -> None:
    pod = _pod("Never", ["httpd", "-f"])
    run = simulated_pod.PodRun(pod, now=T0)
    run.advance(T0 + 86400)
    assert run.next_change() is None and not run.done
    assert _phase(pod, run) == "Running"
