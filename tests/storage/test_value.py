"""Value transformers: upstream's byte layouts, prefixes, stale reads and refusals."""

from __future__ import annotations

import os

import nacl.secret
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pilothouse.storage import encrypt, value

KEY = bytes(range(32))
OTHER = bytes(range(1, 33))
PLAIN = b'{"kind":"Secret","data":{"k":"dg=="}}'
CONTEXT = b"/registry/secrets/default/s"


def chain(*transformers: value.PrefixTransformer) -> value.PrefixTransformers:
    return value.PrefixTransformers(list(transformers))


IDENTITY = value.PrefixTransformer(b"", value.IDENTITY, "identity")


@pytest.mark.parametrize("provider", ["aescbc", "aesgcm", "secretbox"])
def test_each_provider_round_trips_behind_its_prefix(provider: str) -> None:
    t = chain(encrypt.keyed(provider, "key1", KEY))
    stored = t.to_storage(PLAIN, CONTEXT)
    assert stored.startswith(f"k8s:enc:{provider}:v1:key1:".encode())
    assert PLAIN not in stored and b"Secret" not in stored
    assert t.from_storage(stored, CONTEXT) == (PLAIN, False)
    # A random IV or nonce: the same value never encrypts to the same bytes.
    assert t.to_storage(PLAIN, CONTEXT) != stored


def test_aescbc_is_upstreams_layout() -> None:
    body = chain(encrypt.keyed("aescbc", "k", KEY)).to_storage(PLAIN, CONTEXT)[
        len(b"k8s:enc:aescbc:v1:k:") :
    ]
    iv, ciphertext = body[:16], body[16:]
    decryptor = Cipher(algorithms.AES(KEY), modes.CBC(iv)).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    pad = padded[-1]
    assert padded[-pad:] == bytes([pad]) * pad  # PKCS#7
    assert padded[:-pad] == PLAIN


def test_aesgcm_is_upstreams_layout_and_authenticates_the_key() -> None:
    t = chain(encrypt.keyed("aesgcm", "k", KEY))
    body = t.to_storage(PLAIN, CONTEXT)[len(b"k8s:enc:aesgcm:v1:k:") :]
    assert AESGCM(KEY).decrypt(body[:12], body[12:], CONTEXT) == PLAIN
    # Copied to another key, the value no longer decrypts.
    with pytest.raises(value.TransformError, match="message authentication failed"):
        t.from_storage(t.to_storage(PLAIN, CONTEXT), b"/registry/secrets/default/other")


def test_secretbox_is_upstreams_layout() -> None:
    body = chain(encrypt.keyed("secretbox", "k", KEY)).to_storage(PLAIN, CONTEXT)[
        len(b"k8s:enc:secretbox:v1:k:") :
    ]
    assert len(body) == 24 + 16 + len(PLAIN)  # nonce, tag, ciphertext
    assert nacl.secret.SecretBox(KEY).decrypt(body) == PLAIN


@pytest.mark.parametrize("provider", ["aesgcm", "secretbox"])
def test_a_wrong_key_under_the_right_name_is_an_error_not_data(provider: str) -> None:
    stored = chain(encrypt.keyed(provider, "key1", KEY)).to_storage(PLAIN, CONTEXT)
    with pytest.raises(value.TransformError):
        chain(encrypt.keyed(provider, "key1", OTHER)).from_storage(stored, CONTEXT)


def test_first_transformer_writes_all_read_and_others_are_stale() -> None:
    old = encrypt.keyed("aescbc", "old", KEY)
    new = encrypt.keyed("aescbc", "new", OTHER)
    before = chain(old, IDENTITY)
    after = chain(new, old, IDENTITY)
    stored_old = before.to_storage(PLAIN, CONTEXT)
    assert after.from_storage(stored_old, CONTEXT) == (PLAIN, True)
    stored_new = after.to_storage(PLAIN, CONTEXT)
    assert stored_new.startswith(b"k8s:enc:aescbc:v1:new:")
    assert after.from_storage(stored_new, CONTEXT) == (PLAIN, False)
    assert after.from_storage(PLAIN, CONTEXT) == (PLAIN, True)  # plain, read by identity
    assert after.written_by_writer(stored_new) and not after.written_by_writer(stored_old)


def test_identity_first_still_reads_encrypted_data_through_later_providers() -> None:
    # The "disable encryption" layout: identity writes, aescbc still reads.
    disabled = chain(IDENTITY, encrypt.keyed("aescbc", "key1", KEY))
    stored = chain(encrypt.keyed("aescbc", "key1", KEY)).to_storage(PLAIN, CONTEXT)
    assert disabled.from_storage(stored, CONTEXT) == (PLAIN, True)
    assert disabled.to_storage(PLAIN, CONTEXT) == PLAIN
    assert disabled.written_by_writer(PLAIN) and not disabled.written_by_writer(stored)


def test_encrypted_data_without_its_key_is_refused_never_returned() -> None:
    stored = chain(encrypt.keyed("aescbc", "gone", KEY)).to_storage(PLAIN, CONTEXT)
    only_identity = chain(IDENTITY)
    with pytest.raises(value.TransformError) as info:
        only_identity.from_storage(stored, CONTEXT)
    assert "k8s:enc:aescbc:v1:gone" in str(info.value)
    assert "identity" in str(info.value)
    other_key = chain(encrypt.keyed("aescbc", "key2", KEY))
    with pytest.raises(value.TransformError, match="does not provide"):
        other_key.from_storage(stored, CONTEXT)


def test_plain_data_without_an_identity_provider_is_refused() -> None:
    with pytest.raises(value.TransformError, match="no identity provider"):
        chain(encrypt.keyed("aescbc", "k", KEY)).from_storage(PLAIN, CONTEXT)


def test_providers_sharing_a_prefix_each_get_a_chance() -> None:
    # Two secretbox providers with a key of the same name (one being rotated away):
    # the first one's failure does not hide the second one's success.
    first = encrypt.keyed("secretbox", "same", OTHER)
    second = encrypt.keyed("secretbox", "same", KEY)
    stored = chain(second).to_storage(PLAIN, CONTEXT)
    assert chain(first, second).from_storage(stored, CONTEXT) == (PLAIN, True)


def test_truncated_values_are_reported() -> None:
    t = chain(encrypt.keyed("aescbc", "k", KEY))
    with pytest.raises(value.TransformError, match="shorter than the required size"):
        t.from_storage(b"k8s:enc:aescbc:v1:k:short", CONTEXT)
    with pytest.raises(value.TransformError, match="multiple of the block size"):
        t.from_storage(b"k8s:enc:aescbc:v1:k:" + os.urandom(20), CONTEXT)


def test_value_prefix_names_provider_and_key() -> None:
    stored = chain(encrypt.keyed("secretbox", "k-1", KEY)).to_storage(PLAIN, CONTEXT)
    assert value.value_prefix(stored) == "k8s:enc:secretbox:v1:k-1"
    assert value.value_prefix(PLAIN) == ""
