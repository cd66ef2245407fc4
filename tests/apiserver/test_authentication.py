"""Authentication against a real API server: ServiceAccount tokens (bound to pods and
accounts), bootstrap tokens, the token file, expired certificates, anonymous access."""

from __future__ import annotations

import datetime
import json
import ssl
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pilothouse import testing
from pilothouse.api import errors, resources
from pilothouse.apiserver.authn import bootstrap, tokenfile
from pilothouse.client import config, rest

R = resources.DEFAULT
NAMESPACES = R.by_path("", "v1", "namespaces")
PODS = R.by_path("", "v1", "pods")
SECRETS = R.by_path("", "v1", "secrets")
ACCOUNTS = R.by_path("", "v1", "serviceaccounts")
WHOAMI = R.by_path("authentication.k8s.io", "v1", "selfsubjectreviews")
TOKEN_REVIEWS = R.by_path("authentication.k8s.io", "v1", "tokenreviews")
REVIEW = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}


@pytest.fixture
async def admin(api_server: testing.ServerThread) -> AsyncIterator[rest.Client]:
    async with rest.Client(config.local_socket(api_server.server.socket_path)) as c:
        yield c


async def whoami(server: testing.ServerThread, token: str) -> dict:
    """SelfSubjectReview over HTTPS with a bearer token (no client certificate)."""
    pki = server.server.pki
    assert pki is not None
    cfg = config.ClusterConfig(server=server.url, ca_data=pki.ca_cert.read_bytes(), token=token)
    async with rest.Client(cfg) as c:
        got = await c.create(WHOAMI, dict(REVIEW))
    return dict(got["status"]["userInfo"])


async def _token(admin: rest.Client, ns: str, account: str, body: dict) -> str:
    answer = await admin.request(
        "POST", rest.resource_path(ACCOUNTS, ns, account, "token"), body=body
    )
    return str(answer["status"]["token"])


async def test_service_account_tokens_bound_to_pods(
    admin: rest.Client, api_server: testing.ServerThread
) -> None:
    ns = "sa-" + uuid.uuid4().hex[:8]
    await admin.create(NAMESPACES, {"metadata": {"name": ns}})
    await testing.namespace_set_up(admin, ns)
    pod = await admin.create(
        PODS,
        {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}},
        ns,
    )
    # ServiceAccount admission: the default account and the projected token volume.
    assert pod["spec"]["serviceAccountName"] == "default"
    volume = pod["spec"]["volumes"][0]
    assert volume["name"].startswith("kube-api-access-") and len(volume["name"]) == 21
    assert pod["spec"]["containers"][0]["volumeMounts"] == [
        {
            "name": volume["name"],
            "readOnly": True,
            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
        }
    ]
    bound = {
        "spec": {
            "expirationSeconds": 3607,
            "boundObjectRef": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": "p",
                "uid": pod["metadata"]["uid"],
            },
        }
    }
    answer = await admin.request(
        "POST", rest.resource_path(ACCOUNTS, ns, "default", "token"), body=bound
    )
    assert answer["metadata"] == {"name": "default", "namespace": ns, "creationTimestamp": None}
    assert answer["spec"]["audiences"] == ["https://kubernetes.default.svc.cluster.local"]
    token = answer["status"]["token"]
    info = await whoami(api_server, token)
    assert info["username"] == f"system:serviceaccount:{ns}:default"
    assert info["groups"] == [
        "system:serviceaccounts",
        f"system:serviceaccounts:{ns}",
        "system:authenticated",
    ]
    assert info["extra"]["authentication.kubernetes.io/pod-name"] == ["p"]
    assert info["extra"]["authentication.kubernetes.io/credential-id"][0].startswith("JTI=")
    # A token for a pod of another account is refused with upstream's words.
    with pytest.raises(errors.StatusError) as exc:
        await admin.create(ACCOUNTS, {"metadata": {"name": "other"}}, ns)
        await _token(admin, ns, "other", bound)
    assert exc.value.message == (
        'cannot bind token for serviceaccount "other" to pod running with serviceaccount "default"'
    )
    with pytest.raises(errors.StatusError) as exc:
        await _token(
            admin,
            ns,
            "default",
            {"spec": {"boundObjectRef": {"apiVersion": "v1", "kind": "ConfigMap", "name": "x"}}},
        )
    assert exc.value.message == "cannot bind token to object of type /v1, Kind=ConfigMap"
    with pytest.raises(errors.StatusError) as exc:
        await _token(admin, ns, "default", {"spec": {"expirationSeconds": 60}})
    assert exc.value.message == (
        'TokenRequest.authentication.k8s.io "default" is invalid: spec.expirationSeconds: '
        "Invalid value: 60: may not specify a duration less than 10 minutes"
    )
    # The pod goes: so does its token (401, never anonymous).
    await admin.delete(PODS, "p", ns, grace_period_seconds=0)
    with pytest.raises(errors.StatusError) as exc:
        await whoami(api_server, token)
    assert exc.value.code == 401 and exc.value.message == "Unauthorized"
    reviewed = await admin.create(TOKEN_REVIEWS, {"spec": {"token": token}})
    assert reviewed["status"]["user"] == {} and "authenticated" not in reviewed["status"]


async def test_service_account_tokens_die_with_their_account(
    admin: rest.Client, api_server: testing.ServerThread
) -> None:
    ns = "sa-" + uuid.uuid4().hex[:8]
    await admin.create(NAMESPACES, {"metadata": {"name": ns}})
    await admin.create(ACCOUNTS, {"metadata": {"name": "robot"}}, ns)
    token = await _token(admin, ns, "robot", {"spec": {}})
    assert (await whoami(api_server, token))["username"] == f"system:serviceaccount:{ns}:robot"
    reviewed = await admin.create(
        TOKEN_REVIEWS, {"spec": {"token": token, "audiences": ["somebody-else"]}}
    )
    assert "token audiences" in reviewed["status"]["error"]
    await admin.delete(ACCOUNTS, "robot", ns)
    await admin.create(ACCOUNTS, {"metadata": {"name": "robot"}}, ns)  # same name, new uid
    with pytest.raises(errors.StatusError) as exc:
        await whoami(api_server, token)
    assert exc.value.code == 401
    # An expired token is refused as well.
    identity = api_server.server.identity
    assert identity is not None
    account = await admin.get(ACCOUNTS, "robot", ns)
    old = identity.issuer.issue(
        account,
        audiences=["https://kubernetes.default.svc.cluster.local"],
        expiration_seconds=600,
        now=time.time() - 3600,
    )
    with pytest.raises(errors.StatusError) as exc:
        await whoami(api_server, old.token)
    assert exc.value.code == 401


async def test_bootstrap_tokens(admin: rest.Client, api_server: testing.ServerThread) -> None:
    token = bootstrap.new_token()
    secret = bootstrap.secret_for(
        token,
        description="t",
        ttl_seconds=3600,
        extra_groups=["system:bootstrappers:rack1"],
        now=time.time(),
    )
    await admin.create(SECRETS, secret, "kube-system")
    info = await whoami(api_server, token)
    assert info["username"] == f"system:bootstrap:{token[:6]}"
    assert info["groups"] == [
        "system:bootstrappers",
        "system:bootstrappers:rack1",
        "system:authenticated",
    ]
    expired = bootstrap.new_token()
    await admin.create(
        SECRETS,
        bootstrap.secret_for(
            expired, description="", ttl_seconds=60, extra_groups=[], now=time.time() - 3600
        ),
        "kube-system",
    )
    with pytest.raises(errors.StatusError) as exc:
        await whoami(api_server, expired)
    assert exc.value.code == 401
    with pytest.raises(errors.StatusError) as exc:
        await whoami(api_server, token[:7] + "0000000000000000")
    assert exc.value.code == 401
    # A node may join with any valid bootstrap token.
    pki = api_server.server.pki
    assert pki is not None
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    async with aiohttp.ClientSession() as session:
        for bearer, status in ((token, 400), (expired, 401)):
            async with session.post(
                api_server.url + "/pilothouse/v1/join",
                data=b"{}",
                ssl=ctx,
                headers={"Authorization": f"Bearer {bearer}"},
            ) as resp:
                assert resp.status == status  # 400: authenticated, the body is empty


def _client_pair(pki_dir: Path, *, days_ago: int) -> tuple[Path, Path]:
    ca = x509.load_pem_x509_certificate((pki_dir / "ca.crt").read_bytes())
    ca_key = serialization.load_pem_private_key((pki_dir / "ca.key").read_bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "old-timer")]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=days_ago + 2))
        .not_valid_after(now - datetime.timedelta(days=days_ago))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    out = pki_dir.parent / f"old-{uuid.uuid4().hex[:6]}"
    out.mkdir()
    (out / "c.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (out / "c.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return out / "c.crt", out / "c.key"


async def test_an_expired_certificate_is_401(api_server: testing.ServerThread) -> None:
    pki = api_server.server.pki
    assert pki is not None
    cert, key = _client_pair(pki.directory, days_ago=1)
    ctx = pki.ssl_client_context(cert, key)
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as session,
        session.get(api_server.url + "/api/v1/namespaces") as resp,
    ):
        assert resp.status == 401
        body = await resp.json()
        assert (body["reason"], body["message"]) == ("Unauthorized", "Unauthorized")


def test_token_file(tmp_path: Path) -> None:
    good = tmp_path / "tokens.csv"
    good.write_text('s3cr3t,jane,1001,"ops,dev"\nother,joe,1002\n')
    tokens = tokenfile.TokenFile.load(good)
    jane = tokens.authenticate("s3cr3t")
    assert jane is not None and (jane.name, jane.uid, jane.groups) == (
        "jane",
        "1001",
        ("ops", "dev"),
    )
    assert tokens.authenticate("nope") is None
    bad = tmp_path / "bad.csv"
    bad.write_text("only,two\n")
    with pytest.raises(tokenfile.TokenFileError) as exc:
        tokenfile.TokenFile.load(bad)
    assert str(exc.value) == (
        f"token file '{bad}' must have at least 3 columns (token, user name, user uid), found 2"
    )


async def test_token_file_users_and_anonymous_off(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.csv"
    tokens.write_text('t0ken,kim,42,"readers"\n')
    with testing.server_thread(
        tmp_path / "data", token_auth_file=tokens, anonymous_auth=False
    ) as srv:
        info = await whoami(srv, "t0ken")
        assert info == {
            "username": "kim",
            "uid": "42",
            "groups": ["readers", "system:authenticated"],
        }
        pki = srv.server.pki
        assert pki is not None
        async with (
            aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=pki.ssl_client_context())
            ) as s,
            s.get(srv.url + "/version") as resp,
        ):
            assert resp.status == 401


async def test_service_account_issuer_discovery(
    admin: rest.Client, api_server: testing.ServerThread
) -> None:
    import jwt

    ns = "oidc-" + uuid.uuid4().hex[:6]
    await admin.create(NAMESPACES, {"metadata": {"name": ns}})
    await admin.create(ACCOUNTS, {"metadata": {"name": "reader"}}, ns)
    token = await _token(admin, ns, "reader", {"spec": {}})
    pki = api_server.server.pki
    assert pki is not None
    cfg = config.ClusterConfig(server=api_server.url, ca_data=pki.ca_cert.read_bytes(), token=token)
    async with rest.Client(cfg) as c:
        discovery = await c.request("GET", "/.well-known/openid-configuration")
        # served as application/jwk-set+json, which the client hands back as text
        keys = json.loads(await c.request("GET", "/openid/v1/jwks"))
    assert discovery["issuer"] == "https://kubernetes.default.svc.cluster.local"
    assert discovery["jwks_uri"].endswith("/openid/v1/jwks")
    header = jwt.get_unverified_header(token)
    key = next(k for k in keys["keys"] if k["kid"] == header["kid"])
    public = jwt.algorithms.RSAAlgorithm.from_jwk(key)
    claims = jwt.decode(token, public, algorithms=["RS256"], audience=discovery["issuer"])
    assert claims["sub"] == f"system:serviceaccount:{ns}:reader"
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=pki.ssl_client_context())) as s,
        s.get(api_server.url + "/openid/v1/jwks") as resp,
    ):
        assert resp.status == 403  # anonymous: not in system:serviceaccounts
