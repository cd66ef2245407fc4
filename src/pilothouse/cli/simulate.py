"""``pilothouse simulate``: hollow nodes for scale tests and capacity planning."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pilothouse import heap
from pilothouse.cli import process
from pilothouse.client import config, rest
from pilothouse.node import hollow

EPILOG = """\
examples:
  # 100 nodes of 32 CPUs / 128Gi in three zones: will my manifests fit?
  pilothouse simulate --kubeconfig /var/lib/pilothouse/kubeconfig.yaml --nodes 100 --zones 3
  # a GPU-less, tainted pool
  pilothouse simulate --kubeconfig k.yaml --nodes 5 --name-prefix batch- \\
      --labels pool=batch --taints dedicated=batch:NoSchedule

Hollow nodes never start containers: pods scheduled onto them are reported
Running and Ready. A container whose command says when it ends does end then,
so Jobs complete on hollow nodes:
  sleep N                  exits 0 after N seconds (N may end in s, m, h or d)
  true, false              exit 0 / 1 at once
  sh -c 'sleep 5; exit 3'  a script of sleep, exit [N], true, false, echo and :
                           joined by ; && || or newlines
The pod's restartPolicy then applies as the kubelet applies it (Never, OnFailure,
Always, with CrashLoopBackOff between restarts). Any other command runs until the
pod is deleted. Stop with Ctrl-C (add --unregister to remove the nodes).
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate",
        help="register simulated (hollow) nodes that run pods without containers",
        description="Registers N hollow nodes with the given capacity, renews their leases, and "
        "reports pods bound to them as Running and Ready (and as Succeeded or Failed when their "
        "commands say they end) — for scale tests and for checking whether workloads fit. "
        "Never used by default.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--kubeconfig", type=Path, required=True, help="kubeconfig of the API server")
    p.add_argument("--nodes", type=int, required=True, help="how many nodes")
    p.add_argument(
        "--name-prefix",
        default="hollow-",
        help="node names are PREFIX0, PREFIX1, … (default: %(default)s)",
    )
    p.add_argument("--cpu", default="32", help="CPU capacity per node (default: %(default)s)")
    p.add_argument(
        "--memory", default="128Gi", help="memory capacity per node (default: %(default)s)"
    )
    p.add_argument(
        "--pods", type=int, default=110, help="pod capacity per node (default: %(default)s)"
    )
    p.add_argument("--labels", default="", help="node labels, k=v,k2=v2")
    p.add_argument("--taints", default="", help="node taints, k=v:NoSchedule,k2:PreferNoSchedule")
    p.add_argument(
        "--zones",
        type=int,
        default=0,
        help="spread nodes over N zones (topology.kubernetes.io/zone)",
    )
    p.add_argument(
        "--heartbeat",
        type=float,
        default=10.0,
        help="lease renewal interval in seconds (default: %(default)s)",
    )
    p.add_argument("--unregister", action="store_true", help="delete the nodes when stopping")
    p.add_argument("-v", "--verbose", action="store_true", help="log more")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    process.setup_logging(args.verbose)
    if args.nodes < 1:
        print("pilothouse simulate: --nodes must be at least 1", file=sys.stderr)
        return 2
    try:
        labels = hollow.parse_labels(args.labels)
        taints = hollow.parse_taints(args.taints)
        cluster = config.load_kubeconfig(args.kubeconfig)
    except (ValueError, config.ConfigError) as exc:
        print(f"pilothouse simulate: {exc}", file=sys.stderr)
        return 2
    return process.run(_serve(args, cluster, labels, taints), name="pilothouse simulate")


async def _serve(
    args: argparse.Namespace,
    cluster: config.ClusterConfig,
    labels: dict[str, str],
    taints: list[dict[str, object]],
) -> int:
    client = rest.Client(cluster.with_user_agent("pilothouse-simulate"), max_connections=128)
    sim = hollow.HollowCluster(
        client,
        count=args.nodes,
        name_prefix=args.name_prefix,
        cpu=args.cpu,
        memory=args.memory,
        pods=args.pods,
        labels=labels,
        taints=taints,
        zones=args.zones,
        heartbeat=args.heartbeat,
    )
    try:
        print(
            f"pilothouse simulate: registering {args.nodes} hollow nodes ({args.cpu} CPU, {args.memory}, "
            f"{args.pods} pods each)…",
            flush=True,
        )
        try:
            await sim.start()
        except Exception as exc:
            print(
                f"pilothouse simulate: could not register nodes at {cluster.server}: {exc}",
                file=sys.stderr,
            )
            return 1
        print(
            f"pilothouse simulate: {args.nodes} nodes ready ({args.name_prefix}0…); Ctrl-C to stop",
            flush=True,
        )
        # A long-running process like the agent: its informers hold every pod bound to
        # its nodes, which the collector's default pace would walk again and again.
        heap.settle()
        await process.until_signalled()
        await sim.stop(unregister=args.unregister)
        print(
            f"pilothouse simulate: stopped ({sim.pods_started} pods reported running)", flush=True
        )
        return 0
    finally:
        await client.close()
