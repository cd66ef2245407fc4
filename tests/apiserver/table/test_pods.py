"""The Pod table, with the cases of upstream's TestPrintPod* tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from pilothouse.apiserver.table import pods

NOW = 1_764_088_762.0


def ago(seconds: float) -> str:
    return datetime.fromtimestamp(NOW - seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status(
    *,
    ready: bool = False,
    restarts: int = 0,
    state: dict[str, Any] | None = None,
    finished_ago: float | None = None,
    name: str = "",
    started: bool | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "ready": ready, "restartCount": restarts}
    if state is not None:
        out["state"] = state
    if finished_ago is not None:
        out["lastState"] = {"terminated": {"exitCode": 0, "finishedAt": ago(finished_ago)}}
    if started is not None:
        out["started"] = started
    return out


RUNNING = {"running": {"startedAt": "2025-11-25T00:00:00Z"}}
WAITING: dict[str, Any] = {"waiting": {}}


def waiting(reason: str) -> dict[str, Any]:
    return {"waiting": {"reason": reason}}


def terminated(reason: str = "", exit_code: int = 0, signal: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {"exitCode": exit_code}
    if reason:
        out["reason"] = reason
    if signal:
        out["signal"] = signal
    return {"terminated": out}


def pod(
    name: str,
    *,
    containers: int = 1,
    init: int | list[dict[str, Any]] = 0,
    phase: str = "",
    reason: str = "",
    statuses: list[dict[str, Any]] | None = None,
    init_statuses: list[dict[str, Any]] | None = None,
    conditions: list[dict[str, Any]] | None = None,
    deleted: bool = False,
    **spec_extra: Any,
) -> dict[str, Any]:
    init_specs = [{"name": ""} for _ in range(init)] if isinstance(init, int) else init
    pod_status: dict[str, Any] = {"phase": phase}
    if reason:
        pod_status["reason"] = reason
    if statuses is not None:
        pod_status["containerStatuses"] = statuses
    if init_statuses is not None:
        pod_status["initContainerStatuses"] = init_statuses
    if conditions is not None:
        pod_status["conditions"] = conditions
    meta: dict[str, Any] = {"name": name}
    if deleted:
        meta["deletionTimestamp"] = ago(10)
    spec: dict[str, Any] = {"containers": [{"name": ""} for _ in range(containers)], **spec_extra}
    if init_specs:
        spec["initContainers"] = init_specs
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": pod_status}


def cells(obj: dict[str, Any]) -> list[Any]:
    return pods.pod_cells(obj, NOW)[:5]


# TestPrintPod
PRINT_POD_CASES = [
    (
        pod("test1", containers=2, phase="podPhase",
            statuses=[status(ready=True, restarts=3, state=RUNNING), status(restarts=3)]),
        ["test1", "1/2", "podPhase", "6", "<unknown>"],
    ),
    (
        pod("test2", containers=2, phase="podPhase",
            statuses=[status(ready=True, restarts=3, state=RUNNING),
                      status(restarts=3, state=waiting("ContainerWaitingReason"))]),
        ["test2", "1/2", "ContainerWaitingReason", "6", "<unknown>"],
    ),
    (
        # the first container's reason wins over the others'
        pod("test3", containers=2, phase="podPhase",
            statuses=[status(restarts=3, state=waiting("ContainerWaitingReason")),
                      status(restarts=3, state=terminated("ContainerTerminatedReason"))]),
        ["test3", "0/2", "ContainerWaitingReason", "6", "<unknown>"],
    ),
    (
        # ready is not enough for reporting running
        pod("test4", containers=2, phase="podPhase",
            statuses=[status(ready=True, restarts=3, state=RUNNING), status(ready=True, restarts=3)]),
        ["test4", "1/2", "podPhase", "6", "<unknown>"],
    ),
    (
        pod("test5", containers=2, phase="podPhase", reason="podReason",
            statuses=[status(ready=True, restarts=3, state=RUNNING), status(ready=True, restarts=3)]),
        ["test5", "1/2", "podReason", "6", "<unknown>"],
    ),
    (
        # one container completed, one running, without a Ready condition
        pod("test6", containers=2, phase="Running",
            statuses=[status(ready=True, restarts=3, state=terminated("Completed")),
                      status(ready=True, restarts=3, state=RUNNING)]),
        ["test6", "1/2", "NotReady", "6", "<unknown>"],
    ),
    (
        pod("test6", containers=2, phase="Running",
            statuses=[status(ready=True, restarts=3, state=terminated("Completed")),
                      status(ready=True, restarts=3, state=RUNNING)],
            conditions=[{"type": "Ready", "status": "True"}]),
        ["test6", "1/2", "Running", "6", "<unknown>"],
    ),
    (
        # one init container restarting, one container not running
        pod("test7", init=1, phase="podPhase",
            init_statuses=[status(restarts=3, state=RUNNING, finished_ago=10)],
            statuses=[status(state=WAITING)]),
        ["test7", "0/1", "Init:0/1", "3 (10s ago)", "<unknown>"],
    ),
    (
        pod("test8", init=2, phase="podPhase",
            init_statuses=[status(restarts=3, state=RUNNING, finished_ago=10), status(state=WAITING)],
            statuses=[status(state=WAITING)]),
        ["test8", "0/1", "Init:0/2", "3 (10s ago)", "<unknown>"],
    ),
    (
        # first init container completed without restarts, second restarting
        pod("test9", init=2, phase="podPhase",
            init_statuses=[status(state=terminated()),
                           status(restarts=3, state=RUNNING, finished_ago=10)],
            statuses=[status(state=WAITING)]),
        ["test9", "0/1", "Init:1/2", "3 (10s ago)", "<unknown>"],
    ),
    (
        pod("test10", init=2, phase="podPhase",
            init_statuses=[status(restarts=2, state=terminated(), finished_ago=120),
                           status(restarts=3, state=RUNNING, finished_ago=10)],
            statuses=[status(state=WAITING)]),
        ["test10", "0/1", "Init:1/2", "5 (10s ago)", "<unknown>"],
    ),
    (
        # init done: only the app containers' restarts count
        pod("test11", init=1, phase="Running",
            init_statuses=[status(restarts=2, state=terminated(), finished_ago=120)],
            statuses=[status(restarts=4, state=RUNNING, finished_ago=20)]),
        ["test11", "0/1", "Running", "4 (20s ago)", "<unknown>"],
    ),
    (
        pod("test12", phase="Running",
            statuses=[status(ready=True, restarts=3, state=RUNNING, finished_ago=5 * 86400)]),
        ["test12", "1/1", "Running", "3 (5d ago)", "<unknown>"],
    ),
    (
        pod("test13", containers=2, phase="Running",
            statuses=[status(ready=True, state=RUNNING),
                      status(ready=True, restarts=3, state=RUNNING, finished_ago=10 * 86400)]),
        ["test13", "2/2", "Running", "3 (10d ago)", "<unknown>"],
    ),
    (
        # the most recent restart of any container
        pod("test14", containers=2, phase="Running",
            statuses=[status(ready=True, restarts=6, state=RUNNING, finished_ago=5 * 86400),
                      status(ready=True, restarts=3, state=RUNNING, finished_ago=20 * 86400)]),
        ["test14", "2/2", "Running", "9 (5d ago)", "<unknown>"],
    ),
    (
        pod("test15", containers=2, phase="podPhase",
            conditions=[{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]),
        ["test15", "0/2", "SchedulingGated", "0", "<unknown>"],
    ),
    (
        pod("test16", phase="Succeeded", statuses=[status(state=terminated("Completed"))]),
        ["test16", "0/1", "Completed", "0", "<unknown>"],
    ),
    (
        pod("test17", phase="Failed", statuses=[status(state=terminated("Error", 1))]),
        ["test17", "0/1", "Error", "0", "<unknown>"],
    ),
    (
        # a terminal pod being deleted keeps its status
        pod("test18", phase="Succeeded", deleted=True, statuses=[status(state=terminated("Completed"))]),
        ["test18", "0/1", "Completed", "0", "<unknown>"],
    ),
    (
        pod("test19", phase="Running", deleted=True, statuses=[status(state=RUNNING)]),
        ["test19", "0/1", "Terminating", "0", "<unknown>"],
    ),
    (
        pod("test20", phase="Pending", deleted=True),
        ["test20", "0/1", "Terminating", "0", "<unknown>"],
    ),
]  # fmt: skip


@pytest.mark.parametrize(("obj", "want"), PRINT_POD_CASES, ids=[c[1][0] for c in PRINT_POD_CASES])
def test_print_pod(obj: dict[str, Any], want: list[Any]) -> None:
    assert cells(obj) == want


def sidecars(*names: str) -> list[dict[str, Any]]:
    return [{"name": n, "restartPolicy": "Always"} for n in names]


# TestPrintPodWithRestartableInitContainer
SIDECAR_CASES = [
    (
        # two sidecars, the first running but not started
        pod("test1", init=sidecars("restartable-init-1", "restartable-init-2"), phase="Pending",
            init_statuses=[
                status(name="restartable-init-1", restarts=3, state=RUNNING, started=False, finished_ago=10),
                status(name="restartable-init-2", state=WAITING, started=False),
            ],
            statuses=[status(state=WAITING)],
            conditions=[{"type": "Initialized", "status": "False"}]),
        ["test1", "0/3", "Init:0/2", "3 (10s ago)", "<unknown>"],
    ),
    (
        # the first started, the second running but not started
        pod("test1", init=sidecars("restartable-init-1", "restartable-init-2"), phase="Pending",
            init_statuses=[
                status(name="restartable-init-1", restarts=3, state=RUNNING, started=True, finished_ago=10),
                status(name="restartable-init-2", state=RUNNING, started=False),
            ],
            statuses=[status(state=WAITING)],
            conditions=[{"type": "Initialized", "status": "False"}]),
        ["test1", "0/3", "Init:1/2", "3 (10s ago)", "<unknown>"],
    ),
    (
        # both started, one container running: sidecar restarts count, their
        # last restart too
        pod("test2", init=sidecars("restartable-init-1", "restartable-init-2"), phase="Running",
            init_statuses=[
                status(name="restartable-init-1", restarts=3, state=RUNNING, started=True, finished_ago=10),
                status(name="restartable-init-2", state=RUNNING, started=True),
            ],
            statuses=[status(ready=True, restarts=4, state=RUNNING, finished_ago=20)],
            conditions=[{"type": "Initialized", "status": "True"}]),
        ["test2", "1/3", "Running", "7 (10s ago)", "<unknown>"],
    ),
    (
        # sidecars killed at the end, the container completed
        pod("test3", init=sidecars("restartable-init-1", "restartable-init-2"), phase="Succeeded",
            init_statuses=[
                status(name="restartable-init-1", restarts=3, state=terminated("Error", 137),
                       started=False, finished_ago=10),
                status(name="restartable-init-2", state=terminated("Error", 137), started=False),
            ],
            statuses=[status(restarts=4, state=terminated("Completed"), finished_ago=20)],
            conditions=[{"type": "Initialized", "status": "True"}]),
        ["test3", "0/3", "Completed", "7 (10s ago)", "<unknown>"],
    ),
    (
        # statuses of containers that are not in the spec
        pod("test4",
            init=[{"name": "init1", "image": "initimage"},
                  {"name": "sidecar1", "image": "sidecarimage", "restartPolicy": "Always"}],
            phase="Running",
            init_statuses=[status(name="initinvalid"), status(name="init1"), status(name="sidecar1")],
            statuses=[status(name="containerinvalid"), status(name="container1")]),
        ["test4", "0/2", "Init:0/2", "0", "<unknown>"],
    ),
    (
        # a started sidecar that is ready counts toward READY while initializing
        pod("test5", init=[*sidecars("proxy"), {"name": "migrate"}], phase="Pending",
            init_statuses=[
                status(name="proxy", ready=True, state=RUNNING, started=True),
                status(name="migrate", state=waiting("CrashLoopBackOff"), restarts=4, finished_ago=30),
            ],
            statuses=[status(state=waiting("PodInitializing"))]),
        ["test5", "1/2", "Init:CrashLoopBackOff", "4 (30s ago)", "<unknown>"],
    ),
]  # fmt: skip


@pytest.mark.parametrize(("obj", "want"), SIDECAR_CASES)
def test_print_pod_with_restartable_init_container(obj: dict[str, Any], want: list[Any]) -> None:
    assert cells(obj) == want


@pytest.mark.parametrize(
    ("init_state", "want"),
    [
        (terminated("OOMKilled", 137), "Init:OOMKilled"),
        (terminated(exit_code=2), "Init:ExitCode:2"),
        (terminated(exit_code=137, signal=9), "Init:Signal:9"),
        (waiting("ImagePullBackOff"), "Init:ImagePullBackOff"),
        (waiting("PodInitializing"), "Init:0/1"),
    ],
)
def test_init_container_failures(init_state: dict[str, Any], want: str) -> None:
    obj = pod("p", init=1, phase="Pending", init_statuses=[status(state=init_state)],
              statuses=[status(state=waiting("PodInitializing"))])  # fmt: skip
    assert cells(obj)[2] == want


@pytest.mark.parametrize(
    ("state", "want"),
    [
        (terminated(exit_code=1), "ExitCode:1"),
        (terminated(exit_code=143, signal=15), "Signal:15"),
        (waiting("CrashLoopBackOff"), "CrashLoopBackOff"),
    ],
)
def test_container_reasons(state: dict[str, Any], want: str) -> None:
    assert cells(pod("p", phase="Running", statuses=[status(state=state)]))[2] == want


def test_node_lost_pod_being_deleted_is_unknown() -> None:
    obj = pod(
        "p", phase="Running", reason="NodeLost", deleted=True, statuses=[status(state=RUNNING)]
    )
    assert cells(obj)[2] == "Unknown"
    del obj["metadata"]["deletionTimestamp"]
    assert cells(obj)[2] == "NodeLost"


# TestPrintPodwide
def test_print_pod_wide() -> None:
    obj = pod(
        "test1",
        containers=2,
        phase="podPhase",
        statuses=[status(ready=True, restarts=3, state=RUNNING), status(restarts=3)],
        nodeName="test1",
        readinessGates=[{"conditionType": c} for c in ("condition1", "condition2", "condition3")],
        conditions=[
            {"type": "condition1", "status": "False"},
            {"type": "condition2", "status": "True"},
        ],
    )
    obj["status"]["podIPs"] = [{"ip": "1.1.1.1"}, {"ip": "2001:db8::"}]
    obj["status"]["nominatedNodeName"] = "node1"
    assert pods.pod_cells(obj, NOW) == [
        "test1", "1/2", "podPhase", "6", "<unknown>", "1.1.1.1", "test1", "node1", "1/3",
    ]  # fmt: skip


def test_print_pod_wide_none() -> None:
    obj = pod("test2", containers=2, phase="podPhase",
              statuses=[status(ready=True, restarts=3, state=RUNNING),
                        status(restarts=3, state=waiting("ContainerWaitingReason"))])  # fmt: skip
    assert pods.pod_cells(obj, NOW)[5:] == ["<none>", "<none>", "<none>", "<none>"]


def test_pod_ip_falls_back_to_pod_ip_field() -> None:
    obj = pod("p", phase="Running")
    obj["status"]["podIP"] = "10.42.0.5"
    assert pods.pod_cells(obj, NOW)[5] == "10.42.0.5"


def test_age() -> None:
    obj = pod("p", phase="Running")
    obj["metadata"]["creationTimestamp"] = ago(3 * 3600 + 25 * 60)
    assert cells(obj)[4] == "3h25m"


# TestPrintPodConditions / TestPrintNonTerminatedPod
@pytest.mark.parametrize(
    ("phase", "want"),
    [
        ("Running", None),
        ("Pending", None),
        ("Unknown", None),
        ("Succeeded", [{"type": "Completed", "status": "True", "reason": "Succeeded",
                        "message": "The pod has completed successfully."}]),
        ("Failed", [{"type": "Completed", "status": "True", "reason": "Failed",
                     "message": "The pod failed."}]),
    ],
)  # fmt: skip
def test_pod_conditions(phase: str, want: list[dict[str, str]] | None) -> None:
    obj = pod("p", containers=2, phase=phase,
              statuses=[status(ready=True, restarts=3, state=RUNNING), status(restarts=3)])  # fmt: skip
    assert pods.pod_conditions(obj) == want
    assert cells(obj)[2] == phase


def test_columns() -> None:
    names = [(c["name"], c["type"], c["priority"]) for c in pods.COLUMNS]
    assert names == [
        ("Name", "string", 0),
        ("Ready", "string", 0),
        ("Status", "string", 0),
        ("Restarts", "string", 0),
        ("Age", "string", 0),
        ("IP", "string", 1),
        ("Node", "string", 1),
        ("Nominated Node", "string", 1),
        ("Readiness Gates", "string", 1),
    ]
    assert pods.COLUMNS[0]["format"] == "name"
