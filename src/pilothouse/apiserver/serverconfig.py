"""What the API server is told: its flags as one :class:`ServerConfig`, and the
:class:`StartupError` it raises when it cannot start with them.

The CLI (``pilothouse server``, the all-in-one process) and :mod:`pilothouse.testing`
fill a config; :mod:`server` and :mod:`startup` read it. Nothing here runs or
changes once the server has started.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pilothouse.apiserver import adaptivelimit
from pilothouse.apiserver.audit import backend as audit_backend
from pilothouse.storage import history as storage_history


@dataclass
class ServerConfig:
    """Everything one API server is started with: where it keeps its files and
    listens, its datastore (SQLite or etcd, with TLS and key prefix), the cluster it
    joins (token, server), its certificates' extra names, encryption at rest,
    authentication, admission, audit and flow control: the API server's share of
    ``pilothouse server``'s flags. (Three fields no flag sets keep their defaults:
    the compaction interval, extra certificate names and the shutdown grace.)

    Built once, before the server starts: by ``pilothouse server``
    (:func:`pilothouse.cli.server._serve`, from the parsed flags, the admission and
    audit ones through :func:`pilothouse.cli.admissionflags.server_config`), by
    :class:`pilothouse.testing.ServerThread` for tests, and directly by benchmarks
    and in-process tests. :class:`pilothouse.cli.allinone.AllInOne` hands it to
    :class:`pilothouse.apiserver.server.APIServer`, which keeps it as ``config``;
    :func:`pilothouse.apiserver.startup.shared_files` reads the data dir, datastore,
    token, server and extra names before the store opens. Nobody changes it
    afterwards, so it is read from the event loop without a lock (the port an
    ``https_port`` of 0 was given is ``APIServer.port``, not written back here)."""

    data_dir: Path
    bind_address: str = "0.0.0.0"
    https_port: int = 6443
    datastore_endpoint: str = "sqlite://"
    write_kubeconfig: Path | None = None
    advertise_address: str = ""
    compact_interval: float = 300.0
    # Seconds of object history the store keeps (pilothouse history, the dashboard).
    history_retention: float = storage_history.DEFAULT_RETENTION
    extra_sans: list[str] = field(default_factory=list)
    # Upstream's --encryption-provider-config; None: pilothouse manages the file.
    encryption_provider_config: Path | None = None
    # TLS towards etcd (--datastore-cafile/-certfile/-keyfile) and the key prefix.
    datastore_cafile: Path | None = None
    datastore_certfile: Path | None = None
    datastore_keyfile: Path | None = None
    datastore_prefix: str = ""
    cluster_dns: str = "10.43.0.10"  # the kube-dns Service's address ("": no kube-dns)
    # Upstream's --token-auth-file (token,user,uid,"groups") and --anonymous-auth.
    token_auth_file: Path | None = None
    anonymous_auth: bool = True
    # Joining a cluster on a shared datastore (k3s's --token and --server): the cluster's
    # token (its passphrase unlocks the bootstrap data) and, optionally, a server of it
    # whose CA must be the one found in the datastore.
    token: str = ""
    server: str = ""
    # Upstream's --max-requests-inflight and --max-mutating-requests-inflight: their sum
    # is the concurrency the priority levels share (0 and 0: no limit).
    max_requests_inflight: int = 400
    max_mutating_requests_inflight: int = 200
    # Seconds the event loop may lag before the seats of people's priority levels shrink
    # (0: seats fixed at their nominal share); see apiserver/adaptivelimit.py.
    flow_control_target_lag: float = adaptivelimit.DEFAULT_TARGET
    # How long in-flight requests may take to finish once shutdown has begun.
    shutdown_grace: float = 5.0
    # Create the local-path StorageClass (the default class) when the cluster is new.
    default_storage_class: bool = True
    # Upstream's --enable-admission-plugins, --disable-admission-plugins and
    # --admission-control-config-file.
    enable_admission_plugins: list[str] = field(default_factory=list)
    disable_admission_plugins: list[str] = field(default_factory=list)
    admission_control_config_file: Path | None = None
    # Upstream's --audit-policy-file and --audit-log-* (no policy or no path: no audit log).
    audit_policy_file: Path | None = None
    audit_log: audit_backend.Options = field(default_factory=audit_backend.Options)


class StartupError(Exception):
    """The server cannot start; the message says why and what to do."""
