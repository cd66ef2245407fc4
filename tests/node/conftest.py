"""Node fixtures: a local OCI registry with a busybox image, and no internet anywhere.

Debian's ``docker-registry`` (distribution 2.8) runs on 127.0.0.1 with a config
derived from the package's own, storage in a temp dir. Three flavours, each started
once per session and only when a test asks: open (``local_registry``), basic auth
from an htpasswd file (``htpasswd_registry``), and the token flow
(``token_registry``) against a small token server of ours that signs ES256 JWTs
with a throwaway certificate the registry trusts. Each has
``127.0.0.1:<port>/library/busybox:1.36`` pushed into it. Registries are stopped by
their PID when the session ends.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import datetime
import http.server
import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from pilothouse.node.runtime import protocol
from pilothouse.node.runtime.images import testimage

REGISTRY_BINARY = "/usr/bin/docker-registry"
DEBIAN_CONFIG = Path("/etc/docker/registry/config.yml")
USERNAME, PASSWORD = "alice", "wonderland"
BUSYBOX_REPO = "library/busybox:1.36"


@dataclass
class LocalRegistry:
    """A registry process on 127.0.0.1 and what was pushed into it."""

    host: str
    process: subprocess.Popen[bytes]
    log: Path
    credentials: protocol.RegistryAuth | None = None
    busybox_digest: str = ""
    token_server: TokenServer | None = None

    @property
    def busybox(self) -> str:
        return f"{self.host}/{BUSYBOX_REPO}"

    async def push(self, layout: Path, repo_tag: str) -> str:
        """Push an OCI layout as ``<host>/<repo_tag>``; the manifest digest."""
        return await testimage.push_oci_layout(
            layout, f"{self.host}/{repo_tag}", credentials=self.credentials
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _registry_config(data: Path, port: int, auth: dict[str, Any] | None) -> dict[str, Any]:
    """The Debian package's config, pointed at our directory, port and auth."""
    cfg: dict[str, Any] = (
        yaml.safe_load(DEBIAN_CONFIG.read_text()) if DEBIAN_CONFIG.exists() else {}
    )
    cfg.setdefault("version", 0.1)
    storage = cfg.setdefault("storage", {})
    storage["filesystem"] = {"rootdirectory": str(data)}
    storage["delete"] = {"enabled": True}
    cfg.setdefault("http", {})["addr"] = f"127.0.0.1:{port}"
    cfg.pop("health", None)  # no background storage probes in tests
    cfg["log"] = {"level": "warn", "accesslog": {"disabled": True}}
    cfg.pop("auth", None)
    if auth:
        cfg["auth"] = auth
    return cfg


def _die_with_parent() -> None:
    # A test run killed outright (CI timeout) must not leave registries behind.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@contextlib.contextmanager
def run_registry(workdir: Path, *, auth: dict[str, Any] | None = None) -> Iterator[LocalRegistry]:
    if not os.access(REGISTRY_BINARY, os.X_OK):
        pytest.skip("docker-registry is not installed (apt-get install docker-registry)")
    workdir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    config = workdir / "config.yml"
    config.write_text(yaml.safe_dump(_registry_config(workdir / "data", port, auth)))
    log = workdir / "registry.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [REGISTRY_BINARY, "serve", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
    registry = LocalRegistry(f"127.0.0.1:{port}", proc, log)
    try:
        _wait_ready(registry)
        yield registry
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()


def _wait_ready(registry: LocalRegistry) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if registry.process.poll() is not None:
            break
        try:
            urllib.request.urlopen(f"http://{registry.host}/v2/", timeout=1).close()
            return
        except urllib.error.HTTPError as exc:
            if exc.code == 401:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"registry did not start:\n{registry.log.read_text()[-3000:]}")


# --- the busybox image ------------------------------------------------------------------------
@pytest.fixture(scope="session")
def busybox_layer() -> bytes:
    """The busybox layer tarball (uncompressed), to build other images on."""
    try:
        return testimage.busybox_layer()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def busybox_layout(tmp_path_factory: pytest.TempPathFactory, busybox_layer: bytes) -> Path:
    """The busybox OCI image layout (a directory), built once per session."""
    layout = tmp_path_factory.mktemp("busybox") / "layout"
    return testimage.write_oci_layout(layout, [busybox_layer], tag="busybox:1.36")


def _push_busybox(registry: LocalRegistry, layout: Path) -> None:
    registry.busybox_digest = asyncio.run(registry.push(layout, BUSYBOX_REPO))


@pytest.fixture(scope="session")
def local_registry(
    tmp_path_factory: pytest.TempPathFactory, busybox_layout: Path
) -> Iterator[LocalRegistry]:
    """An open registry (plain http on 127.0.0.1) holding library/busybox:1.36."""
    with run_registry(tmp_path_factory.mktemp("registry-open")) as registry:
        _push_busybox(registry, busybox_layout)
        yield registry


# --- basic auth (htpasswd) --------------------------------------------------------------------
def _bcrypt(password: str) -> str:
    """A bcrypt hash from the C library (Debian's libxcrypt), as the registry needs."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import crypt
        except ImportError:
            pytest.skip("no crypt module for a bcrypt htpasswd entry")
        hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 4))
    if not hashed or not hashed.startswith("$2"):
        pytest.skip("the C library cannot make bcrypt hashes")
    return hashed


@pytest.fixture(scope="session")
def htpasswd_registry(
    tmp_path_factory: pytest.TempPathFactory, busybox_layout: Path
) -> Iterator[LocalRegistry]:
    """A registry behind basic auth (htpasswd, bcrypt): alice / wonderland."""
    workdir = tmp_path_factory.mktemp("registry-htpasswd")
    htpasswd = workdir / "htpasswd"
    htpasswd.write_text(f"{USERNAME}:{_bcrypt(PASSWORD)}\n")
    auth = {"htpasswd": {"realm": "pilothouse-test", "path": str(htpasswd)}}
    with run_registry(workdir, auth=auth) as registry:
        registry.credentials = protocol.RegistryAuth(registry.host, USERNAME, PASSWORD)
        _push_busybox(registry, busybox_layout)
        yield registry


# --- token auth -------------------------------------------------------------------------------
@dataclass
class TokenServer:
    """Issues registry tokens: full requested access to alice, none to anonymous callers."""

    port: int = 0
    issuer: str = "pilothouse-test-issuer"
    service: str = "pilothouse-test"
    requests: list[dict[str, Any]] = field(default_factory=list)
    cert_pem: bytes = b""
    _key: Any = None
    _cert_der: bytes = b""
    _server: http.server.ThreadingHTTPServer | None = None

    def start(self) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pilothouse test token signer")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(self._key, hashes.SHA256())
        )
        self.cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        self._cert_der = cert.public_bytes(serialization.Encoding.DER)
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner._handle(self)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def _handle(self, req: http.server.BaseHTTPRequestHandler) -> None:
        query = urllib.parse.parse_qs(urllib.parse.urlparse(req.path).query)
        header = req.headers.get("Authorization", "")
        user = ""
        if header.startswith("Basic "):
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            if (user, password) != (USERNAME, PASSWORD):
                req.send_response(401)
                req.end_headers()
                return
        self.requests.append({"user": user, "scope": query.get("scope", [])})
        access = []
        for scope in query.get("scope", []) if user else []:
            kind, name_actions = scope.split(":", 1)
            name, _, actions = name_actions.rpartition(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        body = json.dumps({"token": self._jwt(user, access), "expires_in": 300}).encode()
        req.send_response(200)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        req.wfile.write(body)

    def _jwt(self, subject: str, access: list[dict[str, Any]]) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        now = int(time.time())
        header = {"alg": "ES256", "typ": "JWT", "x5c": [base64.b64encode(self._cert_der).decode()]}
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": os.urandom(8).hex(),
            "access": access,
        }
        signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
        r, s = decode_dss_signature(
            self._key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        )
        return f"{signing_input}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


@pytest.fixture(scope="session")
def token_registry(
    tmp_path_factory: pytest.TempPathFactory, busybox_layout: Path
) -> Iterator[LocalRegistry]:
    """A registry using the token flow (our token server; alice / wonderland may push)."""
    workdir = tmp_path_factory.mktemp("registry-token")
    server = TokenServer()
    server.start()
    try:
        (workdir / "token-signer.pem").write_bytes(server.cert_pem)
        auth = {
            "token": {
                "realm": server.realm,
                "service": server.service,
                "issuer": server.issuer,
                "rootcertbundle": str(workdir / "token-signer.pem"),
            }
        }
        with run_registry(workdir, auth=auth) as registry:
            registry.credentials = protocol.RegistryAuth(registry.host, USERNAME, PASSWORD)
            registry.token_server = server
            _push_busybox(registry, busybox_layout)
            yield registry
    finally:
        server.stop()


@pytest.fixture
def image_store(tmp_path: Path) -> Any:
    """A fresh, empty image store in the test's temp dir."""
    from pilothouse.node.runtime.images import store

    return store.ImageStore(tmp_path / "images")
