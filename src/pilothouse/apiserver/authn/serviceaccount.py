"""ServiceAccount tokens: JWTs signed with the cluster's service-account key.

Issued by the TokenRequest subresource (``serviceaccounts/NAME/token``) with
upstream's claims — ``iss``, ``sub`` (``system:serviceaccount:<ns>:<name>``),
``aud``, ``exp``/``iat``/``nbf``, ``jti`` and the private ``kubernetes.io`` claim
naming the namespace, the account, and the pod (with its node) or Secret the
token is bound to. A token bound to a pod stops working when the pod is gone (or
was deleted more than a minute ago), one bound to a Secret when the Secret is, and
every token when its account is deleted or recreated. Legacy tokens in
``kubernetes.io/service-account-token`` Secrets (issuer
``kubernetes/serviceaccount``) are accepted while their Secret holds them.

Signing is RS256 with a 2048-bit RSA key in ``<data-dir>/pki/service-account.key``,
kubeadm's choice; PyJWT does the JWS work (measured against jwcrypto: see
BENCHMARKS.md). Verifying a signature costs about 0.1 ms, so verified claims are
cached by token; the references (account, pod, Secret) are checked on every
request against the watch cache, which costs only dict look-ups.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import hashlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from pilothouse import atomicfile
from pilothouse.api import meta, rbac
from pilothouse.apiserver.authn import user as user_module

log = logging.getLogger(__name__)

ISSUER = "https://kubernetes.default.svc.cluster.local"
LEGACY_ISSUER = "kubernetes/serviceaccount"
API_AUDIENCES = (ISSUER,)
KEY_FILE = "service-account.key"
# Tokens the ServiceAccount admission mounts ask for 3607 s; the server then hands out a
# year-long token whose "warnafter" is an hour (--service-account-extend-token-expiration).
WARN_ONLY_EXPIRATION = 60 * 60 + 7
EXTENDED_EXPIRATION = 24 * 365 * 60 * 60
LEEWAY = 60  # go-jose's DefaultLeeway: clocks may differ by a minute
EXTRA_POD_NAME = "authentication.kubernetes.io/pod-name"
EXTRA_POD_UID = "authentication.kubernetes.io/pod-uid"
EXTRA_NODE_NAME = "authentication.kubernetes.io/node-name"
EXTRA_NODE_UID = "authentication.kubernetes.io/node-uid"
EXTRA_CREDENTIAL_ID = "authentication.kubernetes.io/credential-id"
_CACHE_SIZE = 4096

Getter = Callable[[str, str, str], "dict[str, Any] | None"]
"""(plural, namespace, name) → the object in the watch cache, or None."""


class TokenInvalid(Exception):
    """A service-account token that is ours but not valid (401); the message is logged."""


def key_id(public: rsa.RSAPublicKey) -> str:
    """Upstream's ``kid``: base64url of the SHA-256 of the public key's DER."""
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


@dataclass(frozen=True)
class SigningKey:
    private: rsa.RSAPrivateKey
    kid: str

    @classmethod
    def ensure(cls, pki_dir: Path) -> SigningKey:
        """The key in ``pki_dir`` (created on first start, mode 0600)."""
        path = pki_dir / KEY_FILE
        with contextlib.suppress(FileNotFoundError, ValueError):
            loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if isinstance(loaded, rsa.RSAPrivateKey):
                return cls(loaded, key_id(loaded.public_key()))
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        pki_dir.mkdir(parents=True, exist_ok=True)
        atomicfile.write(path, pem, mode=0o600)
        return cls(key, key_id(key.public_key()))

    def jwks(self) -> dict[str, Any]:
        """The public key as a JSON Web Key Set (``/openid/v1/jwks``)."""
        numbers = self.private.public_key().public_numbers()

        def b64(n: int) -> str:
            raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
            return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

        return {
            "keys": [
                {
                    "use": "sig",
                    "kty": "RSA",
                    "kid": self.kid,
                    "alg": "RS256",
                    "n": b64(numbers.n),
                    "e": b64(numbers.e),
                }
            ]
        }


@dataclass(frozen=True)
class Issued:
    token: str
    expiration: float


class TokenIssuer:
    """Mints bound tokens with upstream's claims."""

    def __init__(self, key: SigningKey, *, issuer: str = ISSUER) -> None:
        self.key = key
        self.issuer = issuer

    def issue(
        self,
        service_account: dict[str, Any],
        *,
        audiences: list[str],
        expiration_seconds: int,
        pod: dict[str, Any] | None = None,
        secret: dict[str, Any] | None = None,
        node: dict[str, Any] | None = None,
        warn_after_seconds: int = 0,
        now: float | None = None,
    ) -> Issued:
        now = int(now if now is not None else time.time())
        md = service_account["metadata"]
        namespace = md.get("namespace", "")
        private: dict[str, Any] = {
            "namespace": namespace,
            "serviceaccount": {"name": md["name"], "uid": md.get("uid", "")},
        }
        if pod is not None:
            private["pod"] = _ref(pod)
            if node is not None:
                private["node"] = _ref(node)
        elif secret is not None:
            private["secret"] = _ref(secret)
        elif node is not None:
            private["node"] = _ref(node)
        if warn_after_seconds:
            private["warnafter"] = now + warn_after_seconds
        claims = {
            "aud": audiences,
            "exp": now + expiration_seconds,
            "iat": now,
            "iss": self.issuer,
            "jti": str(uuid.uuid4()),
            "kubernetes.io": private,
            "nbf": now,
            "sub": rbac.service_account_username(namespace, md["name"]),
        }
        token = jwt.encode(
            claims, self.key.private, algorithm="RS256", headers={"kid": self.key.kid}
        )
        return Issued(token, float(now + expiration_seconds))

    def issue_legacy(self, service_account: dict[str, Any], secret_name: str) -> str:
        """A token without expiry for a ``kubernetes.io/service-account-token`` Secret,
        with the legacy claims (issuer ``kubernetes/serviceaccount``)."""
        md = service_account["metadata"]
        prefix = "kubernetes.io/serviceaccount/"
        claims = {
            "iss": LEGACY_ISSUER,
            prefix + "namespace": md.get("namespace", ""),
            prefix + "secret.name": secret_name,
            prefix + "service-account.name": md["name"],
            prefix + "service-account.uid": md.get("uid", ""),
            "sub": rbac.service_account_username(md.get("namespace", ""), md["name"]),
        }
        return jwt.encode(
            claims, self.key.private, algorithm="RS256", headers={"kid": self.key.kid}
        )


def _ref(obj: dict[str, Any]) -> dict[str, str]:
    md = obj.get("metadata") or {}
    return {"name": str(md.get("name", "")), "uid": str(md.get("uid", ""))}


class TokenValidator:
    """Authenticates service-account JWTs against the key and the watch cache."""

    def __init__(
        self,
        key: SigningKey,
        get: Getter,
        *,
        issuers: tuple[str, ...] = (ISSUER, LEGACY_ISSUER),
        audiences: tuple[str, ...] = API_AUDIENCES,
    ) -> None:
        self.public = key.private.public_key()
        self.get = get
        self.issuers = issuers
        self.audiences = audiences
        self._verified: collections.OrderedDict[str, dict[str, Any]] = collections.OrderedDict()

    def authenticate(
        self, token: str, now: float, *, audiences: tuple[str, ...] | None = None
    ) -> user_module.UserInfo | None:
        """The account's user; None when the token is not a JWT of ours; raises
        TokenInvalid when it is ours and not valid."""
        claims = self._verified.get(token)
        if claims is None:
            claims = self._verify(token)
            if claims is None:
                return None
            self._verified[token] = claims
            if len(self._verified) > _CACHE_SIZE:
                self._verified.popitem(last=False)
        else:
            self._verified.move_to_end(token)
        self._check_times(claims, now)
        if claims.get("iss") == LEGACY_ISSUER:
            return self._legacy(claims, token)
        self._check_audience(claims, audiences or self.audiences)
        return self._bound(claims, now)

    # --- signature and claims -----------------------------------------------------
    def _verify(self, token: str) -> dict[str, Any] | None:
        if token.count(".") != 2:
            return None
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            return None
        if not isinstance(unverified, dict) or unverified.get("iss") not in self.issuers:
            return None
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self.public,
                algorithms=["RS256"],
                options={
                    "verify_aud": False,
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.PyJWTError as exc:
            raise TokenInvalid(f"invalid signature: {exc}") from None
        return claims

    def _check_times(self, claims: dict[str, Any], now: float) -> None:
        exp, nbf = claims.get("exp"), claims.get("nbf")
        if isinstance(exp, int | float) and now > exp + LEEWAY:
            raise TokenInvalid("service account token has expired")
        if isinstance(nbf, int | float) and now < nbf - LEEWAY:
            raise TokenInvalid("service account token is not valid yet")

    def _check_audience(self, claims: dict[str, Any], wanted: tuple[str, ...]) -> None:
        aud = claims.get("aud")
        have = [aud] if isinstance(aud, str) else list(aud or [])
        if not set(have) & set(wanted):
            raise TokenInvalid(
                f"token audiences {have!r} is invalid for the target audiences {list(wanted)!r}"
            )

    # --- references ---------------------------------------------------------------
    def _account(self, namespace: str, name: str, uid: str, now: float) -> dict[str, Any]:
        sa = self.get("serviceaccounts", namespace, name)
        if sa is None:
            raise TokenInvalid(f'serviceaccounts "{name}" not found')
        md = sa.get("metadata") or {}
        if _deleted_before(md, now - LEEWAY):
            raise TokenInvalid(f"service account {namespace}/{name} has been deleted")
        if md.get("uid") != uid:
            raise TokenInvalid(
                f"service account UID ({md.get('uid')}) does not match claim ({uid})"
            )
        return sa

    def _bound(self, claims: dict[str, Any], now: float) -> user_module.UserInfo:
        private = claims.get("kubernetes.io")
        if not isinstance(private, dict):
            raise TokenInvalid("service account token has no kubernetes.io claim")
        namespace = str(private.get("namespace") or "")
        account = private.get("serviceaccount") or {}
        name, uid = str(account.get("name") or ""), str(account.get("uid") or "")
        self._account(namespace, name, uid, now)
        extra: dict[str, tuple[str, ...]] = {}
        secret_ref = private.get("secret")
        if isinstance(secret_ref, dict):
            self._check_bound("secrets", namespace, secret_ref, now)
        pod_ref = private.get("pod")
        if isinstance(pod_ref, dict):
            self._check_bound("pods", namespace, pod_ref, now)
            extra[EXTRA_POD_NAME] = (str(pod_ref.get("name")),)
            extra[EXTRA_POD_UID] = (str(pod_ref.get("uid")),)
        node_ref = private.get("node")
        if isinstance(node_ref, dict):
            if pod_ref is None:
                self._check_bound("nodes", "", node_ref, now)
            extra[EXTRA_NODE_NAME] = (str(node_ref.get("name")),)
            extra[EXTRA_NODE_UID] = (str(node_ref.get("uid")),)
        if claims.get("jti"):
            extra[EXTRA_CREDENTIAL_ID] = (f"JTI={claims['jti']}",)
        return user_module.UserInfo(
            rbac.service_account_username(namespace, name),
            tuple(rbac.service_account_groups(namespace)),
            uid,
            extra,
        )

    def _check_bound(self, plural: str, namespace: str, ref: dict[str, Any], now: float) -> None:
        obj = self.get(plural, namespace, str(ref.get("name") or ""))
        if obj is None:
            raise TokenInvalid("service account token has been invalidated")
        md = obj.get("metadata") or {}
        if _deleted_before(md, now - LEEWAY):
            raise TokenInvalid("service account token has been invalidated")
        if md.get("uid") != ref.get("uid"):
            what = {"pods": "pod", "secrets": "secret", "nodes": "node"}[plural]
            raise TokenInvalid(
                f"{what} UID ({md.get('uid')}) does not match service account {what} ref claim "
                f"({ref.get('uid')})"
            )

    def _legacy(self, claims: dict[str, Any], token: str) -> user_module.UserInfo:
        prefix = "kubernetes.io/serviceaccount/"
        namespace = str(claims.get(prefix + "namespace") or "")
        name = str(claims.get(prefix + "service-account.name") or "")
        uid = str(claims.get(prefix + "service-account.uid") or "")
        secret_name = str(claims.get(prefix + "secret.name") or "")
        if not namespace or not name or not secret_name:
            raise TokenInvalid("service account token claims are incomplete")
        self._account(namespace, name, uid, time.time())
        secret = self.get("secrets", namespace, secret_name)
        if secret is None:
            raise TokenInvalid("service account token has been invalidated")
        stored = (secret.get("data") or {}).get("token")
        if (
            not isinstance(stored, str)
            or base64.b64decode(stored).decode(errors="replace") != token
        ):
            raise TokenInvalid("service account token does not match the data of its secret")
        return user_module.UserInfo(
            rbac.service_account_username(namespace, name),
            tuple(rbac.service_account_groups(namespace)),
            uid,
        )


def _deleted_before(md: dict[str, Any], limit: float) -> bool:
    stamp = md.get("deletionTimestamp")
    if not stamp:
        return False
    when = meta.parse_time(stamp)
    return when is not None and when < limit
