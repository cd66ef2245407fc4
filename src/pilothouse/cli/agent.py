"""``pilothouse agent``: join this machine to a cluster as a node and run its pods."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import socket
import sys
from pathlib import Path

from pilothouse import heap
from pilothouse import supervisor as supervision
from pilothouse.cli import dnsflags, nodeflags, process
from pilothouse.client import config, rest
from pilothouse.node import agent, apiserverlb, bootstrap, nodeshutdown, servicenet, setup
from pilothouse.node import server as agent_server
from pilothouse.node.runtime.images import registries

STOP_TIMEOUT = 8.0

EPILOG = """\
example:
  # on the server:  cat /var/lib/pilothouse/token
  pilothouse agent --server https://10.0.0.5:6443 --token K10…::server:…

  # a second agent on the same machine (in its own network namespace) needs its
  # own data dir, bridge, cgroup root and run dir:
  pilothouse agent --server … --token … --node-name n2 --data-dir /var/lib/ph-n2 \\
      --bridge ph1 --cgroup-root /pilothouse-n2 --run-dir /run/pilothouse-n2

The token's first part pins the cluster's CA, so the agent never talks to a
server that is not yours. After the first join the node's certificates live in
<data-dir>/agent/pki and the token is no longer needed.

With several servers, the agent keeps their list (the kubernetes Endpoints, saved in
<data-dir>/agent/apiservers.json) and reaches the API through a load balancer of its
own on 127.0.0.1, which moves to a live server when one dies; pods keep running.

The agent runs the node's service proxy (nftables table pilothouse-proxy) and
routes every other node's pod CIDR via that node's address (host-gw: all nodes
must share a network). Both are removed when the agent stops.

  # eviction thresholds, image GC, log limits … in one KubeletConfiguration file
  pilothouse agent --server … --config /etc/pilothouse/kubelet.yaml
  # pull docker.io images from a mirror on the LAN (k3s' registries.yaml format)
  pilothouse agent --server … --private-registry /etc/pilothouse/registries.yaml
"""


def _primary_address() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))
            return str(s.getsockname()[0])
        except OSError:
            return "127.0.0.1"


def _duration(text: str) -> float:
    """``30s``, ``2m``, ``1h`` or plain seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    text = text.strip()
    try:
        if text and text[-1] in units:
            return float(text[:-1]) * units[text[-1]]
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration (e.g. 30s, 2m, or seconds)"
        ) from None


def _storage_dir(path: Path | None) -> Path | None:
    return path.resolve() if path is not None else None


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "agent",
        help="join this machine to a cluster as a node (needs root)",
        description="Joins this machine to the cluster at --server with a join token, then runs "
        "the pods the scheduler places here as real containers (crun, CNI). Runs in the foreground; "
        "containers keep running when the agent stops.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--server", required=True, help="the API server, e.g. https://10.0.0.5:6443")
    p.add_argument(
        "--token", default="", help="the server's join token (contents of <server data dir>/token)"
    )
    p.add_argument(
        "--token-file", type=Path, default=None, help="read the join token from this file"
    )
    p.add_argument(
        "--disable-apiserver-lb",
        action="store_true",
        help="talk to --server only; by default the agent proxies to every live server of the "
        "cluster (the kubernetes Endpoints) through 127.0.0.1 and fails over between them",
    )
    p.add_argument(
        "--shutdown-grace-period",
        type=_duration,
        default=0.0,
        metavar="DURATION",
        help="graceful node shutdown (kubelet's shutdownGracePeriod): when the agent is stopped "
        "while the machine shuts down, report the node NotReady and stop every pod within this "
        "time (30s, 2m), reporting it Failed so it is replaced elsewhere (default: 0, off)",
    )
    p.add_argument("--node-name", default="", help="this node's name (default: the host name)")
    p.add_argument("--address", default="", help="this node's address (default: the primary IP)")
    p.add_argument(
        "--data-dir",
        type=Path,
        default=Path("/var/lib/pilothouse"),
        help="state directory (default: %(default)s)",
    )
    p.add_argument(
        "--runtime",
        default="crun",
        choices=["crun", "runc"],
        help="OCI runtime (default: %(default)s)",
    )
    p.add_argument(
        "--port",
        type=int,
        default=None,
        help="the agent's HTTPS port for logs, exec and metrics (default: the config "
        f"file's port, else {agent.AGENT_PORT})",
    )
    p.add_argument("--bridge", default="ph0", help="the pods' Linux bridge (default: %(default)s)")
    p.add_argument(
        "--cgroup-root",
        default="/pilothouse",
        help="cgroup under which pod cgroups are made (default: %(default)s)",
    )
    p.add_argument(
        "--run-dir",
        type=Path,
        default=Path("/run/pilothouse"),
        help="runtime state and sockets; keep it short (default: %(default)s)",
    )
    p.add_argument(
        "--cluster-cidr",
        default="10.42.0.0/16",
        help="the cluster's pod network, as the server's (default: %(default)s)",
    )
    p.add_argument(
        "--service-cidr",
        default="10.43.0.0/16",
        help="the cluster's Service network, as the server's (default: %(default)s)",
    )
    p.add_argument(
        "--disable-proxy",
        action="store_true",
        help="do not run the service proxy or the routes to other nodes (Services and "
        "pods on other nodes are then unreachable from this node, unless something "
        "else provides them)",
    )
    p.add_argument(
        "--default-local-storage-path",
        type=Path,
        default=None,
        metavar="DIR",
        help="where local-path volumes live on this node (default: <data-dir>/agent/storage)",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log more")
    dnsflags.add_arguments(p)
    nodeflags.add_arguments(p, config_flag="--config")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    process.setup_logging(args.verbose)
    token = args.token
    if args.token_file is not None:
        try:
            token = args.token_file.read_text().strip()
        except OSError as exc:
            print(
                f"pilothouse agent: cannot read {args.token_file}: {exc.strerror}", file=sys.stderr
            )
            return 2
    try:
        args.node_config = nodeflags.load_config(args)
        args.dns = nodeflags.merge_dns(dnsflags.settings(args), args, args.node_config)
    except ValueError as exc:
        print(f"pilothouse agent: {exc}", file=sys.stderr)
        return 2
    return process.run(_serve(args, token), name="pilothouse agent")


async def _serve(args: argparse.Namespace, token: str) -> int:
    signals = process.Signals("pilothouse agent")
    name = (args.node_name or socket.gethostname()).lower()
    address = args.address or _primary_address()
    data_dir = args.data_dir.resolve() / "agent"
    try:
        await asyncio.to_thread(setup.check_host, args.runtime)
    except setup.HostNotReady as exc:
        print(f"pilothouse agent: {exc}", file=sys.stderr)
        return 1
    identity = bootstrap.existing(data_dir / "pki")
    if identity is None:
        if not token:
            print(
                "pilothouse agent: this node has not joined yet: pass --token (from the server's "
                "<data-dir>/token)",
                file=sys.stderr,
            )
            return 2
        print(f"pilothouse agent: joining {args.server} as node {name} ({address})…", flush=True)
        try:
            identity = await bootstrap.join(
                server=args.server,
                token=token,
                node_name=name,
                addresses=[address],
                hostnames=[name],
                directory=data_dir / "pki",
            )
        except bootstrap.JoinError as exc:
            print(f"pilothouse agent: {exc}", file=sys.stderr)
            return 1
    cluster = config.load_kubeconfig(identity.kubeconfig).with_user_agent(
        f"pilothouse-agent/{name}"
    )
    lb = None
    if not args.disable_apiserver_lb:
        # Every server of the cluster, not only --server (k3s's agent load balancer).
        lb = apiserverlb.LoadBalancer(args.server, state_file=data_dir / "apiservers.json")
        await lb.start()
        cluster = dataclasses.replace(cluster, server=lb.url)
    client = rest.Client(cluster)
    if lb is not None:
        lb.follow(client)
    root = supervision.Supervisor("agent")
    network = None
    if not args.disable_proxy:
        network = servicenet.ServiceNetwork.real(
            cluster_cidr=args.cluster_cidr, service_cidr=args.service_cidr
        )
    node = agent.Agent(
        client,
        node_name=name,
        address=address,
        data_dir=data_dir,
        runtime_factory=setup.runtime_factory(
            data_dir,
            runtime=args.runtime,
            run_dir=args.run_dir,
            bridge=args.bridge,
            cgroup_root=args.cgroup_root,
            cluster_cidr=args.cluster_cidr,
            registries=registries.RegistriesFile(
                nodeflags.registries_path(args, args.data_dir.resolve()),
                default_endpoint=not args.disable_default_registry_endpoint,
            ),
        ),
        supervisor=root,
        tls=agent_server.AgentTLS(identity.serving_cert, identity.serving_key, identity.ca),
        dns=args.dns,
        config=args.node_config,
        port=args.port if args.port is not None else args.node_config.port,
        network=network,
        cgroup_root=args.cgroup_root,
        storage_dir=_storage_dir(args.default_local_storage_path),
    )
    code = 0
    try:
        try:
            await node.start()
        except Exception as exc:
            print(f"pilothouse agent: could not start: {exc}", file=sys.stderr)
            return 1
        print(f"pilothouse agent: node {name} is ready (pod CIDR {node.pod_cidr})", flush=True)
        heap.settle()
        try:
            await process.until_stopped(signals, root)
        except supervision.ChildFailed as exc:
            print(f"pilothouse agent: {exc}", file=sys.stderr)
            code = 1
        grace = args.shutdown_grace_period
        if code == 0 and grace > 0 and await asyncio.to_thread(nodeshutdown.host_shutting_down):
            print(
                f"pilothouse agent: the machine is shutting down: stopping pods (within {grace:g}s)",
                flush=True,
            )
            await node.shut_down(grace_period=grace)
        print("pilothouse agent: stopping (containers keep running)", flush=True)
        return code
    finally:
        try:
            await asyncio.wait_for(node.stop(), STOP_TIMEOUT)
        except TimeoutError:
            print("pilothouse agent: did not stop in time", file=sys.stderr)
        await root.stop(timeout=1.0)
        await client.close()
        if lb is not None:
            await lb.close()
