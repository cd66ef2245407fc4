"""``pilothouse controller-manager``: the control loops on their own, against any server."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from pilothouse.cli import process
from pilothouse.client import config, rest
from pilothouse.controllers import manager


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "controller-manager",
        help="run the controllers against an API server (kubeconfig)",
        description="Runs pilothouse's controllers (garbage collector, namespace, disruption, pod GC, "
        "replica sets, deployments, jobs, cron jobs, horizontal pod autoscalers, …) against the API server named by a kubeconfig. With "
        "--leader-elect, several copies may run; one leads at a time (Lease "
        f"kube-system/{manager.LEASE_NAME}).",
    )
    p.add_argument("--kubeconfig", type=Path, required=True, help="kubeconfig of the API server")
    p.add_argument("--context", default=None, help="kubeconfig context (default: current-context)")
    p.add_argument(
        "--controllers",
        default="",
        help="comma-separated controllers to run (default: all): "
        + ", ".join(manager.default_controllers()),
    )
    p.add_argument(
        "--leader-elect", action="store_true", help="elect a leader among several copies"
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log more")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    process.setup_logging(args.verbose)
    try:
        cluster = config.load_kubeconfig(args.kubeconfig, context=args.context)
    except config.ConfigError as exc:
        print(f"pilothouse controller-manager: {exc}", file=sys.stderr)
        return 1
    enabled = [c.strip() for c in args.controllers.split(",") if c.strip()] or None
    try:
        return asyncio.run(_serve(cluster, enabled, args.leader_elect))
    except ValueError as exc:
        print(f"pilothouse controller-manager: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


async def _serve(
    cluster: config.ClusterConfig, enabled: list[str] | None, leader_elect: bool
) -> int:
    client = rest.Client(cluster.with_user_agent("pilothouse-controller-manager"))
    try:
        cm = manager.ControllerManager(client, enabled=enabled, leader_elect=leader_elect)
        return await process.run_component("controller-manager", client, cm.run())
    finally:
        await client.close()
