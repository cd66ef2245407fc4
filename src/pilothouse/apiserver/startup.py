"""What the API server does before its store is open: its files, and its port.

* :func:`shared_files` gives the server its PKI. On a datastore one process owns
  (SQLite, memory) that is the data dir's own, made on first start; on a shared one
  (etcd) the cluster's CA, ServiceAccount key and encryption configuration come from
  the bootstrap data in the datastore, or are made by the first server and published
  there (:mod:`bootstrap`), and the token and ``--server`` are checked against them.
* :class:`StartingListener` answers on the server's port while the store waits for
  its datastore (etcd not reachable yet): ``/livez`` and ``/healthz`` ok — the process
  is up and retrying, nothing to restart — ``/readyz`` 500 with upstream's
  ``[-]etcd failed``, anything else a 503 Status saying what it waits for.

Both run once at start, before the real listener exists; the starting listener is
one aiohttp site on the event loop, stopped before the real one binds the port.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from typing import TYPE_CHECKING

import orjson
from aiohttp import web

from pilothouse.api import errors
from pilothouse.apiserver import bootstrap, join
from pilothouse.apiserver.auth import certs
from pilothouse.apiserver.authn import bootstrap as bootstrap_tokens
from pilothouse.apiserver.authn import serviceaccount
from pilothouse.storage import factory
from pilothouse.storage import interface as storage

if TYPE_CHECKING:
    from pilothouse.apiserver.encryption import manager as encryption_manager
    from pilothouse.apiserver.serverconfig import ServerConfig

log = logging.getLogger(__name__)


async def shared_files(
    backend: storage.Store,
    *,
    config: ServerConfig,
    advertise_address: str,
    encryption: encryption_manager.Encryption,
    new_cluster: bool,
) -> tuple[certs.PKI, str]:
    """(the PKI, the join token's passphrase — "" for a new single-process cluster, which
    then makes one). Raises :class:`bootstrap.BootstrapError` with what to do."""
    passphrase = join.parse_token(config.token)[1] if config.token else ""
    token_file = config.data_dir / "token"
    if token_file.exists():
        kept = join.parse_token(token_file.read_text().strip())[1]
        if config.token and kept != passphrase:
            raise bootstrap.BootstrapError(
                f"--token is not the token this server was started with ({token_file}); a"
                " server's token cannot change. Pass the token in that file, or start with an"
                " empty --data-dir"
            )
        passphrase = kept

    def ensure() -> certs.PKI:
        return certs.ensure_pki(
            config.data_dir,
            hostnames=[socket.gethostname()],
            ips=[advertise_address, *config.extra_sans],
        )

    if not factory.is_shared(config.datastore_endpoint):
        return await asyncio.to_thread(ensure), passphrase
    # --server is checked on the first join only: a server restarting later must not
    # depend on the one it joined through being up (k3s's rule too).
    first_join = not (config.data_dir / bootstrap.CA_CERT).exists()
    passphrase = passphrase or bootstrap_tokens.new_token()

    def generate() -> None:
        pki = ensure()
        serviceaccount.SigningKey.ensure(pki.directory)
        if new_cluster:
            encryption.create_for_new_cluster()

    await bootstrap.join_or_found(
        backend, config.data_dir, passphrase=passphrase, generate=generate
    )
    pki = await asyncio.to_thread(ensure)
    ca = pki.ca_cert.read_bytes()
    digest = join.parse_token(config.token)[0] if config.token else ""
    if digest and digest != join.ca_hash(ca):
        raise bootstrap.BootstrapError(
            "the token's CA hash does not match the cluster CA in the datastore: the token is"
            " from another cluster. Use the token in <data-dir>/token of a server of this"
            " cluster"
        )
    if config.server and first_join:
        try:
            await join.check_server_ca(config.server, ca)
        except ValueError as exc:
            raise bootstrap.BootstrapError(str(exc)) from None
    return pki, passphrase


def listening_socket(host: str, port: int) -> socket.socket:
    """The API's TCP socket, bound and listening (raises OSError: the port is taken)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host or "0.0.0.0", port))
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


class StartingListener:
    """The server's port while it starts (see the module doc), on a copy of the API's
    own listening socket: stopping it closes only the copy."""

    def __init__(self, *, sock: socket.socket, ssl: ssl.SSLContext, what: str) -> None:
        self.sock = sock
        self.ssl = ssl
        self.what = what
        self.datastore_up = False  # set once the store is open (the rest is loading)
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        path = request.path
        if path in ("/livez", "/healthz") or path.endswith("/ping"):
            return web.Response(text="ok", content_type="text/plain")
        up = self.datastore_up
        if path == "/readyz":
            failed = "informer-sync" if up else "etcd"
            reason = "not ready yet" if up else "the datastore is not reachable"
            # Failed checks are always listed (upstream forces verbose output on failure).
            etcd = "[+]etcd ok\n" if up else ""
            text = (
                f"[+]ping ok\n[+]log ok\n{etcd}[-]{failed} failed: reason withheld\n"
                "readyz check failed\n"
            )
            log.debug("readyz check failed: %s: %s", failed, reason)
            # 500, as upstream's health handler and the running server answer a failed check.
            return web.Response(text=text, status=500, content_type="text/plain")
        status = errors.service_unavailable(
            "the server is starting: loading its caches"
            if up
            else f"the server is starting: waiting for its datastore ({self.what}) to answer"
        )
        return web.Response(
            body=orjson.dumps(status.status()) + b"\n",
            status=503,
            content_type="application/json",
            headers={"Retry-After": "1"},
        )

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.SockSite(self._runner, self.sock, ssl_context=self.ssl).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.sock.close()


class SharedEncryption:
    """The encryption configuration kept the same on every server of a shared datastore.

    A server that changes it (``secrets-encrypt``) stores it in the bootstrap data
    *before* it starts writing under it (:meth:`publish`, the manager's hook); the
    others take it when they next look (:meth:`run`, every ``interval`` seconds) or at
    once when they meet a value they cannot read (:meth:`refresh`, the transforming
    store's hook) — so no server ever finds a Secret it has no key for.
    """

    def __init__(
        self,
        backend: storage.Store,
        *,
        passphrase: str,
        encryption: encryption_manager.Encryption,
        interval: float = 2.0,
    ) -> None:
        self.backend = backend
        self.passphrase = passphrase
        self.encryption = encryption
        self.interval = interval
        self._lock = asyncio.Lock()
        # The bootstrap data's revision last unsealed: unsealing derives its key with
        # PBKDF2 (~40 ms of CPU), too dear to pay every few seconds for nothing new.
        self._seen_revision = 0

    async def publish(self, data: bytes) -> None:
        await bootstrap.publish_file(
            self.backend, passphrase=self.passphrase, rel=bootstrap.ENCRYPTION_CONFIG, data=data
        )

    async def refresh(self) -> bool:
        """Take the cluster's configuration if it differs from ours; True if it did."""
        async with self._lock:
            found = await self.backend.get(bootstrap.key_for(self.passphrase))
            if found is None or found.mod_revision == self._seen_revision:
                return False  # unchanged since we last took it: nothing new to adopt
            files = bootstrap.unseal(found.value, self.passphrase)
            data = files.content.get(bootstrap.ENCRYPTION_CONFIG)
            adopted = data is not None and self.encryption.adopt(data)
            self._seen_revision = found.mod_revision
            return adopted

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.refresh()
            except (storage.StoreError, bootstrap.BootstrapError) as exc:
                log.warning("could not read the cluster's encryption configuration: %s", exc)
