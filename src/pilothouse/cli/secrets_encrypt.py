"""``pilothouse secrets-encrypt``: manage encryption at rest of Secrets, as k3s does.

Talks to the running server (its private socket in the data dir, or a kubeconfig
of a cluster administrator), which owns the configuration file and the keys.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import orjson

EPILOG = """\
commands:
  status        is encryption on, which key is active, how far a re-encryption got
  enable        encrypt Secrets from now on, and re-encrypt the existing ones
  disable       store Secrets in plain from now on, and rewrite the existing ones
  rotate-keys   add a new key, make it active, re-encrypt every Secret under it,
                then drop the old key (no restart, no downtime)
  reencrypt     rewrite every Secret under the active key (--skip keeps old keys)

examples:
  pilothouse secrets-encrypt status
  pilothouse secrets-encrypt rotate-keys --wait
  pilothouse secrets-encrypt status -o json --data-dir ./.data

New clusters encrypt Secrets by default (AES-CBC, a key of their own in
DATA_DIR/cred/encryption-config.json, mode 0600: back it up; without it the
Secrets cannot be read). A server started with --encryption-provider-config
uses the user's file instead, and these commands leave it alone.
"""

STATUS_PATH = "/v1-pilothouse/encrypt/status"
CONFIG_PATH = "/v1-pilothouse/encrypt/config"

OPERATIONS: dict[str, dict[str, Any]] = {
    "enable": {"enable": True},
    "disable": {"enable": False},
    "rotate-keys": {"stage": "rotate_keys"},
    "reencrypt": {"stage": "reencrypt_active"},
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "secrets-encrypt",
        help="manage encryption at rest of Secrets (status, enable, disable, rotate-keys, "
        "reencrypt)",
        description="Manages how the running server encrypts Secrets at rest, like "
        "`k3s secrets-encrypt`: the server keeps the keys and rewrites the Secrets; "
        "nobody edits the configuration file by hand.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("command", choices=["status", *OPERATIONS], metavar="COMMAND")
    p.add_argument(
        "--data-dir",
        type=Path,
        default=Path("/var/lib/pilothouse"),
        help="the server's data directory; its private socket is used (default: %(default)s)",
    )
    p.add_argument(
        "--kubeconfig",
        type=Path,
        default=None,
        help="reach the server with this (cluster-admin) kubeconfig instead of the socket",
    )
    p.add_argument("-o", "--output", choices=["text", "json"], default="text", help="status format")
    p.add_argument(
        "--skip",
        action="store_true",
        help="reencrypt: keep the inactive keys afterwards (default: drop them)",
    )
    p.add_argument(
        "--wait",
        action="store_true",
        help="return only when the re-encryption has finished",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_run(args))
    except KeyboardInterrupt:
        return 130


async def _run(args: argparse.Namespace) -> int:
    from pilothouse.api import errors
    from pilothouse.client import config, rest

    if args.kubeconfig is not None:
        try:
            cluster = config.load_kubeconfig(args.kubeconfig)
        except (OSError, config.ConfigError) as exc:
            print(f"pilothouse: cannot use {args.kubeconfig}: {exc}", file=sys.stderr)
            return 2
        where = cluster.server
    else:
        socket = args.data_dir / "run" / "apiserver.sock"
        if not socket.exists():
            print(
                f"pilothouse: no server socket at {socket}. Is `pilothouse server --data-dir"
                f" {args.data_dir}` running on this machine? (Or pass --kubeconfig.)",
                file=sys.stderr,
            )
            return 1
        cluster = config.local_socket(socket)
        where = str(socket)
    async with rest.Client(cluster.with_user_agent("pilothouse-secrets-encrypt")) as client:
        try:
            if args.command == "status":
                status = await client.request("GET", STATUS_PATH)
            else:
                body = dict(OPERATIONS[args.command])
                if args.skip:
                    body["skip"] = True
                if args.wait:
                    body["wait"] = True
                status = await client.request("PUT", CONFIG_PATH, body=body, timeout=None)
        except errors.StatusError as exc:
            print(f"Error from server ({exc.reason}): {exc.message}", file=sys.stderr)
            return 1
        except OSError as exc:
            print(f"pilothouse: cannot reach the server at {where}: {exc}", file=sys.stderr)
            return 1
    if args.command != "status":
        print(status.get("message", "done"))
        if args.wait:
            print(render(status))
        return 1 if status.get("error") else 0
    if args.output == "json":
        print(orjson.dumps(status, option=orjson.OPT_INDENT_2).decode())
    else:
        print(render(status))
    return 0


def render(status: dict[str, Any]) -> str:
    """k3s's status layout, plus the re-encryption's progress."""
    if "enable" not in status:
        return "Encryption Status: Disabled, no configuration file found"
    lines = [
        f"Encryption Status: {'Enabled' if status['enable'] else 'Disabled'}",
        f"Current Rotation Stage: {status.get('stage', '')}",
    ]
    if status.get("hashmatch"):
        lines.append("Server Encryption Hashes: All hashes match")
    else:
        lines.append(f"Server Encryption Hashes: {status.get('hasherror', '')}")
    stage = status.get("stage", "")
    if stage in ("reencrypt_request", "reencrypt_active", "reencrypt_finished"):
        lines.append(
            f"Re-encrypted Secrets: {status.get('reencrypted', 0)} of {status.get('secrets', 0)}"
            " rewritten"
        )
    if status.get("error"):
        lines.append(f"Error: {status['error']}")
    if not status.get("managed", True):
        lines.append("Configuration: from --encryption-provider-config (not managed)")
    rows = [("Active", "Key Type", "Name"), ("------", "--------", "----")]
    if status.get("activekey"):
        rows.append((" *", status.get("activetype", "AES-CBC"), status["activekey"]))
    for key in status.get("inactivekeys") or []:
        rows.append(("", key.get("type", ""), key.get("name", "")))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines.append("")
    lines.extend(
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows
    )
    return "\n".join(lines)
