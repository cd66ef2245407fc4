"""``pilothouse kubeconfig``: give a person a kubeconfig, the standard way in one step.

What an administrator would do by hand with ``openssl`` and ``kubectl``, done
through the API of the running server: make a key and a certificate request for
``CN=<user>, O=<group>…``, submit it as a CertificateSigningRequest to the
``kubernetes.io/kube-apiserver-client`` signer, approve it, wait for the
certificate, and write a kubeconfig with the certificate and key embedded. The
user then has exactly what RBAC grants ``<user>`` and the groups — nothing else.
Run on the server machine as root (the server's private socket), or pass an
administrator's ``--kubeconfig``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import secrets
import sys
from pathlib import Path
from typing import Any

EPILOG = """\
examples:
  pilothouse kubeconfig --user alice --group dev > alice.kubeconfig
  pilothouse kubeconfig --user bob --group dev --group qa -o bob.kubeconfig --expiration 30d
  kubectl --kubeconfig alice.kubeconfig auth whoami

Nothing is granted by this: bind roles to the user or a group, e.g.
  kubectl create rolebinding alice-view --clusterrole=view --user=alice -n dev
The request is kept as CertificateSigningRequest pilothouse-<user>-xxxxx (kubectl get csr).
"""

SIGNER = "kubernetes.io/kube-apiserver-client"
CSRS_PATH = "/apis/certificates.k8s.io/v1/certificatesigningrequests"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "kubeconfig",
        help="issue a client certificate for a user (and groups) and write their kubeconfig",
        description="Creates, approves and collects a CertificateSigningRequest for a user, "
        "then prints (or writes) a kubeconfig with the certificate: the standard way to "
        "add a person to a cluster, in one step.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--user", required=True, help="the user name (the certificate's CN)")
    p.add_argument(
        "--group",
        action="append",
        default=[],
        help="a group the user is in (the certificate's O); repeat for more",
    )
    p.add_argument(
        "--expiration",
        default="",
        metavar="DURATION",
        help="how long the certificate lasts, e.g. 24h or 90d (default: the signer's, a year)",
    )
    p.add_argument("-o", "--output", type=Path, default=None, help="write here (default: stdout)")
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
        help="reach the server with this administrator's kubeconfig instead of the socket",
    )
    p.add_argument(
        "--server",
        default="",
        help="the API server URL to put in the kubeconfig (default: the admin kubeconfig's)",
    )
    p.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for the certificate"
    )
    p.set_defaults(func=run)


def parse_duration(text: str) -> int:
    """``90d``, ``24h``, ``30m``, ``600s`` or plain seconds → seconds."""
    text = text.strip()
    if not text:
        raise ValueError("empty duration")
    unit = text[-1] if text[-1] in _UNITS else "s"
    number = text[:-1] if text[-1] in _UNITS else text
    return int(float(number) * _UNITS[unit])


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_run(args))
    except KeyboardInterrupt:
        return 130


def _request(user: str, groups: list[str]) -> tuple[bytes, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            *(x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in groups),
            x509.NameAttribute(NameOID.COMMON_NAME, user),
        ]
    )
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return csr.public_bytes(serialization.Encoding.PEM), key_pem


def _connect(args: argparse.Namespace) -> tuple[Any, str, bytes] | str:
    """(cluster config, server URL, CA PEM) or an error message."""
    from pilothouse.client import config

    admin_path = args.kubeconfig or args.data_dir / "kubeconfig.yaml"
    try:
        admin = config.load_kubeconfig(admin_path)
    except (OSError, config.ConfigError) as exc:
        return f"cannot read {admin_path}: {exc} (pass --kubeconfig or --data-dir)"
    if args.kubeconfig is not None:
        cluster = admin
    else:
        socket = args.data_dir / "run" / "apiserver.sock"
        if not socket.exists():
            return (
                f"no server socket at {socket}. Is `pilothouse server --data-dir {args.data_dir}`"
                " running on this machine? (Or pass --kubeconfig.)"
            )
        cluster = config.local_socket(socket)
    return cluster, args.server or admin.server, admin.ca_data or b""


async def _run(args: argparse.Namespace) -> int:
    import yaml

    from pilothouse.api import errors
    from pilothouse.client import rest

    expiration = None
    if args.expiration:
        try:
            expiration = parse_duration(args.expiration)
        except ValueError:
            print(
                f"pilothouse kubeconfig: --expiration {args.expiration!r} is not a duration "
                "(e.g. 24h, 90d)",
                file=sys.stderr,
            )
            return 2
    connected = _connect(args)
    if isinstance(connected, str):
        print(f"pilothouse kubeconfig: {connected}", file=sys.stderr)
        return 1
    cluster, server, ca = connected
    request_pem, key_pem = await asyncio.to_thread(_request, args.user, args.group)
    name = f"pilothouse-{args.user.replace(':', '-').lower()}-{secrets.token_hex(3)}"
    spec: dict[str, Any] = {
        "request": base64.b64encode(request_pem).decode(),
        "signerName": SIGNER,
        "usages": ["client auth"],
    }
    if expiration is not None:
        spec["expirationSeconds"] = expiration
    async with rest.Client(cluster.with_user_agent("pilothouse-kubeconfig")) as client:
        try:
            csr = await client.request(
                "POST",
                CSRS_PATH,
                body={
                    "apiVersion": "certificates.k8s.io/v1",
                    "kind": "CertificateSigningRequest",
                    "metadata": {"name": name},
                    "spec": spec,
                },
            )
            csr.setdefault("status", {})["conditions"] = [
                {
                    "type": "Approved",
                    "status": "True",
                    "reason": "PilothouseKubeconfig",
                    "message": "This CSR was approved by pilothouse kubeconfig.",
                }
            ]
            await client.request("PUT", f"{CSRS_PATH}/{name}/approval", body=csr)
            cert = await _wait_for_certificate(client, name, args.timeout)
        except errors.StatusError as exc:
            print(f"Error from server ({exc.reason}): {exc.message}", file=sys.stderr)
            return 1
        except OSError as exc:
            print(f"pilothouse kubeconfig: cannot reach the server: {exc}", file=sys.stderr)
            return 1
    if cert is None:
        print(
            f"pilothouse kubeconfig: no certificate after {args.timeout:.0f}s; is the "
            f"controller manager (csrsigning) running? See `kubectl describe csr {name}`.",
            file=sys.stderr,
        )
        return 1
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "pilothouse",
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca).decode(),
                },
            }
        ],
        "contexts": [{"name": args.user, "context": {"cluster": "pilothouse", "user": args.user}}],
        "current-context": args.user,
        "preferences": {},
        "users": [
            {
                "name": args.user,
                "user": {
                    "client-certificate-data": cert,
                    "client-key-data": base64.b64encode(key_pem).decode(),
                },
            }
        ],
    }
    text = yaml.safe_dump(doc, sort_keys=True, default_flow_style=False, width=1 << 20)
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.touch(mode=0o600)
        args.output.write_text(text)
        print(f"pilothouse: kubeconfig for {args.user} written to {args.output}", file=sys.stderr)
    return 0


async def _wait_for_certificate(client: Any, name: str, timeout: float) -> str | None:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        csr = await client.request("GET", f"{CSRS_PATH}/{name}")
        status = csr.get("status") or {}
        if status.get("certificate"):
            return str(status["certificate"])
        failed = [c for c in status.get("conditions") or [] if c.get("type") == "Failed"]
        if failed:
            raise OSError(f"the signer refused the request: {failed[0].get('message', '')}")
        await asyncio.sleep(0.2)
    return None
