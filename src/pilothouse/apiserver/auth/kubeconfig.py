"""The kubeconfig :func:`write_kubeconfig` writes for the cluster's admin certificate.

Synchronous file I/O, called once per server start (the kubeconfig is rewritten on
every start, as a new CA makes the old one useless); nothing is shared between calls.
"""

from __future__ import annotations

import base64
import pathlib

import yaml

from pilothouse import atomicfile
from pilothouse.apiserver.auth.certs import ADMIN_USER, PKI


def write_kubeconfig(
    path: pathlib.Path,
    *,
    server: str,
    pki: PKI,
    cluster_name: str = "pilothouse",
    user: str = ADMIN_USER,
) -> None:
    """Write a kubeconfig for the admin certificate, shaped as kubectl writes one.

    Certificates and key are embedded (``*-data``); the cluster, the context
    (both named ``cluster_name``) and the user entry are the only ones, and the
    context is current. Written atomically with mode 0600; parents are created.
    """
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster_name,
                "cluster": {
                    "certificate-authority-data": _b64(pki.ca_cert.read_bytes()),
                    "server": server,
                },
            }
        ],
        "contexts": [{"name": cluster_name, "context": {"cluster": cluster_name, "user": user}}],
        "current-context": cluster_name,
        "preferences": {},
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": _b64(pki.admin_cert.read_bytes()),
                    "client-key-data": _b64(pki.admin_key.read_bytes()),
                },
            }
        ],
    }
    # kubectl writes through JSON, so its keys come out sorted.
    text = yaml.safe_dump(config, sort_keys=True, default_flow_style=False, width=1 << 20)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomicfile.write(path, text.encode(), mode=0o600)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
