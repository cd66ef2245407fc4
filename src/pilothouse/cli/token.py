"""``pilothouse token``: bootstrap tokens for joining nodes (``k3s token``, ``kubeadm token``).

A token is an upstream bootstrap token (a ``bootstrap-token-<id>`` Secret in
kube-system), printed in the join format ``K10<CA hash>::<id>.<secret>`` that
``pilothouse agent --token`` takes. Tokens with a ``--ttl`` expire (the token
cleaner deletes them); ``delete`` revokes one at once.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import sys
import time
from pathlib import Path
from typing import Any

EPILOG = """\
examples:
  pilothouse token create --ttl 2h --description "rack 3"
  pilothouse token list
  pilothouse token delete abcdef

On the new machine: pilothouse agent --server https://SERVER:6443 --token K10…::abcdef.0123456789abcdef
"""

SECRETS_PATH = "/api/v1/namespaces/kube-system/secrets"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "token",
        help="create, list or delete bootstrap tokens that join nodes",
        description="Manages the bootstrap tokens nodes join with.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("command", choices=["create", "list", "delete"], metavar="COMMAND")
    p.add_argument("token_id", nargs="?", default="", help="delete: the token's id (first part)")
    p.add_argument(
        "--ttl",
        default="24h",
        help="create: lifetime, e.g. 2h or 7d; 0 never expires (default: 24h)",
    )
    p.add_argument("--description", default="", help="create: a note kept with the token")
    p.add_argument(
        "--data-dir",
        type=Path,
        default=Path("/var/lib/pilothouse"),
        help="the server's data directory; its private socket is used (default: %(default)s)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_run(args))
    except KeyboardInterrupt:
        return 130


def _seconds(text: str) -> int:
    text = text.strip()
    unit = text[-1] if text and text[-1] in _UNITS else "s"
    number = text[:-1] if text and text[-1] in _UNITS else text
    return int(float(number) * _UNITS[unit])


def _data(secret: dict[str, Any], key: str) -> str:
    value = (secret.get("data") or {}).get(key)
    return base64.b64decode(value).decode() if isinstance(value, str) else ""


async def _run(args: argparse.Namespace) -> int:
    from pilothouse.api import errors
    from pilothouse.apiserver.authn import bootstrap
    from pilothouse.client import config, rest

    socket = args.data_dir / "run" / "apiserver.sock"
    ca = args.data_dir / "pki" / "ca.crt"
    if not socket.exists() or not ca.exists():
        print(
            f"pilothouse token: no server at {args.data_dir}. Run this on the server machine, "
            "as root, with the server's --data-dir.",
            file=sys.stderr,
        )
        return 1
    digest = hashlib.sha256(ca.read_bytes()).hexdigest()
    async with rest.Client(config.local_socket(socket).with_user_agent("pilothouse-token")) as c:
        try:
            if args.command == "create":
                try:
                    ttl = _seconds(args.ttl)
                except ValueError:
                    print(
                        f"pilothouse token: --ttl {args.ttl!r} is not a duration", file=sys.stderr
                    )
                    return 2
                token = bootstrap.new_token()
                secret = bootstrap.secret_for(
                    token,
                    description=args.description or "made by pilothouse token create",
                    ttl_seconds=ttl or None,
                    extra_groups=[],
                    now=time.time(),
                )
                await c.request("POST", SECRETS_PATH, body=secret)
                print(f"K10{digest}::{token}")
            elif args.command == "list":
                listed = await c.request(
                    "GET", SECRETS_PATH, params={"fieldSelector": f"type={bootstrap.SECRET_TYPE}"}
                )
                print(f"{'TOKEN ID':<10}{'EXPIRES':<24}DESCRIPTION")
                for s in listed.get("items") or []:
                    expires = _data(s, "expiration") or "<forever>"
                    print(f"{_data(s, 'token-id'):<10}{expires:<24}{_data(s, 'description')}")
            else:
                if not args.token_id:
                    print("pilothouse token delete: name the token id", file=sys.stderr)
                    return 2
                token_id = args.token_id.split("::")[-1].split(".")[0]
                await c.request("DELETE", f"{SECRETS_PATH}/{bootstrap.SECRET_PREFIX}{token_id}")
                print(f"bootstrap token {token_id!r} deleted")
        except errors.StatusError as exc:
            print(f"Error from server ({exc.reason}): {exc.message}", file=sys.stderr)
            return 1
    return 0
