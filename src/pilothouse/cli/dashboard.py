"""``pilothouse dashboard``: the web dashboard on 127.0.0.1 with your kubeconfig."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import webbrowser

from pilothouse.cli import history
from pilothouse.client import config as client_config
from pilothouse.dashboard import proxy

EPILOG = """\
The dashboard is served on 127.0.0.1 only and reaches the API server as you, with
your kubeconfig (like `kubectl proxy`): what RBAC lets you see is what it shows.
The same pages are on the API server itself at https://SERVER:6443/ui/, where a
browser logs in with a bearer token (kubectl create token NAME -n NAMESPACE).

examples:
  pilothouse dashboard                       open it in your browser
  pilothouse dashboard --port 8001 --no-browser
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "dashboard",
        help="the web dashboard on 127.0.0.1 with your kubeconfig",
        description="Serve the web dashboard on 127.0.0.1 (overview, workloads, pods, events, "
        "logs, exec, YAML apply, history) and open it in the browser.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--port", type=int, default=8001, help="local port (default: %(default)s; 0: any free one)"
    )
    p.add_argument("--no-browser", action="store_true", help="only print the address")
    p.add_argument(
        "--kubeconfig",
        default="",
        help="kubeconfig file (default: $KUBECONFIG, then the local server's admin kubeconfig)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        print(f"error: --port {args.port} is not a port (0-65535)", file=sys.stderr)
        return 2
    try:
        cluster = history.kubeconfig_for(args.kubeconfig)
    except (history.UsageError, client_config.ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        return asyncio.run(_serve(cluster, args))
    except KeyboardInterrupt:
        return 0


async def _serve(cluster: client_config.ClusterConfig, args: argparse.Namespace) -> int:
    server = proxy.DashboardProxy(cluster, port=args.port)
    try:
        await server.start()
    except OSError as exc:
        print(
            f"error: cannot listen on 127.0.0.1:{args.port}: {exc.strerror}; "
            "pick another with --port N (0 picks a free one)",
            file=sys.stderr,
        )
        return 1
    print(
        f"pilothouse: dashboard at {server.url} (API server {cluster.server}); Ctrl-C stops it",
        flush=True,
    )
    if not args.no_browser:
        webbrowser.open(server.url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.stop()
    return 0
