"""``pilothouse scheduler``: the scheduler on its own, against any server."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pilothouse import supervisor as supervision
from pilothouse.cli import process
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
    process.setup_logging(args.verbose)
    try:
        cluster = config.load_kubeconfig(args.kubeconfig, context=args.context)
        configuration = scheduler_config.load(args.config) if args.config else None
    except (config.ConfigError, scheduler_config.ConfigError) as exc:
        print(f"pilothouse scheduler: {exc}", file=sys.stderr)
        return 1
    try:
        return process.run(
            _serve(cluster, configuration, args.leader_elect), name="pilothouse scheduler"
        )
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

        def start(sup: supervision.Supervisor) -> None:
            sched = scheduler.Scheduler(
                client,
                supervisor=sup,
                configuration=configuration,
                leader_elect=leader_elect,
                freeze_gc_after_sync=True,
            )
            sup.start("main", sched.run)

        return await process.run_component("scheduler", client, start)
    finally:
        await client.close()
