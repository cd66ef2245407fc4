"""``pilothouse server``: run an all-in-one cluster in the foreground.

The exit status says how the run ended: 0 after a signal and a clean stop, 1 when
the start failed, a required part of the server failed (the store's writer, a
listener, the agent's server — the reason is printed) or the stop ran out of
time, 130 for an interrupt before the server was up.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pilothouse import heap, looplanes
from pilothouse import supervisor as supervision
from pilothouse.cli import admissionflags, dnsflags, kubeconfig, nodeflags, process

if TYPE_CHECKING:
    from pilothouse.cli import allinone

log = logging.getLogger("pilothouse")

SHUTDOWN_TIMEOUT = 10.0

EPILOG = """\
examples:
  pilothouse server                          # data in /var/lib/pilothouse, port 6443
  pilothouse server --data-dir ./.data --https-port 7443 --disable-agent
  pilothouse server --datastore-endpoint sqlite:///srv/ph/state.db
  pilothouse server --datastore-endpoint http://10.0.0.5:2379,http://10.0.0.6:2379
  pilothouse server --datastore-endpoint https://etcd.example:2379 \
      --datastore-cafile ca.pem --datastore-certfile client.pem --datastore-keyfile client-key.pem
  pilothouse server --encryption-provider-config /etc/ph/encryption.yaml
  pilothouse server --audit-policy-file /etc/ph/audit.yaml --audit-log-path /var/log/ph/audit.log \
      --audit-log-maxsize 100 --audit-log-maxbackup 10
  pilothouse server --enable-admission-plugins AlwaysPullImages \
      --admission-control-config-file /etc/ph/admission.yaml
  pilothouse server --kubelet-config kubelet.yaml      # eviction, image GC, log limits …
  pilothouse server --private-registry registries.yaml # mirrors for docker.io & co.

Several servers, one cluster (etcd as the datastore):
  pilothouse server --datastore-endpoint http://10.0.0.5:2379          # the first
  pilothouse server --datastore-endpoint http://10.0.0.5:2379 \
      --token "$(cat /var/lib/pilothouse/token)"  --server https://10.0.0.1:6443
The first server keeps the cluster's CA, ServiceAccount key and encryption
configuration in etcd, encrypted with its token; the others take them from there
(--server only checks that the URL is a server of the same cluster). Controllers
and the scheduler then run on every server, one leading at a time (Leases in
kube-system).

Secrets are encrypted at rest by default in a new cluster (the key is in
DATA_DIR/cred/encryption-config.json; manage it with `pilothouse secrets-encrypt`).

When the server is ready it prints the kubeconfig path; then try:
  kubectl --kubeconfig /var/lib/pilothouse/kubeconfig.yaml get namespaces
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "server",
        help="run an all-in-one cluster (API server, controllers, scheduler, node agent)",
        description="Runs the API server over HTTPS with an embedded SQLite store, and "
        "the cluster's control loops, in the foreground. Ctrl-C or SIGTERM stops it cleanly "
        f"within {SHUTDOWN_TIMEOUT:.0f} seconds (every watch, log stream, exec and port-forward "
        "is closed; a second Ctrl-C stops it at once); data persists in the data directory. "
        "When a part it cannot run without fails, it exits with status 1, so a service "
        "manager restarts it.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=Path("/var/lib/pilothouse"),
        help="where state, certificates and the kubeconfig live (default: %(default)s)",
    )
    p.add_argument(
        "--bind-address", default="0.0.0.0", help="address to listen on (default: %(default)s)"
    )
    p.add_argument(
        "--https-port",
        type=int,
        default=6443,
        help="port of the Kubernetes API (default: %(default)s)",
    )
    p.add_argument(
        "--advertise-address",
        default="",
        help="address other nodes reach this server on (default: the primary IP)",
    )
    p.add_argument(
        "--datastore-endpoint",
        default="sqlite://",
        help="sqlite:// (a file in the data dir), sqlite:///PATH, etcd as "
        "http(s)://HOST:2379[,http(s)://HOST2:2379...], or memory:// for throwaway "
        "experiments (default: %(default)s)",
    )
    p.add_argument(
        "--datastore-cafile",
        type=Path,
        default=None,
        metavar="FILE",
        help="CA certificate that signed the etcd servers' certificates (https:// endpoints)",
    )
    p.add_argument(
        "--datastore-certfile",
        type=Path,
        default=None,
        metavar="FILE",
        help="client certificate to present to etcd",
    )
    p.add_argument(
        "--datastore-keyfile",
        type=Path,
        default=None,
        metavar="FILE",
        help="key of --datastore-certfile",
    )
    p.add_argument(
        "--datastore-prefix",
        default="",
        metavar="PREFIX",
        help="etcd only: put every key under PREFIX (e.g. /clusters/one) so several clusters "
        "can share one etcd (default: none; keys are /registry/... as kube-apiserver's)",
    )
    p.add_argument(
        "--token",
        default=os.environ.get("PILOTHOUSE_TOKEN", ""),
        metavar="TOKEN",
        help="the cluster's token (K10<hash>::<id>.<secret>, from <data-dir>/token of one of its "
        "servers; or set PILOTHOUSE_TOKEN): joins the cluster in the etcd datastore. On a first "
        "server it chooses the token (default: a new one)",
    )
    p.add_argument(
        "--server",
        default="",
        metavar="URL",
        help="with --token: a server of the cluster to join (https://HOST:6443); this server "
        "refuses to start unless that one presents the CA found in the datastore",
    )
    p.add_argument(
        "--encryption-provider-config",
        type=Path,
        default=None,
        metavar="FILE",
        help="an EncryptionConfiguration (apiserver.config.k8s.io/v1) to use instead of the "
        "managed one; `pilothouse secrets-encrypt` then leaves encryption to the file",
    )
    p.add_argument(
        "--token-auth-file",
        type=Path,
        default=None,
        metavar="FILE",
        help='static bearer tokens, one per line as upstream\'s CSV: token,user,uid,"group1,group2"',
    )
    p.add_argument(
        "--anonymous-auth",
        default="true",
        choices=["true", "false"],
        help="requests without credentials are system:anonymous (RBAC decides what it may "
        "do: /healthz, /version…); false refuses them with 401 (default: %(default)s)",
    )
    p.add_argument(
        "--write-kubeconfig",
        type=Path,
        default=None,
        metavar="PATH",
        help="also write the admin kubeconfig here",
    )
    p.add_argument(
        "--disable-agent",
        action="store_true",
        help="do not run a node agent on this machine (control plane only)",
    )
    p.add_argument(
        "--disable-scheduler",
        action="store_true",
        help="do not run the scheduler (run `pilothouse scheduler` elsewhere)",
    )
    p.add_argument(
        "--disable-controller-manager",
        action="store_true",
        help="do not run the controllers (run `pilothouse controller-manager` elsewhere); the "
        "two every namespace needs (its default ServiceAccount and kube-root-ca.crt) still run",
    )
    p.add_argument(
        "--in-process-components",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the controllers, scheduler and agent of this process reach the API in process "
        "(its whole handler chain, no socket): ~10-15 %% less server CPU in a rollout; "
        "--no-in-process-components sends them through the private unix socket",
    )
    p.add_argument(
        "--scheduler-config",
        type=Path,
        default=None,
        metavar="FILE",
        help="a KubeSchedulerConfiguration file (e.g. to bin-pack with MostAllocated)",
    )
    p.add_argument(
        "--history-retention",
        type=_retention,
        default=24 * 3600,
        metavar="DURATION",
        help="how long the store keeps every revision of every object for `pilothouse "
        "history` and the dashboard's timeline, e.g. 24h, 90m, 7d; 0 keeps only the latest "
        "version (and compacts as upstream does) (default: 24h)",
    )
    p.add_argument(
        "--max-requests-inflight",
        type=int,
        default=400,
        metavar="N",
        help="with --max-mutating-requests-inflight, the number of requests the priority "
        "levels share; requests over a level's share wait briefly, then get 429 with "
        "Retry-After (default: %(default)s; 0 with 0: no limit)",
    )
    p.add_argument(
        "--max-mutating-requests-inflight",
        type=int,
        default=200,
        metavar="N",
        help="added to --max-requests-inflight, as upstream (default: %(default)s)",
    )
    p.add_argument(
        "--flow-control-target-lag",
        type=float,
        default=0.005,
        metavar="SECONDS",
        help="how late the event loop may run before the seats of the priority levels people's "
        "requests go to (global-default, catch-all) shrink (they grow back when it keeps up), so that a flood cannot fill "
        "the loop others are served by (default: %(default)s; 0: seats fixed at their share)",
    )
    p.add_argument(
        "--disable-local-storage",
        action="store_true",
        help="do not create the local-path StorageClass (the default class) in a new cluster",
    )
    p.add_argument(
        "--default-local-storage-path",
        type=Path,
        default=None,
        metavar="DIR",
        help="where this machine's node keeps local-path volumes "
        "(default: <data-dir>/agent/storage)",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log more")
    dnsflags.add_arguments(p)
    admissionflags.add_arguments(p)
    nodeflags.add_arguments(p, config_flag="--kubelet-config")
    p.set_defaults(func=run)


def prepare(args: argparse.Namespace) -> None:
    """What the parser alone cannot do: the agent's config file and the DNS settings
    (raises ValueError with what is wrong)."""
    args.node_config = nodeflags.load_config(args)
    args.dns = nodeflags.merge_dns(dnsflags.settings(args), args, args.node_config)


def run(args: argparse.Namespace) -> int:
    process.setup_logging(args.verbose)
    try:
        prepare(args)
    except ValueError as exc:
        print(f"pilothouse server: {exc}", file=sys.stderr)
        return 2
    # The laned loop: reads answered from memory never queue behind the writes.
    return process.run(_serve(args), name="pilothouse", loop_factory=looplanes.new_event_loop)


async def _serve(
    args: argparse.Namespace, *, on_ready: Callable[[allinone.AllInOne], None] | None = None
) -> int:
    """Run the cluster until a signal or a required part's failure; ``on_ready`` is called
    with the running cluster (for tests that reach into it)."""
    from pilothouse.apiserver import serverconfig
    from pilothouse.apiserver.authn import tokenfile
    from pilothouse.cli import allinone
    from pilothouse.scheduler import config as scheduler_config
    from pilothouse.storage import factory

    signals = process.Signals("pilothouse")
    started = time.monotonic()
    config = serverconfig.ServerConfig(
        data_dir=args.data_dir.resolve(),
        bind_address=args.bind_address,
        https_port=args.https_port,
        datastore_endpoint=args.datastore_endpoint,
        write_kubeconfig=args.write_kubeconfig,
        advertise_address=args.advertise_address,
        encryption_provider_config=args.encryption_provider_config,
        datastore_cafile=args.datastore_cafile,
        datastore_certfile=args.datastore_certfile,
        datastore_keyfile=args.datastore_keyfile,
        datastore_prefix=args.datastore_prefix,
        cluster_dns="" if args.disable_dns else args.dns.cluster_dns[0],
        token_auth_file=args.token_auth_file,
        anonymous_auth=args.anonymous_auth == "true",
        history_retention=args.history_retention,
        token=args.token.strip(),
        server=args.server,
        max_requests_inflight=args.max_requests_inflight,
        max_mutating_requests_inflight=args.max_mutating_requests_inflight,
        flow_control_target_lag=args.flow_control_target_lag,
        default_storage_class=not args.disable_local_storage,
        **admissionflags.server_config(args),
    )
    print(
        f"pilothouse: starting (data dir {config.data_dir}, store {config.datastore_endpoint})",
        flush=True,
    )
    scheduler_configuration = None
    if args.scheduler_config is not None:
        try:
            scheduler_configuration = scheduler_config.load(args.scheduler_config)
        except (OSError, scheduler_config.ConfigError) as exc:
            print(
                f"pilothouse: cannot use scheduler config {args.scheduler_config}: {exc}",
                file=sys.stderr,
            )
            return 2
    if args.server and not args.token:
        print(
            "pilothouse server: --server needs --token (the cluster's token, from "
            "<data-dir>/token on a server of that cluster)",
            file=sys.stderr,
        )
        return 2
    options = allinone.Options(
        # etcd may have other servers: controllers and scheduler lead through Leases.
        leader_elect=factory.is_shared(config.datastore_endpoint),
        controllers=not args.disable_controller_manager,
        scheduler=not args.disable_scheduler,
        scheduler_config=scheduler_configuration,
        agent=not args.disable_agent,
        agent_dns=args.dns,
        local_storage_path=(
            args.default_local_storage_path.resolve()
            if args.default_local_storage_path is not None
            else None
        ),
        agent_config=args.node_config,
        agent_registries=nodeflags.registries_path(args, args.data_dir.resolve()),
        agent_default_registry_endpoint=not args.disable_default_registry_endpoint,
        in_process=args.in_process_components,
    )
    cluster = allinone.AllInOne(config, options)
    server = cluster.server
    try:
        await cluster.start()
        heap.settle()  # what start-up loaded lives for the whole run
        # Each collection traverses only what was made since; the whole heap when idle.
        cluster.supervisor.start("heap", heap.Collector().run)
    except allinone.HostNotReady as exc:
        print(f"pilothouse: {exc}", file=sys.stderr)
        await cluster.stop()
        return 1
    except PermissionError as exc:
        print(
            f"pilothouse: cannot use the data directory: {exc}. Run as root, or pass "
            "--data-dir to a directory you own.",
            file=sys.stderr,
        )
        await cluster.stop()
        return 1
    except (serverconfig.StartupError, ValueError, tokenfile.TokenFileError) as exc:
        print(f"pilothouse: cannot start: {exc}", file=sys.stderr)
        await cluster.stop()
        return 1
    except OSError as exc:
        print(f"pilothouse: could not start: {exc}", file=sys.stderr)
        if "address already in use" in str(exc).lower():
            print(
                f"pilothouse: is another server on port {config.https_port}? Stop it, or pass "
                "--https-port.",
                file=sys.stderr,
            )
        await cluster.stop()
        return 1
    elapsed = time.monotonic() - started
    print(f"pilothouse: API server ready at {server.url} in {elapsed:.2f}s", flush=True)
    print(f"pilothouse: kubeconfig written to {server.kubeconfig_path}", flush=True)
    print(
        f"pilothouse: try   kubectl --kubeconfig {server.kubeconfig_path} get namespaces",
        flush=True,
    )
    if args.disable_agent:
        print("pilothouse: node agent disabled (--disable-agent)", flush=True)

    if on_ready is not None:
        on_ready(cluster)
    code = 0
    try:
        await process.until_stopped(signals, cluster.supervisor)
        print("pilothouse: shutting down", flush=True)
    except supervision.ChildFailed as exc:
        print(f"pilothouse: {exc}; stopping", file=sys.stderr, flush=True)
        code = 1
    began = time.monotonic()
    try:
        await asyncio.wait_for(cluster.stop(timeout=SHUTDOWN_TIMEOUT - 1.5), SHUTDOWN_TIMEOUT - 1)
    except TimeoutError:
        print(f"pilothouse: did not stop within {SHUTDOWN_TIMEOUT:.0f}s", file=sys.stderr)
        return 1
    print(f"pilothouse: stopped in {time.monotonic() - began:.1f}s", flush=True)
    return code


def _retention(text: str) -> float:
    """``--history-retention``: a duration (``24h``, ``90m``, ``7d``, seconds) → seconds."""
    try:
        seconds = kubeconfig.parse_duration(text)
    except (ValueError, KeyError):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration: write it as 24h, 90m, 7d or a number of seconds"
        ) from None
    if seconds < 0:
        raise argparse.ArgumentTypeError("a retention cannot be negative; 0 turns history off")
    return float(seconds)
