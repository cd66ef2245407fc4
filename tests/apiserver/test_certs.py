"""The cluster PKI, client identities, the admin kubeconfig, and TLS with them end to end."""

from __future__ import annotations

import asyncio
import base64
import datetime
import ipaddress
import json
import pathlib
import socket
import ssl
import stat
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import aiohttp
import kubernetes
import pytest
import yaml
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pilothouse.apiserver.auth import certs, kubeconfig

_DER = serialization.Encoding.DER


# The kubernetes package has no type hints.
_load_kube_config = cast(Callable[..., None], kubernetes.config.load_kube_config)


def _cert(path: pathlib.Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _mode(path: pathlib.Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _sans(cert: x509.Certificate) -> tuple[set[str], set[str]]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(san.get_values_for_type(x509.DNSName)), {
        str(ip) for ip in san.get_values_for_type(x509.IPAddress)
    }


def _eku(cert: x509.Certificate) -> list[x509.ObjectIdentifier]:
    return list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


# --- creating and reusing -------------------------------------------------


def test_first_start_creates_the_pki(tmp_path: pathlib.Path) -> None:
    started = time.perf_counter()
    pki = certs.ensure_pki(tmp_path, hostnames=["api.example.test"], ips=["192.0.2.10"])
    assert time.perf_counter() - started < 0.5

    assert pki.directory == tmp_path / "pki"
    for path in (pki.ca_cert, pki.server_cert, pki.admin_cert):
        assert _mode(path) == 0o644
    for path in (pki.ca_key, pki.server_key, pki.admin_key):
        assert _mode(path) == 0o600
    assert sorted(p.name for p in pki.directory.iterdir()) == [
        "admin.crt",
        "admin.key",
        "ca.crt",
        "ca.key",
        "server.crt",
        "server.key",
    ]

    ca = _cert(pki.ca_cert)
    assert ca.subject.rfc4514_string() == "CN=pilothouse-ca"
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    public = ca.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert isinstance(public.curve, ec.SECP256R1)
    lifetime = ca.not_valid_after_utc - ca.not_valid_before_utc
    assert datetime.timedelta(days=3649) < lifetime < datetime.timedelta(days=3652)


def test_serving_certificate_names(tmp_path: pathlib.Path) -> None:
    pki = certs.ensure_pki(
        tmp_path, hostnames=["API.example.test"], ips=["192.0.2.10", "2001:db8::1"]
    )
    server = _cert(pki.server_cert)
    server.verify_directly_issued_by(_cert(pki.ca_cert))
    assert _eku(server) == [ExtendedKeyUsageOID.SERVER_AUTH]
    dns, ips = _sans(server)
    assert dns >= {
        "localhost",
        socket.gethostname().lower(),
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "api.example.test",
    }
    assert ips == {"127.0.0.1", "::1", "10.43.0.1", "192.0.2.10", "2001:db8::1"}


def test_admin_certificate(tmp_path: pathlib.Path) -> None:
    pki = certs.ensure_pki(tmp_path)
    admin = _cert(pki.admin_cert)
    admin.verify_directly_issued_by(_cert(pki.ca_cert))
    assert _eku(admin) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert [a.value for a in admin.subject.get_attributes_for_oid(NameOID.COMMON_NAME)] == ["admin"]
    assert [a.value for a in admin.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == [
        "system:masters"
    ]
    assert not admin.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert certs.identity_from_peercert(admin.public_bytes(_DER)) == ("admin", ["system:masters"])


def test_second_start_reuses_everything(tmp_path: pathlib.Path) -> None:
    pki = certs.ensure_pki(tmp_path, hostnames=["a.test"], ips=["192.0.2.1"])
    before = {p.name: p.read_bytes() for p in pki.directory.iterdir()}
    started = time.perf_counter()
    again = certs.ensure_pki(tmp_path, hostnames=["a.test"], ips=["192.0.2.1"])
    assert time.perf_counter() - started < 0.1
    assert again == pki
    assert {p.name: p.read_bytes() for p in again.directory.iterdir()} == before


def test_fewer_names_keep_the_serving_certificate(tmp_path: pathlib.Path) -> None:
    pki = certs.ensure_pki(tmp_path, hostnames=["a.test"], ips=["192.0.2.1"])
    before = pki.server_cert.read_bytes()
    certs.ensure_pki(tmp_path)
    assert pki.server_cert.read_bytes() == before


def test_a_new_name_reissues_only_the_serving_certificate(tmp_path: pathlib.Path) -> None:
    pki = certs.ensure_pki(tmp_path)
    ca, admin, server = (p.read_bytes() for p in (pki.ca_cert, pki.admin_cert, pki.server_cert))
    certs.ensure_pki(tmp_path, hostnames=["new.test"])
    assert pki.ca_cert.read_bytes() == ca
    assert pki.admin_cert.read_bytes() == admin
    assert pki.server_cert.read_bytes() != server
    assert "new.test" in _sans(_cert(pki.server_cert))[0]
    certs.ensure_pki(tmp_path, ips=["198.51.100.7"])
    dns, ips = _sans(_cert(pki.server_cert))
    assert "198.51.100.7" in ips
    assert "new.test" not in dns  # reissued for what this start asked for


def test_a_lost_ca_reissues_everything(tmp_path: pathlib.Path) -> None:
    pki = certs.ensure_pki(tmp_path)
    admin = pki.admin_cert.read_bytes()
    pki.ca_key.unlink()
    certs.ensure_pki(tmp_path)
    assert pki.admin_cert.read_bytes() != admin
    ca = _cert(pki.ca_cert)
    _cert(pki.admin_cert).verify_directly_issued_by(ca)
    _cert(pki.server_cert).verify_directly_issued_by(ca)


def test_a_broken_or_foreign_leaf_is_reissued(tmp_path: pathlib.Path) -> None:
    pki = certs.ensure_pki(tmp_path)
    other = certs.ensure_pki(tmp_path / "other")
    pki.admin_key.write_bytes(other.admin_key.read_bytes())  # key no longer fits the certificate
    pki.server_cert.write_bytes(other.server_cert.read_bytes())  # from another CA
    pki.server_key.write_bytes(other.server_key.read_bytes())
    certs.ensure_pki(tmp_path)
    ca = _cert(pki.ca_cert)
    _cert(pki.admin_cert).verify_directly_issued_by(ca)
    _cert(pki.server_cert).verify_directly_issued_by(ca)
    assert _cert(pki.admin_cert).public_key() == _load_key(pki.admin_key).public_key()
    pki.server_cert.write_text("not a certificate")
    certs.ensure_pki(tmp_path)
    _cert(pki.server_cert).verify_directly_issued_by(ca)


def test_issue_client_cert(tmp_path: pathlib.Path) -> None:
    pki = certs.ensure_pki(tmp_path)
    cert_pem, key_pem = certs.issue_client_cert(
        pki, common_name="system:node:n1", organizations=["system:nodes", "extra"], days=30
    )
    cert = x509.load_pem_x509_certificate(cert_pem)
    cert.verify_directly_issued_by(_cert(pki.ca_cert))
    assert _eku(cert) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert datetime.timedelta(days=30) <= lifetime <= datetime.timedelta(days=30, hours=2)
    key = _load_key_bytes(key_pem)
    assert key.public_key() == cert.public_key()
    assert certs.identity_from_peercert(cert.public_bytes(_DER)) == (
        "system:node:n1",
        ["system:nodes", "extra"],
    )


def test_identity_needs_a_common_name(tmp_path: pathlib.Path) -> None:
    pki = certs.ensure_pki(tmp_path)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "g")]))
        .issuer_name(_cert(pki.ca_cert).subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(_load_key(pki.ca_key), hashes.SHA256())
    )
    with pytest.raises(ValueError, match="no common name"):
        certs.identity_from_peercert(cert.public_bytes(_DER))


def test_issue_client_cert_rejects_an_empty_common_name(tmp_path: pathlib.Path) -> None:
    pki = certs.ensure_pki(tmp_path)
    with pytest.raises(ValueError):
        certs.issue_client_cert(pki, common_name="", organizations=[], days=1)


# --- kubeconfig -----------------------------------------------------------


def test_kubeconfig_as_kubectl_writes_it(tmp_path: pathlib.Path) -> None:
    pki = certs.ensure_pki(tmp_path)
    path = tmp_path / "home" / ".kube" / "config"
    kubeconfig.write_kubeconfig(path, server="https://127.0.0.1:6443", pki=pki)
    assert _mode(path) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["config"]  # no temporary left behind
    text = path.read_text()
    assert text.startswith("apiVersion: v1\nclusters:\n- cluster:\n")
    config = yaml.safe_load(text)
    assert config["kind"] == "Config"
    assert config["current-context"] == "pilothouse"
    assert config["preferences"] == {}
    assert config["contexts"] == [
        {"name": "pilothouse", "context": {"cluster": "pilothouse", "user": "admin"}}
    ]
    (cluster,) = config["clusters"]
    assert cluster["name"] == "pilothouse"
    assert cluster["cluster"]["server"] == "https://127.0.0.1:6443"
    assert (
        base64.b64decode(cluster["cluster"]["certificate-authority-data"])
        == pki.ca_cert.read_bytes()
    )
    (user,) = config["users"]
    assert user["name"] == "admin"
    assert base64.b64decode(user["user"]["client-certificate-data"]) == pki.admin_cert.read_bytes()
    assert base64.b64decode(user["user"]["client-key-data"]) == pki.admin_key.read_bytes()

    # Rewriting replaces the file.
    kubeconfig.write_kubeconfig(
        path, server="https://10.0.0.1:6443", pki=pki, cluster_name="c2", user="me"
    )
    config = yaml.safe_load(path.read_text())
    assert config["current-context"] == "c2"
    assert config["clusters"][0]["cluster"]["server"] == "https://10.0.0.1:6443"
    assert config["contexts"][0]["context"] == {"cluster": "c2", "user": "me"}


def test_kubernetes_client_loads_the_kubeconfig(tmp_path: pathlib.Path) -> None:
    pki = certs.ensure_pki(tmp_path)
    path = tmp_path / "config"
    kubeconfig.write_kubeconfig(path, server="https://127.0.0.1:6443", pki=pki)
    configuration = kubernetes.client.Configuration()
    _load_kube_config(config_file=str(path), client_configuration=configuration)
    assert configuration.host == "https://127.0.0.1:6443"
    for loaded, ours in [
        (configuration.ssl_ca_cert, pki.ca_cert),
        (configuration.cert_file, pki.admin_cert),
        (configuration.key_file, pki.admin_key),
    ]:
        assert loaded is not None
        assert pathlib.Path(loaded).read_bytes() == ours.read_bytes()


# --- TLS end to end -------------------------------------------------------


def _load_key_bytes(pem: bytes) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def _load_key(path: pathlib.Path) -> ec.EllipticCurvePrivateKey:
    return _load_key_bytes(path.read_bytes())


VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0",
    "gitCommit": "0",
    "gitTreeState": "clean",
    "buildDate": "2024-12-11T00:00:00Z",
    "goVersion": "go1.23",
    "compiler": "gc",
    "platform": "linux/amd64",
}


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[ssl.SSLContext], Any]]:
    """Start an HTTPS server on 127.0.0.1 that reports who the client certificate names."""
    runners: list[web.AppRunner] = []

    async def start(context: ssl.SSLContext) -> tuple[str, list[Any]]:
        seen: list[Any] = []

        async def whoami(request: web.Request) -> web.Response:
            ssl_object = (
                request.transport.get_extra_info("ssl_object") if request.transport else None
            )
            der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
            seen.append(certs.identity_from_peercert(der) if der else None)
            return web.json_response(VERSION)

        app = web.Application()
        app.router.add_get("/version", whoami)
        app.router.add_get("/version/", whoami)
        runner = web.AppRunner(app)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        port = runner.addresses[0][1]
        return f"https://127.0.0.1:{port}", seen

    yield start
    for runner in runners:
        await runner.cleanup()


async def test_admin_client_is_seen_as_admin(tmp_path: pathlib.Path, serve: Any) -> None:
    pki = certs.ensure_pki(tmp_path)
    url, seen = await serve(pki.ssl_server_context(require_client_cert=False))
    context = pki.ssl_client_context(pki.admin_cert, pki.admin_key)
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{url}/version", ssl=context) as response,
    ):
        assert response.status == 200
        assert (await response.json())["minor"] == "32"
    assert seen == [("admin", ["system:masters"])]


async def test_anonymous_client_connects_when_certificates_are_optional(
    tmp_path: pathlib.Path, serve: Any
) -> None:
    pki = certs.ensure_pki(tmp_path)
    url, seen = await serve(pki.ssl_server_context(require_client_cert=False))
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{url}/version", ssl=pki.ssl_client_context()) as response,
    ):
        assert response.status == 200
    assert seen == [None]


async def test_client_certificates_can_be_required(tmp_path: pathlib.Path, serve: Any) -> None:
    pki = certs.ensure_pki(tmp_path)
    url, seen = await serve(pki.ssl_server_context(require_client_cert=True))
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientError):
            async with session.get(f"{url}/version", ssl=pki.ssl_client_context()) as response:
                await response.read()
        context = pki.ssl_client_context(pki.admin_cert, pki.admin_key)
        async with session.get(f"{url}/version", ssl=context) as response:
            assert response.status == 200
    assert seen == [("admin", ["system:masters"])]


async def test_foreign_certificates_are_refused(tmp_path: pathlib.Path, serve: Any) -> None:
    pki = certs.ensure_pki(tmp_path / "ours")
    theirs = certs.ensure_pki(tmp_path / "theirs")
    url, seen = await serve(pki.ssl_server_context(require_client_cert=False))
    async with aiohttp.ClientSession() as session:
        # A client certificate from another CA fails the handshake.
        foreign = pki.ssl_client_context(theirs.admin_cert, theirs.admin_key)
        with pytest.raises(aiohttp.ClientError):
            async with session.get(f"{url}/version", ssl=foreign) as response:
                await response.read()
        # A client trusting another CA does not trust this server.
        with pytest.raises(aiohttp.ClientError):
            async with session.get(f"{url}/version", ssl=theirs.ssl_client_context()) as response:
                await response.read()
    assert seen == []


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
async def test_tls_1_1_is_refused(tmp_path: pathlib.Path, serve: Any) -> None:
    pki = certs.ensure_pki(tmp_path)
    url, _ = await serve(pki.ssl_server_context())
    context = pki.ssl_client_context()
    context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    context.maximum_version = ssl.TLSVersion.TLSv1_1
    async with aiohttp.ClientSession() as session:
        with pytest.raises((aiohttp.ClientError, ssl.SSLError)):
            async with session.get(f"{url}/version", ssl=context) as response:
                await response.read()


async def test_kubernetes_client_through_the_kubeconfig(tmp_path: pathlib.Path, serve: Any) -> None:
    pki = certs.ensure_pki(tmp_path)
    url, seen = await serve(pki.ssl_server_context())
    path = tmp_path / "config"
    kubeconfig.write_kubeconfig(path, server=url, pki=pki)

    def get_version() -> Any:
        configuration = kubernetes.client.Configuration()
        _load_kube_config(config_file=str(path), client_configuration=configuration)
        with kubernetes.client.ApiClient(configuration) as client:
            return kubernetes.client.VersionApi(client).get_code()

    version = await asyncio.to_thread(get_version)
    assert (version.major, version.minor) == ("1", "32")
    assert seen == [("admin", ["system:masters"])]


def test_ip_addresses_are_validated(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ValueError):
        certs.ensure_pki(tmp_path, ips=["not-an-ip"])
    assert ipaddress.ip_address(certs.KUBERNETES_SERVICE_IP) in ipaddress.ip_network("10.43.0.0/16")


def test_a_client_without_signature_algorithms_can_connect(tmp_path: pathlib.Path) -> None:
    """busybox's wget (its own TLS, as in a busybox pod without openssl) sends no
    signature_algorithms; Go's TLS 1.2 server answers it, and so must ours."""
    import shutil
    import subprocess

    from pilothouse import testing

    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.skip("busybox is not installed (apt-get install busybox-static)")
    with testing.server_thread(tmp_path / "data") as srv:
        proc = subprocess.run(
            [busybox, "wget", "-q", "--no-check-certificate", "-O", "-", f"{srv.url}/version"],
            capture_output=True,
            text=True,
            timeout=30,
            env={"PATH": "/nonexistent"},  # no openssl helper: busybox's own TLS
        )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["minor"] == "32"
