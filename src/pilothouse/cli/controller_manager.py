"""``pilothouse controller-manager``: the control loops on their own, against any server."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pilothouse import supervisor as supervision
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
    p.add_argument(
        "--use-service-account-credentials",
        action="store_true",
        help="run each controller as its own kube-system ServiceAccount, with only its "
        "system:controller:<name> role (as kube-controller-manager's flag)",
    )
    p.add_argument(
        "--root-ca-file",
        type=Path,
        default=None,
        help="the CA to publish as kube-root-ca.crt in every namespace (default: the "
        "kubeconfig's certificate-authority)",
    )
    p.add_argument(
        "--cluster-signing-cert-file",
        type=Path,
        default=None,
        help="CA certificate the CSR signer signs with (with --cluster-signing-key-file)",
    )
    p.add_argument(
        "--cluster-signing-key-file",
        type=Path,
        default=None,
        help="key of --cluster-signing-cert-file",
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
        root_ca = args.root_ca_file.read_bytes() if args.root_ca_file else cluster.ca_data or b""
    except OSError as exc:
        print(f"pilothouse controller-manager: {exc}", file=sys.stderr)
        return 1
    signing = None
    if args.cluster_signing_cert_file or args.cluster_signing_key_file:
        if not (args.cluster_signing_cert_file and args.cluster_signing_key_file):
            print(
                "pilothouse controller-manager: pass both --cluster-signing-cert-file and "
                "--cluster-signing-key-file",
                file=sys.stderr,
            )
            return 2
        signing = (args.cluster_signing_cert_file, args.cluster_signing_key_file)
    options = {
        "use_service_account_credentials": args.use_service_account_credentials,
        "root_ca": root_ca,
        "signing_files": signing,
    }
    try:
        return process.run(
            _serve(cluster, enabled, args.leader_elect, options),
            name="pilothouse controller-manager",
        )
    except ValueError as exc:
        print(f"pilothouse controller-manager: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


async def _serve(
    cluster: config.ClusterConfig,
    enabled: list[str] | None,
    leader_elect: bool,
    options: dict[str, Any],
) -> int:
    client = rest.Client(cluster.with_user_agent("pilothouse-controller-manager"))
    try:
        # Checked before anything runs: an unknown controller name is a usage error.
        manager.ControllerManager(
            client, supervisor=supervision.Supervisor("check"), enabled=enabled, **options
        )

        def start(sup: supervision.Supervisor) -> None:
            cm = manager.ControllerManager(
                client, supervisor=sup, enabled=enabled, leader_elect=leader_elect, **options
            )
            sup.start("main", cm.run)

        return await process.run_component("controller-manager", client, start)
    finally:
        await client.close()
