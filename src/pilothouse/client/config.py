"""Where and how to reach an API server: from a kubeconfig, or a local socket.

A :class:`ClusterConfig` is everything the REST client needs: the server URL,
the TLS material (CA, client certificate and key, held in memory), an optional
bearer token, or — for components running inside ``pilothouse server`` — the
path of the server's private Unix socket, which skips TLS entirely, or the server's
in-process transport (:mod:`pilothouse.client.inprocess`), which skips the socket too.
"""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from pilothouse.client import inprocess


class ConfigError(ValueError):
    """A kubeconfig that cannot be used, with what to do about it."""


@dataclass(frozen=True)
class ClusterConfig:
    server: str
    ca_data: bytes | None = None
    cert_data: bytes | None = None
    key_data: bytes | None = None
    token: str | None = None
    unix_socket: str | None = None
    insecure: bool = False
    user_agent: str = "pilothouse"
    extra_headers: dict[str, str] = field(default_factory=dict)
    # A token that changes (a ServiceAccount token refreshed before it expires): read
    # for every request, instead of ``token``.
    token_source: Callable[[], str] | None = None
    # The API server in this process: requests go to its handler without a socket.
    in_process: inprocess.Transport | None = None

    def ssl_context(self) -> ssl.SSLContext | None:
        if self.unix_socket or self.in_process or not self.server.startswith("https://"):
            return None
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        if self.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        elif self.ca_data:
            ctx.load_verify_locations(cadata=self.ca_data.decode())
        if self.cert_data and self.key_data:
            # ssl wants files for the client chain; write them privately and drop them.
            with tempfile.TemporaryDirectory(prefix="pilothouse-client-") as tmp:
                cert = Path(tmp) / "c.crt"
                key = Path(tmp) / "c.key"
                cert.write_bytes(self.cert_data)
                key.touch(mode=0o600)
                key.write_bytes(self.key_data)
                ctx.load_cert_chain(str(cert), str(key))
        return ctx

    def with_user_agent(self, user_agent: str) -> ClusterConfig:
        return replace(self, user_agent=user_agent)

    def with_token(
        self, token: str | None = None, *, source: Callable[[], str] | None = None
    ) -> ClusterConfig:
        """The same server with a bearer token (fixed, or read from ``source``)."""
        return replace(self, token=token, token_source=source)


def _data(entry: dict[str, Any], key: str, base: Path) -> bytes | None:
    if entry.get(f"{key}-data"):
        return base64.b64decode(entry[f"{key}-data"])
    if entry.get(key):
        path = Path(os.path.expanduser(entry[key]))
        if not path.is_absolute():
            path = base / path
        return path.read_bytes()
    return None


def load_kubeconfig(path: str | Path, *, context: str | None = None) -> ClusterConfig:
    """Read a kubeconfig file (the current context, or ``context``)."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read kubeconfig {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"kubeconfig {path} is not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"kubeconfig {path} is empty or not a mapping")
    name = context or doc.get("current-context")
    contexts = {c["name"]: c.get("context") or {} for c in doc.get("contexts") or []}
    if name not in contexts:
        raise ConfigError(
            f"kubeconfig {path} has no context {name!r}; pass --context or fix current-context"
        )
    ctx = contexts[name]
    clusters = {c["name"]: c.get("cluster") or {} for c in doc.get("clusters") or []}
    users = {u["name"]: u.get("user") or {} for u in doc.get("users") or []}
    cluster = clusters.get(ctx.get("cluster"))
    if cluster is None or not cluster.get("server"):
        raise ConfigError(f"kubeconfig {path}: context {name!r} names no cluster with a server")
    user = users.get(ctx.get("user"), {})
    base = path.parent
    return ClusterConfig(
        server=str(cluster["server"]).rstrip("/"),
        ca_data=_data(cluster, "certificate-authority", base),
        cert_data=_data(user, "client-certificate", base),
        key_data=_data(user, "client-key", base),
        token=user.get("token"),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
    )


def local_socket(path: str | Path) -> ClusterConfig:
    """Config for a component inside ``pilothouse server``: the private socket."""
    return ClusterConfig(server="http://localhost", unix_socket=str(path))


def in_process(transport: inprocess.Transport) -> ClusterConfig:
    """Config for a component inside ``pilothouse server``: its in-process transport,
    private as the socket is (a token names who the component is)."""
    return ClusterConfig(server="http://localhost", in_process=transport)
