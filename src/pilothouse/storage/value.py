"""Value transformers: what a stored value becomes on its way to and from the store.

Upstream's ``storage/value`` package, in Python: a :class:`Transformer` turns the
bytes the API server encodes into the bytes the store keeps (encryption at rest)
and back. :class:`PrefixTransformers` chooses among several by the prefix the
stored bytes start with (``k8s:enc:aescbc:v1:key1:``…): the first one writes,
every one reads, and a read by any but the first is *stale* (the value should be
rewritten under the first). The identity transformer has the empty prefix and
refuses bytes that start with ``k8s:enc:``, so data that is encrypted is never
handed out as if it were plain.

The *context* of a value is its store key: AES-GCM authenticates it, so a
ciphertext copied to another key does not decrypt.

Everything here is pure computation (no I/O, no await); the cipher objects are
immutable, so transformers are shared freely between concurrent requests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from pilothouse.storage.interface import StoreError

ENCRYPTED_PREFIX = b"k8s:enc:"


class TransformError(StoreError):
    """A stored value could not be transformed (wrong or missing key, corrupt data)."""

    def __init__(self, message: str, *, key: str = "") -> None:
        super().__init__(f"{key}: {message}" if key else message)
        self.reason = message
        self.key = key


class Transformer(Protocol):
    """Turns plain bytes into stored bytes and back; ``context`` is the store key."""

    def from_storage(self, data: bytes, context: bytes) -> tuple[bytes, bool]:
        """(plain bytes, stale): stale means the value should be rewritten."""

    def to_storage(self, data: bytes, context: bytes) -> bytes: ...


class Identity:
    """Stores values as they are; reading encrypted bytes is an error, as upstream's
    ``identity`` provider does, so a ciphertext is never taken for data."""

    name = "identity"

    def from_storage(self, data: bytes, context: bytes) -> tuple[bytes, bool]:
        if data.startswith(ENCRYPTED_PREFIX):
            raise TransformError("identity transformer tried to read encrypted data")
        return data, False

    def to_storage(self, data: bytes, context: bytes) -> bytes:
        return data


IDENTITY = Identity()


@dataclass(frozen=True, slots=True)
class PrefixTransformer:
    """A transformer and the prefix its stored values start with (empty for identity)."""

    prefix: bytes
    transformer: Transformer
    # What a status report calls it: "identity", "aescbc key1", …
    description: str = ""


class PrefixTransformers:
    """Reads with the first transformer whose prefix the value starts with, writes with
    the first transformer (prefix included). A failure of one matching transformer
    does not stop the others from being tried: two aescbc providers share a prefix
    while keys rotate."""

    def __init__(self, transformers: Sequence[PrefixTransformer]) -> None:
        if not transformers:
            raise ValueError("PrefixTransformers needs at least one transformer")
        self.transformers = tuple(transformers)
        self.writer = self.transformers[0]

    def from_storage(self, data: bytes, context: bytes) -> tuple[bytes, bool]:
        errors: list[str] = []
        for i, candidate in enumerate(self.transformers):
            prefix = candidate.prefix
            if not data.startswith(prefix):
                continue
            try:
                plain, stale = candidate.transformer.from_storage(data[len(prefix) :], context)
            except TransformError as exc:
                if prefix:  # identity declining encrypted data is not worth reporting
                    errors.append(exc.reason)
                continue
            return plain, stale or i != 0
        if errors:
            raise TransformError("; ".join(dict.fromkeys(errors)))
        raise TransformError(_no_match(data, self.transformers))

    def to_storage(self, data: bytes, context: bytes) -> bytes:
        writer = self.writer
        return writer.prefix + writer.transformer.to_storage(data, context)

    def written_by_writer(self, data: bytes) -> bool:
        """Whether stored ``data`` carries the writer's prefix (identity: no prefix)."""
        if self.writer.prefix:
            return data.startswith(self.writer.prefix)
        return not data.startswith(ENCRYPTED_PREFIX)


def value_prefix(data: bytes) -> str:
    """``k8s:enc:aescbc:v1:key1`` for an encrypted value, "" for a plain one."""
    if not data.startswith(ENCRYPTED_PREFIX):
        return ""
    parts = data.split(b":", 5)
    if len(parts) < 6:
        return data[: len(ENCRYPTED_PREFIX)].decode()
    return b":".join(parts[:5]).decode(errors="replace")


def _no_match(data: bytes, transformers: Sequence[PrefixTransformer]) -> str:
    found = value_prefix(data)
    known = ", ".join(t.description or t.prefix.decode(errors="replace") for t in transformers)
    if found:
        return (
            f"the value is encrypted with {found}, which the encryption configuration"
            f" does not provide (it has: {known})"
        )
    return (
        "the value is stored unencrypted, but the encryption configuration has no"
        f" identity provider to read it (it has: {known})"
    )
