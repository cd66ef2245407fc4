"""The server's encryption at rest: the configuration in force, and the operations
behind ``pilothouse secrets-encrypt`` (modelled on k3s), so users never edit the file.

Two ways to configure it:

* ``--encryption-provider-config FILE`` (upstream's flag): the file is the user's;
  it is read at start and never rewritten (``secrets-encrypt`` refuses to touch it).
* Otherwise pilothouse *manages* ``<data-dir>/cred/encryption-config.json`` as k3s
  does: created for a new cluster with a fresh AES-CBC key for Secrets (enabled by
  default), left absent for a data dir that already holds a cluster (its Secrets
  stay readable as they are). ``enable``/``disable`` swap identity and aescbc,
  ``rotate-keys`` puts a new key first, and each starts a re-encryption that
  rewrites every Secret under the configuration's first provider; ``rotate-keys``
  then drops the keys nothing uses any more.

The stage (``start`` → ``reencrypt_request`` → ``reencrypt_active`` →
``reencrypt_finished``) lives in ``cred/encryption-state.json``; a server that
stops mid-way resumes the re-encryption at its next start.

Concurrency: operations run on the event loop, one at a time (a lock); the
re-encryption runs as a supervised background task beside ordinary requests,
which keep being served from the watch cache. Files are replaced atomically
(write, fsync, rename), the configuration before the transformers switch to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import logging
import os
import pathlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from pilothouse import atomicfile, supervisor
from pilothouse.api import resources
from pilothouse.apiserver.encryption import config as enc_config
from pilothouse.storage import transform
from pilothouse.storage import value as values

log = logging.getLogger(__name__)

START = "start"
REENCRYPT_REQUEST = "reencrypt_request"
REENCRYPT_ACTIVE = "reencrypt_active"
REENCRYPT_FINISHED = "reencrypt_finished"
AESCBC_KEY_SIZE = 32
MANAGED_RESOURCES = ("secrets",)


class OperationError(Exception):
    """An operation that cannot run now or here; the message says why and what to do."""


@dataclass
class State:
    stage: str = START
    rewritten: int = 0
    seen: int = 0
    error: str = ""
    remove_old_keys: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "rewritten": self.rewritten,
            "seen": self.seen,
            "error": self.error,
            "removeOldKeys": self.remove_old_keys,
        }


def _write_atomically(path: pathlib.Path, data: bytes) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    atomicfile.write(path, data, mode=0o600)


def new_key(existing: set[str]) -> enc_config.Key:
    """A fresh random AES-CBC key named like k3s's (``aescbckey-<time>``), with dashes
    for the time's colons so the name never blurs into the ``k8s:enc:`` prefix."""
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H-%M-%SZ")
    name = f"aescbckey-{stamp}"
    n = 1
    while name in existing:
        n += 1
        name = f"aescbckey-{stamp}-{n}"
    return enc_config.Key(name, os.urandom(AESCBC_KEY_SIZE))


def managed_config(keys: list[enc_config.Key], *, enabled: bool) -> enc_config.EncryptionConfig:
    """k3s's layout: aescbc then identity (enabled), or identity then aescbc (disabled)."""
    aescbc = enc_config.Provider("aescbc", tuple(keys))
    identity = enc_config.Provider("identity")
    providers = (aescbc, identity) if enabled else (identity, aescbc)
    return enc_config.EncryptionConfig((enc_config.ResourceConfig(MANAGED_RESOURCES, providers),))


class Encryption:
    """Encryption at rest for one API server (see the module docstring)."""

    def __init__(
        self,
        *,
        data_dir: pathlib.Path,
        registry: resources.Registry,
        user_file: pathlib.Path | None = None,
    ) -> None:
        self.registry = registry
        self.user_file = user_file
        self.managed_file = data_dir / "cred" / "encryption-config.json"
        self.state_file = data_dir / "cred" / "encryption-state.json"
        self.config: enc_config.EncryptionConfig | None = None
        self.config_hash = ""
        self.state = State()
        self._store: transform.TransformingStore | None = None
        self._lock = asyncio.Lock()
        self._jobs = supervisor.Supervisor("encryption")
        self._job: asyncio.Task[None] | None = None
        # Several servers: hand a new configuration to the others before using it
        # (the server sets it to store the file in the cluster's bootstrap data).
        self.publish: Callable[[bytes], Awaitable[None]] | None = None

    # -- start-up ----------------------------------------------------------------

    @property
    def managed(self) -> bool:
        return self.user_file is None

    @property
    def path(self) -> pathlib.Path:
        return self.user_file if self.user_file is not None else self.managed_file

    def load(self) -> dict[str, values.PrefixTransformers]:
        """Read the configuration in force at start (raises ConfigError). A managed
        file that does not exist yet means no encryption (see :meth:`attach`)."""
        path = self.path
        if self.managed and not path.exists():
            self.config = None
            return {}
        self.config = enc_config.load(path)
        self.config_hash = hashlib.sha256(path.read_bytes()).hexdigest()
        if self.managed:
            self.state = self._read_state()
        return self.config.transformers(self.registry)

    async def attach(self, store: transform.TransformingStore, *, new_cluster: bool) -> None:
        """Called once the store is open: encrypt a new cluster's Secrets by default, and
        resume a re-encryption a previous run did not finish."""
        self._store = store
        if not self.managed:
            return
        if self.config is None and new_cluster:
            self.create_for_new_cluster()
        if self.state.stage in (REENCRYPT_REQUEST, REENCRYPT_ACTIVE):
            log.info("resuming the re-encryption of Secrets a previous run left unfinished")
            self._start_job(remove_old_keys=self.state.remove_old_keys)

    def create_for_new_cluster(self) -> None:
        """Write the managed configuration a new cluster starts with (Secrets under a fresh
        AES-CBC key); the first server on a shared datastore does it before it publishes
        the cluster's bootstrap data, so every server encrypts alike from the first write."""
        if not self.managed or self.managed_file.exists():
            return
        self._install(managed_config([new_key(set())], enabled=True))
        self.state = State(stage=START)
        self._save_state()
        log.info("secrets encryption enabled for the new cluster (%s)", self.managed_file)

    def explain(self, exc: values.TransformError) -> str:
        """What to tell the user when stored data cannot be read at start."""
        where = f"the encryption configuration {self.path}"
        if self.managed and not self.managed_file.exists():
            where = f"no encryption configuration ({self.managed_file} is missing)"
        return (
            f"{exc.key} cannot be read: {exc.reason}. The server was started with {where},"
            " which lacks the key that encrypted this data, or the key is corrupt. Restore"
            f" the configuration file from a backup (or pass --encryption-provider-config FILE"
            " with the right keys) and start again; encrypted data is never served as if it"
            " were plain"
        )

    async def stop(self) -> None:
        await self._jobs.stop()

    # -- status ------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """k3s's EncryptionState, plus the re-encryption's progress."""
        out: dict[str, Any] = {"stage": self.state.stage, "activekey": "", "managed": self.managed}
        if self.managed and not self.managed_file.exists():
            out["stage"] = ""
            return out  # k3s: "Disabled, no configuration file found"
        providers = self._secret_providers()
        if providers:
            first = providers[0]
            out["enable"] = first.kind != "identity"
            out["activekey"] = first.keys[0].name if first.keys else ""
            out["activetype"] = _key_type(first.kind) if first.keys else ""
            out["inactivekeys"] = [
                {"name": k.name, "type": _key_type(p.kind)}
                for i, p in enumerate(providers)
                for j, k in enumerate(p.keys)
                if (i, j) != (0, 0)
            ]
        on_disk = self._disk_hash()
        out["hashmatch"] = on_disk == self.config_hash
        if not out["hashmatch"]:
            out["hasherror"] = (
                f"{self.path} changed on disk since the server loaded it; restart the server"
                " to use the file as it is now"
                if on_disk
                else f"{self.path} is missing"
            )
        out["reencrypted"] = self.state.rewritten
        out["secrets"] = self.state.seen
        if self.state.error:
            out["error"] = self.state.error
        return out

    def _secret_providers(self) -> tuple[enc_config.Provider, ...]:
        if self.config is None:
            return ()
        return self.config.providers_for("", "secrets") or ()

    def _disk_hash(self) -> str:
        try:
            return hashlib.sha256(self.path.read_bytes()).hexdigest()
        except OSError:
            return ""

    # -- operations --------------------------------------------------------------

    async def enable(self, on: bool) -> str:
        async with self._lock:
            self._check_managed()
            self._check_idle()
            keys = self._managed_keys()
            providers = self._secret_providers()
            currently = bool(providers) and providers[0].kind != "identity"
            if currently == on and self.config is not None:
                return f"secrets-encryption already {'enabled' if on else 'disabled'}"
            if not keys:
                keys = [new_key(set())]
            await self._install_shared(managed_config(keys, enabled=on))
            log.info(
                "secrets encryption %s; re-encrypting Secrets", "enabled" if on else "disabled"
            )
            self._start_job(remove_old_keys=False)
            return f"secrets-encryption {'enabled' if on else 'disabled'}"

    async def rotate_keys(self) -> str:
        async with self._lock:
            self._check_managed()
            self._check_idle()
            keys = self._managed_keys()
            if (
                self.config is None
                or not self._secret_providers()
                or (self._secret_providers()[0].kind == "identity")
            ):
                raise OperationError(
                    "secrets encryption is disabled; enable it first"
                    " (pilothouse secrets-encrypt enable)"
                )
            fresh = new_key({k.name for k in keys})
            await self._install_shared(managed_config([fresh, *keys], enabled=True))
            log.info("added and activated secrets-encryption key %s; re-encrypting", fresh.name)
            self._start_job(remove_old_keys=True)
            return "keys rotated, reencryption started"

    async def reencrypt(self, *, skip: bool = False) -> str:
        async with self._lock:
            self._check_managed()
            self._check_idle()
            if self.config is None:
                raise OperationError(
                    "secrets encryption is not configured; enable it first"
                    " (pilothouse secrets-encrypt enable)"
                )
            self._start_job(remove_old_keys=not skip)
            return "reencryption started"

    async def wait(self) -> None:
        """Until the running re-encryption (if any) ends."""
        job = self._job
        if job is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(job)

    def _check_managed(self) -> None:
        if not self.managed:
            raise OperationError(
                f"this server reads its encryption configuration from {self.user_file}"
                " (--encryption-provider-config); edit that file and restart the server,"
                " or start without the flag to let pilothouse manage the keys"
            )

    def _check_idle(self) -> None:
        if self.state.stage == REENCRYPT_ACTIVE or (self._job is not None and not self._job.done()):
            raise OperationError(
                f"incorrect stage: {REENCRYPT_ACTIVE}; a re-encryption is running, see"
                " `pilothouse secrets-encrypt status` and try again when it has finished"
            )

    def _managed_keys(self) -> list[enc_config.Key]:
        keys: list[enc_config.Key] = []
        for p in self._secret_providers():
            if p.kind == "aescbc":
                keys.extend(p.keys)
            elif p.kind != "identity":
                raise OperationError(
                    f"{self.managed_file} holds {p.kind} keys, which secrets-encrypt does not"
                    " manage (it manages aescbc keys only)"
                )
        return keys

    async def _install_shared(self, config: enc_config.EncryptionConfig) -> None:
        """Install ``config``, the other servers first: from the switch on, this server
        writes what only the new configuration reads."""
        if self.publish is not None:
            await self.publish(orjson.dumps(enc_config.dump(config), option=orjson.OPT_INDENT_2))
        self._install(config)

    def adopt(self, data: bytes) -> bool:
        """Another server changed the cluster's configuration: use ``data`` from now on.
        False when it is the one in force already (or cannot be used here)."""
        if not self.managed or hashlib.sha256(data).hexdigest() == self.config_hash:
            return False
        try:
            config = enc_config.parse(orjson.loads(data))
        except (enc_config.ConfigError, orjson.JSONDecodeError) as exc:
            log.error("the cluster's encryption configuration cannot be used: %s", exc)
            return False
        _write_atomically(self.managed_file, data)
        self.config = config
        self.config_hash = hashlib.sha256(data).hexdigest()
        if self._store is not None:
            self._store.set_transformers(config.transformers(self.registry))
        log.info("took the cluster's new encryption configuration (%s)", self.managed_file)
        return True

    def _install(self, config: enc_config.EncryptionConfig) -> None:
        """Write the managed file, then switch the store's transformers to it."""
        data = orjson.dumps(enc_config.dump(config), option=orjson.OPT_INDENT_2)
        _write_atomically(self.managed_file, data)
        self.config = config
        self.config_hash = hashlib.sha256(data).hexdigest()
        if self._store is not None:
            self._store.set_transformers(config.transformers(self.registry))

    def _read_state(self) -> State:
        try:
            raw = orjson.loads(self.state_file.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return State()
        return State(
            stage=str(raw.get("stage") or START),
            rewritten=int(raw.get("rewritten") or 0),
            seen=int(raw.get("seen") or 0),
            error=str(raw.get("error") or ""),
            remove_old_keys=bool(raw.get("removeOldKeys")),
        )

    def _save_state(self) -> None:
        _write_atomically(
            self.state_file, orjson.dumps(self.state.to_json(), option=orjson.OPT_INDENT_2)
        )

    # -- re-encryption -----------------------------------------------------------

    def _start_job(self, *, remove_old_keys: bool) -> None:
        self.state = State(stage=REENCRYPT_REQUEST, remove_old_keys=remove_old_keys)
        self._save_state()
        self._job = self._jobs.spawn(self._reencrypt(remove_old_keys), name="reencrypt")

    async def _reencrypt(self, remove_old_keys: bool) -> None:
        store = self._store
        assert store is not None
        self.state.stage = REENCRYPT_ACTIVE
        self._save_state()
        try:
            # Writes that began before the switch still carry the old encoding.
            await store.drain_writes()
            prefixes = sorted(store.transformers)
            for prefix in prefixes:
                rewritten, seen = await store.rewrite_stale(prefix, progress=self._progress)
                log.info("re-encrypted %d of %d values under %s", rewritten, seen, prefix)
        except Exception as exc:
            self.state.stage = REENCRYPT_REQUEST
            self.state.error = (
                f"re-encryption failed: {exc}; run `pilothouse secrets-encrypt reencrypt` to retry"
            )
            self._save_state()
            log.error("%s", self.state.error)
            raise
        async with self._lock:
            if remove_old_keys:
                await self._drop_inactive_keys()
            self.state.stage = REENCRYPT_FINISHED
            self.state.error = ""
            self._save_state()
        log.info("completed reencrypt of %d secrets", self.state.rewritten)

    def _progress(self, rewritten: int, seen: int) -> None:
        self.state.rewritten = rewritten
        self.state.seen = seen

    async def _drop_inactive_keys(self) -> None:
        providers = self._secret_providers()
        if not providers or providers[0].kind != "aescbc" or len(providers[0].keys) < 2:
            return
        active = providers[0].keys[0]
        dropped = [k.name for k in providers[0].keys[1:]]
        await self._install_shared(managed_config([active], enabled=True))
        log.info("removed secrets-encryption keys no longer in use: %s", ", ".join(dropped))


def _key_type(kind: str) -> str:
    return {"aescbc": "AES-CBC", "aesgcm": "AES-GCM", "secretbox": "XSalsa20-Poly1305"}.get(
        kind, kind
    )
