"""Every supervised loop of `pilothouse server`, killed in turn by an injected exception:
a loop that may restart is restarted and logged once with its traceback, and the cluster
still works afterwards; a part the process cannot live without makes it exit with
status 1. (The node agent's loops: tests/node/test_agent_faults.py.)"""

from __future__ import annotations

import argparse
import asyncio
import logging
import uuid
from pathlib import Path
from typing import Any

import pytest

from pilothouse import supervisor, testing
from pilothouse.api import resources
from pilothouse.cli import allinone, main
from pilothouse.cli import server as server_cli
from pilothouse.client import config, rest
from pilothouse.node import hollow

RS = resources.DEFAULT.by_path("apps", "v1", "replicasets")
PODS = resources.DEFAULT.by_path("", "v1", "pods")
NAMESPACES = resources.DEFAULT.by_path("", "v1", "namespaces")
assert RS is not None and PODS is not None and NAMESPACES is not None
BACKOFF = 0.05


def restart_logs(caplog: pytest.LogCaptureFixture, path: str) -> list[logging.LogRecord]:
    """The 'failed; restarting' records for the child at ``path``."""
    parent, _, child = path.rpartition("/")
    owner = "pilothouse/" + parent if parent else "pilothouse"
    wanted = f"{owner}: {child} failed; restarting"
    return [r for r in caplog.records if r.getMessage().startswith(wanted)]


async def restarted(tree: supervisor.Supervisor, path: str, restarts: int) -> bool:
    owner, name = tree.find(path)
    states = {s.name: s for s in owner.status()}
    st = states.get(name)
    return st is not None and st.state == "running" and st.restarts >= restarts


def test_each_loop_of_the_server_is_restarted_and_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    srv = testing.ServerThread(tmp_path / "data", controllers=True)
    srv.cluster.supervisor.backoff_initial = BACKOFF
    with srv, caplog.at_level(logging.ERROR, logger="pilothouse.supervisor"):
        tree = srv.cluster.supervisor

        async def settled() -> list[tuple[str, supervisor.ChildState]]:
            await asyncio.wait_for(srv.cluster.controller_manager.ready.wait(), 20)  # type: ignore[union-attr]
            await asyncio.wait_for(srv.cluster.scheduler.ready.wait(), 20)  # type: ignore[union-attr]
            return list(tree.walk())

        children = srv.call(settled())
        restartable = [p for p, st in children if st.policy is not supervisor.Policy.FATAL]
        fatal = sorted(p for p, st in children if st.policy is supervisor.Policy.FATAL)
        assert fatal == ["apiserver/https", "apiserver/store-writer", "apiserver/unix-socket"]
        # Each component's main loop and what runs under it, the server's own loops.
        for expected in (
            "apiserver/watch-cache",
            "apiserver/store-compactor",
            "apiserver/flowcontrol-lag",
            "apiserver/customresources/crd-reconciler",
            "apiserver/aggregator/apiservice-availability",
            "apiserver/aggregator/apiservice-discovery",
            "controller-manager/main",
            "controller-manager/controllers/replicaset",
            # The informers the controllers and the scheduler share.
            "controller-manager/shared-informers/informer pods v1",
            "scheduler/main",
            "scheduler/term/queue-backoff",
        ):
            assert expected in restartable, (expected, restartable)

        for path in restartable:
            # A component's main loop rebuilds what runs under it: those paths come back.
            if not any(path == p for p, _ in tree.walk()):
                continue

            async def kill(path: str = path) -> None:
                # Running first: the server's followers of its cache (CRDs, APIServices)
                # fail with it when the watch cache restarts, and come back after it.
                await testing.eventually(lambda: restarted(tree, path, 0), timeout=15)
                owner, name = tree.find(path)
                before = next(s.restarts for s in owner.status() if s.name == name)
                tree.inject_failure(path, RuntimeError(f"injected into {path}"))
                await testing.eventually(lambda: restarted(tree, path, before + 1), timeout=15)

            mark = len(caplog.records)
            srv.call(kill(), timeout=30)
            logged = [r for r in restart_logs(caplog, path) if r in caplog.records[mark:]]
            assert len(logged) == 1, (path, [r.getMessage() for r in logged])
            assert logged[0].exc_info is not None and f"injected into {path}" in str(
                logged[0].exc_info[1]
            )

        # Everything came back: the controllers and the scheduler still do their work.
        srv.call(_a_replica_set_gets_scheduled_pods(srv), timeout=60)
        assert srv.cluster.supervisor.problems() == []


async def _a_replica_set_gets_scheduled_pods(srv: testing.ServerThread) -> None:
    async with rest.Client(config.local_socket(srv.server.socket_path)) as client:
        ns = "f-" + uuid.uuid4().hex[:6]
        await client.create(NAMESPACES, {"metadata": {"name": ns}})
        sim = hollow.HollowCluster(client, count=1, name_prefix=f"{ns}-", heartbeat=60)
        await sim.start()
        try:
            rs: dict[str, Any] = {
                "metadata": {"name": "web"},
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {
                        "metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
                    },
                },
            }
            await client.create(RS, rs, ns)

            async def running() -> bool:
                pods = (await client.list(PODS, ns))["items"]
                return len(pods) == 2 and all(
                    (p.get("status") or {}).get("phase") == "Running" for p in pods
                )

            await testing.eventually(running, timeout=30)
        finally:
            await sim.stop(unregister=True)


def _args(data: Path, port: int) -> argparse.Namespace:
    """`pilothouse server` arguments, through its own parser (and its own post-parsing)."""
    args = main.build_parser(only="server").parse_args(
        [
            "server",
            "--data-dir", str(data),
            "--bind-address", "127.0.0.1",
            "--https-port", str(port),
            "--advertise-address", "127.0.0.1",
            "--disable-agent",
            "--disable-scheduler",
            "--disable-controller-manager",
        ]
    )  # fmt: skip
    server_cli.prepare(args)
    return args


@pytest.mark.parametrize(
    "path", ["apiserver/store-writer", "apiserver/https", "apiserver/unix-socket"]
)
async def test_a_required_part_failing_makes_the_server_exit_1(
    tmp_path: Path, path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    port = testing.free_port()
    clusters: list[allinone.AllInOne] = []
    serving = asyncio.ensure_future(
        server_cli._serve(_args(tmp_path / "data", port), on_ready=clusters.append)
    )
    await testing.eventually(lambda: _started(clusters, serving), timeout=30)
    clusters[0].supervisor.inject_failure(path, OSError(f"injected into {path}"))
    code = await asyncio.wait_for(serving, 15)
    assert code == 1
    err = capsys.readouterr().err
    assert f"pilothouse: pilothouse/{path}: OSError: injected into {path}; stopping" in err


async def _started(clusters: list[allinone.AllInOne], serving: asyncio.Future[int]) -> bool:
    assert not serving.done(), serving.result()
    return bool(clusters)
