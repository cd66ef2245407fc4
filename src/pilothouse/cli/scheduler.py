"""``pilothouse scheduler``: the scheduler on its own, against any server."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from pilothouse.client import config, rest
from pilothouse.scheduler import config as scheduler_config
from pilothouse.scheduler import scheduler


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "scheduler",
        help="run the scheduler against an API server (kubeconfig)",
        description="Runs pilothouse's scheduler against the API server named by a kubeconfig. "
        "It places pending pods whose spec.schedulerName is one of its profiles "
        "(default-scheduler unless --config says otherwise). --config takes a "
        "KubeSchedulerConfiguration (kubescheduler.config.k8s.io/v1), e.g. to bin-pack with "
        "the MostAllocated scoring strategy. With --leader-elect, several copies may run; one "
        f"leads at a time (Lease kube-system/{scheduler.LEASE_NAME}).",
    )
    p.add_argument("--kubeconfig", type=Path, required=True, help="kubeconfig of the API server")
    p.add_argument("--context", default=None, help="kubeconfig context (default: current-context)")
    p.add_argument("--config", type=Path, default=None, help="KubeSchedulerConfiguration file")
    p.add_argument(
        "--leader-elect", action="store_true", help="elect a leader among several copies"
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log more")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        cluster = config.load_kubeconfig(args.kubeconfig, context=args.context)
        configuration = scheduler_config.load(args.config) if args.config else None
    except (config.ConfigError, scheduler_config.ConfigError) as exc:
        print(f"pilothouse scheduler: {exc}", file=sys.stderr)
        return 1
    try:
        return asyncio.run(_serve(cluster, configuration, args.leader_elect))
    except ValueError as exc:
        print(f"pilothouse scheduler: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


async def _serve(
    cluster: config.ClusterConfig,
    configuration: scheduler_config.Configuration | None,
    leader_elect: bool,
) -> int:
    client = rest.Client(cluster.with_user_agent("pilothouse-scheduler"))
    try:
        sched = scheduler.Scheduler(
            client,
            configuration=configuration,
            leader_elect=leader_elect,
            freeze_gc_after_sync=True,
        )
        try:
            await client.wait_ready(timeout=60)
        except Exception as exc:
            print(f"pilothouse scheduler: cannot reach {cluster.server}: {exc!r}", file=sys.stderr)
            return 1
        task = asyncio.create_task(sched.run())
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        waiter = asyncio.create_task(stop.wait())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        task.cancel()
        waiter.cancel()
        results = await asyncio.gather(task, waiter, return_exceptions=True)
        failure = results[0]
        if isinstance(failure, Exception) and not isinstance(failure, asyncio.CancelledError):
            print(f"pilothouse scheduler: {failure}", file=sys.stderr)
            return 1
        return 0
    finally:
        await client.close()
