"""``pilothouse dev cluster``: a multi-machine cluster on this machine, for demos and tests."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

EPILOG = """\
examples:
  sudo pilothouse dev cluster --servers 3 --agents 2
  sudo pilothouse dev cluster --agents 1 --data-dir /tmp/ph-dev --remove-data

Servers get addresses 10.99.0.201, .202, … on the bridge phlan0 (port 6443); agents
run in network namespaces phhost-agent-N at 10.99.0.2, .3, …; with more than one
server an etcd cluster (up to three members, on loopback) is the datastore. When it
is up, the command prints the kubeconfig; then try
  kubectl --kubeconfig DATA_DIR/server-0/kubeconfig.yaml get nodes
Ctrl-C (or SIGTERM) tears it all down: agents and what their pods left, network
namespaces, servers, etcd, addresses and the bridge. Needs root, etcd-server for
several servers, and images reachable from the agents' namespaces (or --preload).
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "dev",
        help="development helpers: a multi-machine cluster on this machine",
        description="Development helpers.",
    )
    dev = p.add_subparsers(dest="dev_command", metavar="COMMAND")
    c = dev.add_parser(
        "cluster",
        help="run servers and agents as separate 'hosts' (network namespaces) on this machine",
        description="Brings up a cluster of several servers and agents on this machine, in the "
        "foreground, and removes all of it when stopped.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    c.add_argument("--servers", type=int, default=1, help="API servers (default: %(default)s)")
    c.add_argument("--agents", type=int, default=2, help="agent hosts (default: %(default)s)")
    c.add_argument(
        "--data-dir",
        type=Path,
        default=Path("/var/lib/pilothouse-dev"),
        help="where every server and agent keeps its state (default: %(default)s)",
    )
    c.add_argument("--port", type=int, default=6443, help="the servers' port (default: 6443)")
    c.add_argument(
        "--preload",
        action="append",
        default=[],
        metavar="IMAGE",
        help="pull IMAGE (a reference or a tarball) into every agent before it starts; repeatable",
    )
    c.add_argument("--remove-data", action="store_true", help="also delete --data-dir when done")
    c.set_defaults(func=run_cluster)
    p.set_defaults(func=lambda _args: _usage(p))


def _usage(p: argparse.ArgumentParser) -> int:
    p.print_help()
    return 2


def run_cluster(args: argparse.Namespace) -> int:
    from pilothouse import devcluster, devhosts

    if os.geteuid() != 0:
        print("pilothouse dev cluster: needs root (network namespaces, bridges)", file=sys.stderr)
        return 1
    try:
        cluster = devcluster.DevCluster(
            args.data_dir.resolve(), servers=args.servers, agents=args.agents, port=args.port
        )
    except ValueError as exc:
        print(f"pilothouse dev cluster: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print(f"pilothouse dev cluster: {args.servers} server(s), {args.agents} agent(s)…", flush=True)
    try:
        cluster.up(preload=args.preload)
        cluster.wait_nodes_ready()
    except (devcluster.DevClusterError, devhosts.DevHostError, RuntimeError, TimeoutError) as exc:
        print(f"pilothouse dev cluster: could not bring it up: {exc}", file=sys.stderr)
        return 1
    for i, srv in enumerate(cluster.server_processes):
        print(f"  server-{i}  {srv.url}", flush=True)
    for host in cluster.hosts:
        print(f"  {host.name}  {host.address}  (ip netns exec {host.netns} …)", flush=True)
    print(
        f"pilothouse dev cluster: ready; kubectl --kubeconfig {cluster.kubeconfig} get nodes\n"
        "Ctrl-C tears it down.",
        flush=True,
    )
    stop.wait()
    print("pilothouse dev cluster: tearing down", flush=True)
    left = cluster.down(remove_data=args.remove_data)
    if left:
        print(f"pilothouse dev cluster: left behind: {', '.join(left)}", file=sys.stderr)
        return 1
    print("pilothouse dev cluster: all removed", flush=True)
    return 0
