"""Bootstrap tokens: ``<id>.<secret>`` bearer tokens kept as Secrets in kube-system.

Upstream's TLS-bootstrap tokens (``bootstrap.kubernetes.io/token`` Secrets named
``bootstrap-token-<id>``). A token authenticates as ``system:bootstrap:<id>`` in
``system:bootstrappers`` plus the Secret's ``auth-extra-groups``, while the Secret
exists, is not being deleted, has ``usage-bootstrap-authentication: true`` and has
not passed its ``expiration``. Nodes join with one (the join token's last part);
``pilothouse token create`` makes more.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hmac
import logging
import re
import secrets
from collections.abc import Callable
from typing import Any

from pilothouse.apiserver.authn import user as user_module

log = logging.getLogger(__name__)

NAMESPACE = "kube-system"
SECRET_PREFIX = "bootstrap-token-"
SECRET_TYPE = "bootstrap.kubernetes.io/token"
USER_PREFIX = "system:bootstrap:"
DEFAULT_GROUP = "system:bootstrappers"
TOKEN_RE = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
_GROUP_RE = re.compile(r"^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]$")
_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"

SecretGetter = Callable[[str, str], "dict[str, Any] | None"]


def new_token() -> str:
    """A fresh ``<6>.<16>`` token (kubeadm's alphabet)."""
    pick = secrets.choice
    return (
        "".join(pick(_ALPHABET) for _ in range(6))
        + "."
        + "".join(pick(_ALPHABET) for _ in range(16))
    )


def secret_for(
    token: str,
    *,
    description: str,
    ttl_seconds: int | None,
    extra_groups: list[str],
    now: float,
) -> dict[str, Any]:
    """The Secret that makes ``token`` valid (as ``kubeadm token create`` writes it)."""
    match = TOKEN_RE.match(token)
    if match is None:
        raise ValueError(f"invalid bootstrap token {token!r}: want [a-z0-9]{{6}}.[a-z0-9]{{16}}")
    data = {
        "token-id": match.group(1),
        "token-secret": match.group(2),
        "usage-bootstrap-authentication": "true",
        "usage-bootstrap-signing": "true",
        "description": description,
    }
    if extra_groups:
        data["auth-extra-groups"] = ",".join(extra_groups)
    if ttl_seconds:
        data["expiration"] = datetime.datetime.fromtimestamp(
            now + ttl_seconds, datetime.UTC
        ).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": SECRET_PREFIX + match.group(1), "namespace": NAMESPACE},
        "type": SECRET_TYPE,
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def _data(secret: dict[str, Any], key: str) -> str:
    value = (secret.get("data") or {}).get(key)
    if not isinstance(value, str):
        return ""
    try:
        return base64.b64decode(value).decode()
    except (binascii.Error, UnicodeDecodeError):
        return ""


def expired(secret: dict[str, Any], now: float) -> bool:
    stamp = _data(secret, "expiration")
    if not stamp:
        return False
    try:
        when = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        log.info("bootstrap token secret %s has an unparseable expiration", _name(secret))
        return True
    return now > when


def _name(secret: dict[str, Any]) -> str:
    md = secret.get("metadata") or {}
    return f"{md.get('namespace')}/{md.get('name')}"


class BootstrapTokenAuthenticator:
    """Matches bearer tokens against bootstrap-token Secrets (read from the cache)."""

    def __init__(self, get_secret: SecretGetter) -> None:
        self._get_secret = get_secret

    def authenticate(self, token: str, now: float) -> user_module.UserInfo | None:
        match = TOKEN_RE.match(token)
        if match is None:
            return None  # not a bootstrap token: someone else's
        token_id, token_secret = match.group(1), match.group(2)
        secret = self._get_secret(NAMESPACE, SECRET_PREFIX + token_id)
        if secret is None:
            return None
        if (secret.get("metadata") or {}).get("deletionTimestamp"):
            return None
        if secret.get("type") != SECRET_TYPE or not secret.get("data"):
            return None
        if not hmac.compare_digest(_data(secret, "token-secret").encode(), token_secret.encode()):
            return None
        if _data(secret, "token-id") != token_id:
            return None
        if expired(secret, now):
            return None
        if _data(secret, "usage-bootstrap-authentication") != "true":
            return None
        groups = {DEFAULT_GROUP}
        extra = _data(secret, "auth-extra-groups")
        for group in extra.split(",") if extra else ():
            if not _GROUP_RE.match(group):
                log.info("bootstrap token secret %s has an invalid extra group", _name(secret))
                return None
            groups.add(group)
        return user_module.UserInfo(USER_PREFIX + token_id, tuple(sorted(groups)))
