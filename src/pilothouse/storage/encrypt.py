"""The encryption providers of upstream's EncryptionConfiguration, byte for byte.

Stored layouts (after the ``k8s:enc:<provider>:v1:<key name>:`` prefix), as
kube-apiserver writes them, so a datastore moves between the two:

* ``aescbc``: a random 16-byte IV, then AES-CBC with PKCS#7 padding.
* ``aesgcm``: a random 12-byte nonce, then AES-GCM ciphertext and tag; the store
  key is the authenticated data.
* ``secretbox``: a random 24-byte nonce, then NaCl secretbox (XSalsa20-Poly1305;
  tag first).

AES comes from ``cryptography``; it has no XSalsa20, so secretbox comes from
PyNaCl (libsodium, kept by the same PyCA maintainers), imported only when a
secretbox key is configured.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM as _AESGCM

from pilothouse.storage.value import PrefixTransformer, Transformer, TransformError

AES_KEY_SIZES = (16, 24, 32)
SECRETBOX_KEY_SIZES = (32,)
_BLOCK = 16
_GCM_NONCE = 12
_SECRETBOX_NONCE = 24
_SECRETBOX_TAG = 16


def prefix(provider: str, key_name: str) -> bytes:
    return f"k8s:enc:{provider}:v1:{key_name}:".encode()


class AESCBC:
    """AES-CBC with a random IV and PKCS#7 padding (upstream's ``aescbc``)."""

    def __init__(self, key: bytes) -> None:
        self._algorithm = algorithms.AES(key)

    def to_storage(self, data: bytes, context: bytes) -> bytes:
        iv = os.urandom(_BLOCK)
        pad = _BLOCK - len(data) % _BLOCK
        encryptor = Cipher(self._algorithm, modes.CBC(iv)).encryptor()
        return iv + encryptor.update(data + bytes((pad,)) * pad) + encryptor.finalize()

    def from_storage(self, data: bytes, context: bytes) -> tuple[bytes, bool]:
        if len(data) < _BLOCK:
            raise TransformError("the stored data was shorter than the required size")
        body = data[_BLOCK:]
        if len(body) % _BLOCK:
            raise TransformError("the stored data is not a multiple of the block size")
        decryptor = Cipher(self._algorithm, modes.CBC(data[:_BLOCK])).decryptor()
        plain = decryptor.update(body) + decryptor.finalize()
        pad = plain[-1] if plain else 0
        if pad == 0 or pad > len(plain) or pad > _BLOCK:
            raise TransformError("invalid PKCS7 data (empty or not padded)")
        if plain[-pad:] != bytes((pad,)) * pad:
            raise TransformError("invalid padding on input")
        return plain[:-pad], False


class AESGCM:
    """AES-GCM with a random 96-bit nonce, authenticating the store key (``aesgcm``)."""

    def __init__(self, key: bytes) -> None:
        self._aead = _AESGCM(key)

    def to_storage(self, data: bytes, context: bytes) -> bytes:
        nonce = os.urandom(_GCM_NONCE)
        return nonce + self._aead.encrypt(nonce, data, context)

    def from_storage(self, data: bytes, context: bytes) -> tuple[bytes, bool]:
        if len(data) < _GCM_NONCE:
            raise TransformError("the stored data was shorter than the required size")
        try:
            return self._aead.decrypt(data[:_GCM_NONCE], data[_GCM_NONCE:], context), False
        except InvalidTag:
            raise TransformError("cipher: message authentication failed") from None


class Secretbox:
    """NaCl secretbox with a random 24-byte nonce (upstream's ``secretbox``)."""

    def __init__(self, key: bytes) -> None:
        import nacl.secret  # only secretbox users load libsodium

        self._box: Any = nacl.secret.SecretBox(key)

    def to_storage(self, data: bytes, context: bytes) -> bytes:
        return bytes(self._box.encrypt(data, os.urandom(_SECRETBOX_NONCE)))

    def from_storage(self, data: bytes, context: bytes) -> tuple[bytes, bool]:
        import nacl.exceptions

        if len(data) < _SECRETBOX_NONCE + _SECRETBOX_TAG:
            raise TransformError("the stored data was shorter than the required size")
        try:
            return bytes(self._box.decrypt(data)), False
        except nacl.exceptions.CryptoError:
            # Upstream's wording for a failed open (wrong key or tampered data).
            raise TransformError("output array was not large enough for encryption") from None


PROVIDERS: dict[str, Callable[[bytes], Transformer]] = {
    "aescbc": AESCBC,
    "aesgcm": AESGCM,
    "secretbox": Secretbox,
}


def keyed(provider: str, name: str, secret: bytes) -> PrefixTransformer:
    """The transformer for one key of an ``aescbc``, ``aesgcm`` or ``secretbox`` provider."""
    return PrefixTransformer(
        prefix(provider, name), PROVIDERS[provider](secret), f"{provider} {name}"
    )
