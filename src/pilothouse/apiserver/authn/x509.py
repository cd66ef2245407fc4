"""Client certificates: the subject's CN is the user, each O a group (upstream's x509).

The TLS layer checks the chain to the cluster CA but not the validity period (the
server context sets OpenSSL's ``X509_V_FLAG_NO_CHECK_TIME``): a certificate that
has expired or is not valid yet still completes the handshake, and this
authenticator refuses it with a 401 as kube-apiserver does, instead of the client
seeing a TLS alert it cannot explain.

The identity is parsed once per TLS connection (a connection cannot change its
certificate, and parsing costs about 3 % of a create's CPU); the validity period
is checked on every request, since a long-lived connection can outlive it.
"""

from __future__ import annotations

import datetime
import logging
import time
import weakref
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from pilothouse.apiserver.authn import user as user_module

log = logging.getLogger(__name__)

# OpenSSL's X509_V_FLAG_NO_CHECK_TIME: verify the chain, leave the dates to us.
NO_CHECK_TIME = 0x200000


class InvalidCertificate(Exception):
    """A client certificate the CA signed that may not be used now (401)."""


class X509Authenticator:
    """Reads the verified peer certificate of a request's TLS connection."""

    def __init__(self) -> None:
        self._connections: weakref.WeakKeyDictionary[
            Any, tuple[user_module.UserInfo, float, float]
        ] = weakref.WeakKeyDictionary()

    def authenticate(self, transport: Any, now: float) -> user_module.UserInfo | None:
        """The certificate's user, None without a certificate; raises
        InvalidCertificate when it is outside its validity period."""
        if transport is None:
            return None
        found = self._connections.get(transport)
        if found is None:
            found = self._read(transport)
            if found is None:
                return None
            self._connections[transport] = found
        user, not_before, not_after = found
        if now > not_after:
            stamp = datetime.datetime.fromtimestamp(not_after, datetime.UTC)
            raise InvalidCertificate(
                f"x509: certificate has expired or is not yet valid: current time "
                f"{_go_time(now)} is after {stamp:%Y-%m-%dT%H:%M:%SZ}"
            )
        if now < not_before:
            stamp = datetime.datetime.fromtimestamp(not_before, datetime.UTC)
            raise InvalidCertificate(
                f"x509: certificate has expired or is not yet valid: current time "
                f"{_go_time(now)} is before {stamp:%Y-%m-%dT%H:%M:%SZ}"
            )
        return user

    def known(self, transport: Any) -> user_module.UserInfo | None:
        """The user of a connection already authenticated and still valid, else None
        (nothing is parsed: for the overload path, which must cost next to nothing)."""
        found = self._connections.get(transport) if transport is not None else None
        if found is None:
            return None
        user, not_before, not_after = found
        return user if not_before <= time.time() <= not_after else None

    def _read(self, transport: Any) -> tuple[user_module.UserInfo, float, float] | None:
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is None:
            return None
        der = ssl_object.getpeercert(binary_form=True)
        if not der or not ssl_object.getpeercert():
            return None  # no certificate, or one the CA did not sign
        cert = x509.load_der_x509_certificate(der)
        subject = cert.subject
        names = [str(a.value) for a in subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
        # Go keeps the last CN it reads and every O, in order.
        if not names or not names[-1]:
            return None  # upstream does not accept a certificate without a user either
        groups = tuple(
            str(a.value) for a in subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        )
        user = user_module.UserInfo(names[-1], groups)
        return (
            user,
            cert.not_valid_before_utc.timestamp(),
            cert.not_valid_after_utc.timestamp(),
        )


def _go_time(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
