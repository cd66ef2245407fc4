"""Bootstrap data: what every server of one cluster must share, kept in the datastore.

Several ``pilothouse server`` processes on one etcd serve one cluster only if they
share its secrets: the cluster CA (its certificate and key: each server signs its
own serving certificate and the nodes' certificates with it), the ServiceAccount
signing key (a token one server issued is verified by every other), and the managed
encryption configuration (a Secret one server encrypted is read by every other).
k3s keeps these as *bootstrap data* under ``/bootstrap/<hash>`` in its datastore,
encrypted with the cluster's token, so that a new server joins with only
``--token`` and the datastore's address; this module does the same:

* The key is ``/bootstrap/`` plus the first 12 hex digits of the SHA-256 of the
  token's passphrase (the secret part of ``K10<CA hash>::<id>.<secret>``, as k3s
  hashes the bare passphrase). The value is JSON holding a random salt and nonce
  and the AES-256-GCM ciphertext of the files, under a key derived from the
  passphrase with PBKDF2-HMAC-SHA256. GCM authenticates: a wrong passphrase is an
  error, never garbage.
* The first server of a cluster (no bootstrap data at all) creates the shared
  files, then *claims* the key with a create that fails if another server got
  there first; the loser throws away what it made and joins the winner. Nothing is
  written to the cluster before the claim, so no Secret is ever encrypted under a
  key that lost.
* A joining server writes the files into its data directory before it uses them.
  A data directory that already holds *another* CA or signing key belongs to
  another cluster: the server refuses to start and says so, as it does when the
  datastore holds bootstrap data under another token.
* The encryption configuration may change later (``pilothouse secrets-encrypt``);
  each file carries the time it was last changed and the newer copy wins at start.

Everything runs once, at start, before the server listens: no concurrency here
beyond other servers starting at the same moment, which the claim settles.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson
from cryptography import exceptions as crypto_exceptions
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from pilothouse.storage import interface as storage

log = logging.getLogger(__name__)

PREFIX = "/bootstrap/"
CA_CERT = "pki/ca.crt"
CA_KEY = "pki/ca.key"
SA_KEY = "pki/service-account.key"
ENCRYPTION_CONFIG = "cred/encryption-config.json"
# Files whose difference means "another cluster": refusing is the only safe answer.
IDENTITY_FILES = (CA_CERT, CA_KEY, SA_KEY)
SHARED_FILES = (*IDENTITY_FILES, ENCRYPTION_CONFIG)
KDF_ITERATIONS = 100_000  # ~40 ms here: paid once per start


class BootstrapError(Exception):
    """This server cannot join the cluster in the datastore; the message says what to do."""


def key_for(passphrase: str) -> str:
    return PREFIX + hashlib.sha256(passphrase.encode()).hexdigest()[:12]


def _cipher(passphrase: str, salt: bytes) -> AESGCM:
    kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=salt, iterations=KDF_ITERATIONS)
    return AESGCM(kdf.derive(passphrase.encode()))


@dataclass
class Files:
    """The shared files by path relative to the data dir: content and change time."""

    content: dict[str, bytes]
    updated: dict[str, float]

    @classmethod
    def read(cls, data_dir: Path, paths: tuple[str, ...] = SHARED_FILES) -> Files:
        content, updated = {}, {}
        for rel in paths:
            path = data_dir / rel
            try:
                content[rel] = path.read_bytes()
                updated[rel] = path.stat().st_mtime
            except FileNotFoundError:
                continue
        return cls(content, updated)


def seal(files: Files, passphrase: str) -> bytes:
    salt, nonce = secrets.token_bytes(16), secrets.token_bytes(12)
    plain = orjson.dumps(
        {
            rel: {"content": base64.b64encode(data).decode(), "updated": files.updated[rel]}
            for rel, data in files.content.items()
        }
    )
    sealed = _cipher(passphrase, salt).encrypt(nonce, plain, PREFIX.encode())
    return orjson.dumps(
        {
            "salt": base64.b64encode(salt).decode(),
            "nonce": base64.b64encode(nonce).decode(),
            "data": base64.b64encode(sealed).decode(),
        }
    )


def unseal(value: bytes, passphrase: str) -> Files:
    """The files in ``value``; BootstrapError when ``passphrase`` did not seal it."""
    try:
        outer = orjson.loads(value)
        salt, nonce, data = (base64.b64decode(outer[k]) for k in ("salt", "nonce", "data"))
        plain = _cipher(passphrase, salt).decrypt(nonce, data, PREFIX.encode())
        inner = orjson.loads(plain)
        return Files(
            {rel: base64.b64decode(v["content"]) for rel, v in inner.items()},
            {rel: float(v["updated"]) for rel, v in inner.items()},
        )
    except crypto_exceptions.InvalidTag:
        raise BootstrapError(
            "bootstrap data already found and encrypted with different token"
        ) from None
    except (KeyError, TypeError, ValueError, orjson.JSONDecodeError) as exc:
        raise BootstrapError(f"the bootstrap data in the datastore is damaged: {exc}") from None


def _write(path: Path, data: bytes, *, mtime: float) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.utime(tmp, (mtime, mtime))
    os.replace(tmp, path)


@dataclass
class Result:
    """What :func:`join_or_found` did: ``founded`` the cluster, or joined it."""

    founded: bool
    revision: int  # of the bootstrap key as this server left it


async def join_or_found(
    store: storage.Store,
    data_dir: Path,
    *,
    passphrase: str,
    generate: Callable[[], None],
) -> Result:
    """Make ``data_dir`` hold the cluster's shared files, founding the cluster if the
    datastore has none. ``generate`` creates whichever shared files are missing (the
    first server's CA, signing key and encryption configuration)."""
    key = key_for(passphrase)
    found = await store.get(key)
    if found is None:
        others = (await store.list(PREFIX, limit=1)).items
        if others:
            raise BootstrapError(
                "bootstrap data already found and encrypted with different token: the "
                "datastore holds a cluster whose token this is not. Pass that cluster's "
                "token with --token (it is in <data-dir>/token on any of its servers), or "
                "point --datastore-endpoint (or --datastore-prefix) at another cluster's place"
            )
        generate()
        mine = Files.read(data_dir)
        missing = [rel for rel in IDENTITY_FILES if rel not in mine.content]
        if missing:
            raise BootstrapError(f"cannot found the cluster: {', '.join(missing)} not created")
        try:
            revision = await store.create(key, seal(mine, passphrase))
        except storage.KeyExistsError as exc:
            # Another server founded the cluster at the same moment: join it instead,
            # after removing what was made here (nothing has used it yet).
            log.warning("another server founded the cluster at the same time; joining it")
            for rel in mine.content:
                (data_dir / rel).unlink(missing_ok=True)
            found = await store.get(key)
            if found is None:
                raise BootstrapError(
                    "the bootstrap data vanished while joining; start again"
                ) from exc
        else:
            log.info("founded the cluster: bootstrap data stored at %s", key)
            return Result(founded=True, revision=revision)
    theirs = unseal(found.value, passphrase)
    mine = Files.read(data_dir)
    for rel in IDENTITY_FILES:
        if (
            rel in mine.content
            and rel in theirs.content
            and mine.content[rel] != theirs.content[rel]
        ):
            raise BootstrapError(
                f"{data_dir / rel} is not the cluster's: this data directory belongs to another"
                " cluster. Start this server with an empty --data-dir to join the cluster in the"
                " datastore (or point --datastore-endpoint at this directory's own cluster)"
            )
    for rel, data in theirs.content.items():
        if mine.content.get(rel) == data:
            continue
        if rel in mine.content and mine.updated[rel] > theirs.updated[rel]:
            continue  # newer here: publish() takes it to the datastore
        _write(data_dir / rel, data, mtime=theirs.updated[rel])
        log.info("took %s from the cluster's bootstrap data", rel)
    return Result(founded=False, revision=found.mod_revision)


async def publish(store: storage.Store, data_dir: Path, *, passphrase: str) -> None:
    """Store this server's shared files where they are newer than the datastore's (the
    encryption configuration after ``secrets-encrypt``, or one a founder made late)."""
    key = key_for(passphrase)
    for _ in range(5):
        found = await store.get(key)
        if found is None:
            raise BootstrapError(f"the bootstrap data at {key} is gone; start the server again")
        theirs = unseal(found.value, passphrase)
        mine = Files.read(data_dir)
        merged = Files(dict(theirs.content), dict(theirs.updated))
        for rel, data in mine.content.items():
            if theirs.content.get(rel) != data and mine.updated[rel] > theirs.updated.get(rel, 0):
                merged.content[rel] = data
                merged.updated[rel] = mine.updated[rel]
        if merged.content == theirs.content:
            return
        try:
            await store.update(key, seal(merged, passphrase), if_revision=found.mod_revision)
            log.info("bootstrap data updated from this server's files")
            return
        except storage.RevisionMismatchError:
            continue
    raise BootstrapError("the bootstrap data kept changing under this server; start it again")


async def publish_file(store: storage.Store, *, passphrase: str, rel: str, data: bytes) -> None:
    """Put one shared file (the encryption configuration a server just changed) into the
    bootstrap data, stamped now, before that server starts using it."""
    key = key_for(passphrase)
    for _ in range(10):
        found = await store.get(key)
        if found is None:
            raise BootstrapError(f"the bootstrap data at {key} is gone; restart the servers")
        files = unseal(found.value, passphrase)
        files.content[rel] = data
        files.updated[rel] = time.time()
        try:
            await store.update(key, seal(files, passphrase), if_revision=found.mod_revision)
            return
        except storage.RevisionMismatchError:
            continue
    raise BootstrapError("the bootstrap data kept changing; try again")
