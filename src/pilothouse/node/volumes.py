"""Pod volumes on this node: emptyDir, hostPath, configMap, secret, downwardAPI,
projected, and claims (persistentVolumeClaim, ephemeral).

Each pod gets ``<pods dir>/<uid>/volumes/<name>``. ConfigMap, Secret,
downward-API and projected volumes are written the way upstream's AtomicWriter
writes them: files live in a timestamped directory, ``..data`` is a symlink to
it, and each visible name is a symlink through ``..data`` — so an update swaps
one symlink and readers never see half of it. Secrets live on tmpfs (never on
disk). ``refresh`` rewrites content-backed volumes when their sources change.

A claim's volume is used where it lives (a ``local`` or ``hostPath`` PersistentVolume,
see :mod:`.claim_volumes`): nothing of it is under the pod's directory, so removing
a pod's directory can never touch its data. It is resolved once per pod; emptyDir and
local volumes are given to the pod's ``fsGroup`` then (:mod:`.volume_ownership`).
Subpaths are opened safely (:mod:`.subpath`).

``prepare`` blocks (files, mounts, ownership): the pod worker runs it in a thread.
Different pods' volumes are prepared concurrently; one pod's never are.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import shutil
import stat
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pilothouse.api import quantity
from pilothouse.node import claim_volumes, subpath, volume_ownership
from pilothouse.node.containers import ConfigError, Lookups, _field_ref, _resource_ref
from pilothouse.node.runtime import protocol

log = logging.getLogger(__name__)

Obj = dict[str, Any]
DEFAULT_MODE = 0o644


@dataclass
class PreparedVolume:
    name: str
    path: Path
    readonly: bool = False
    tmpfs: bool = False


def _mount_tmpfs(path: Path, size_limit: str | None = None) -> None:
    options = "mode=0755"
    if size_limit:
        options += f",size={quantity.to_int(quantity.parse_quantity(size_limit))}"
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=True, capture_output=True
    )


def _is_mount(path: Path) -> bool:
    return os.path.ismount(path)


def _write_atomic(target: Path, files: dict[str, tuple[bytes, int]]) -> None:
    """Write ``files`` (relative path → (content, mode)) as upstream's AtomicWriter does."""
    target.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.") + f"{time.time_ns() % 10**9:09d}"
    version = target / stamp
    version.mkdir()
    for rel, (content, mode) in files.items():
        dest = version / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(content)
        os.chmod(dest, mode)
    tmp_link = target / "..data_tmp"
    with contextlib.suppress(FileNotFoundError):
        tmp_link.unlink()
    os.symlink(stamp, tmp_link)
    old = os.readlink(target / "..data") if (target / "..data").is_symlink() else None
    os.replace(tmp_link, target / "..data")
    # Visible names: top-level entries link through ..data.
    tops = {rel.split("/", 1)[0] for rel in files}
    for top in tops:
        link = target / top
        if not link.is_symlink():
            if link.exists():
                shutil.rmtree(link) if link.is_dir() else link.unlink()
            os.symlink(f"..data/{top}", link)
    for entry in target.iterdir():
        if entry.is_symlink() and not entry.name.startswith("..") and entry.name not in tops:
            entry.unlink()
    if old and old != stamp:
        shutil.rmtree(target / old, ignore_errors=True)


def _items(
    data: dict[str, bytes], items: list[Obj] | None, default_mode: int, *, optional: bool, what: str
) -> dict[str, tuple[bytes, int]]:
    out: dict[str, tuple[bytes, int]] = {}
    if items:
        for item in items:
            key = item.get("key", "")
            if key not in data:
                if optional:
                    continue
                raise ConfigError(
                    f"configmap references non-existent config key: {key}"
                    if what == "configmap"
                    else f"references non-existent secret key: {key}"
                )
            out[str(item.get("path") or key)] = (data[key], int(item.get("mode", default_mode)))
    else:
        for key, value in data.items():
            out[key] = (value, default_mode)
    return out


def token_key(projection: Obj) -> tuple[str, int]:
    """How Lookups.tokens files a ``serviceAccountToken`` projection's token."""
    return str(projection.get("audience") or ""), int(projection.get("expirationSeconds") or 3600)


def _configmap_data(obj: Obj) -> dict[str, bytes]:
    data = {k: str(v).encode() for k, v in (obj.get("data") or {}).items()}
    data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    return data


def _secret_data(obj: Obj) -> dict[str, bytes]:
    return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}


class VolumeManager:
    """Prepares and tears down the volumes of pods on this node."""

    def __init__(
        self,
        pods_dir: Path,
        *,
        node_allocatable: dict[str, str] | None = None,
        memory_backed_secrets: bool = True,
        local_ready: Callable[[Path], None] | None = None,
    ) -> None:
        self.pods_dir = pods_dir
        self.node_allocatable = node_allocatable or {}
        self.memory_backed_secrets = memory_backed_secrets
        # Makes a local volume usable before a container gets it (the local-path
        # provisioner mounts an image again after a reboot).
        self.local_ready = local_ready
        # Volumes already set up, by pod uid: claims resolved, ownership given.
        self._set_up: dict[str, dict[str, PreparedVolume]] = {}

    def pod_dir(self, uid: str) -> Path:
        return self.pods_dir / uid

    def claims_to_look_up(self, pod: Obj) -> list[str]:
        """The claims of the pod's volumes not set up yet (the agent fetches them)."""
        done = self._set_up.get(pod["metadata"]["uid"], {})
        return [
            claim_volumes.claim_for(pod, vol)[0]
            for vol in (pod.get("spec") or {}).get("volumes") or []
            if ("persistentVolumeClaim" in vol or "ephemeral" in vol) and vol["name"] not in done
        ]

    def prepare(self, pod: Obj, lookups: Lookups) -> dict[str, PreparedVolume]:
        """Create every volume of ``pod``; raises ConfigError for missing sources (and its
        VolumeNotReady for claims that cannot be used yet)."""
        uid = pod["metadata"]["uid"]
        base = self.pod_dir(uid) / "volumes"
        base.mkdir(parents=True, exist_ok=True)
        done = self._set_up.setdefault(uid, {})
        spec = pod.get("spec") or {}
        security = spec.get("securityContext") or {}
        fs_group = security.get("fsGroup")
        policy = str(security.get("fsGroupChangePolicy") or "Always")
        out: dict[str, PreparedVolume] = {}
        for vol in spec.get("volumes") or []:
            name = vol["name"]
            path = base / name
            if name in done:
                out[name] = done[name]
            elif "persistentVolumeClaim" in vol or "ephemeral" in vol:
                out[name] = done[name] = self._claim_volume(pod, vol, lookups, fs_group, policy)
            elif "hostPath" in vol:
                out[name] = PreparedVolume(name, self._host_path(vol["hostPath"]))
            elif "emptyDir" in vol:
                created = not path.exists()
                path.mkdir(parents=True, exist_ok=True)
                empty_dir = vol.get("emptyDir") or {}
                tmpfs = empty_dir.get("medium") == "Memory"
                if tmpfs and not _is_mount(path):
                    _mount_tmpfs(path, empty_dir.get("sizeLimit"))
                    created = True
                if created:
                    path.chmod(0o777)
                if fs_group is not None:
                    volume_ownership.set_volume_ownership(path, int(fs_group))
                out[name] = done[name] = PreparedVolume(name, path, tmpfs=tmpfs)
            elif any(k in vol for k in ("configMap", "secret", "downwardAPI", "projected")):
                files, is_secret = self._content(pod, vol, lookups)
                if is_secret and self.memory_backed_secrets:
                    path.mkdir(parents=True, exist_ok=True)
                    if not _is_mount(path):
                        _mount_tmpfs(path)
                _write_atomic(path, files)
                out[name] = PreparedVolume(
                    name, path, readonly=True, tmpfs=is_secret and self.memory_backed_secrets
                )
            else:
                # Volume types this node cannot provide (cloud disks…) are refused clearly.
                kinds = [k for k in vol if k != "name"]
                raise ConfigError(
                    f"volume {name!r}: unsupported volume type {', '.join(kinds) or '?'}"
                )
        return out

    def _claim_volume(
        self, pod: Obj, vol: Obj, lookups: Lookups, fs_group: Any, policy: str
    ) -> PreparedVolume:
        pv = claim_volumes.bound_volume(pod, vol, lookups)
        path, owned = claim_volumes.host_path_of(
            pv, check_host_path=self._host_path, local_ready=self.local_ready
        )
        _, readonly = claim_volumes.claim_for(pod, vol)
        if fs_group is not None and owned and not readonly:
            started = time.monotonic()
            walked = volume_ownership.set_volume_ownership(path, int(fs_group), policy=policy)
            if walked and time.monotonic() - started > 1.0:
                log.info(
                    "setting fsGroup %s on volume %s of pod %s/%s took %.1fs "
                    "(fsGroupChangePolicy: OnRootMismatch avoids it)",
                    fs_group,
                    vol["name"],
                    pod["metadata"].get("namespace"),
                    pod["metadata"].get("name"),
                    time.monotonic() - started,
                )
        return PreparedVolume(vol["name"], path, readonly=readonly)

    def refresh(self, pod: Obj, lookups: Lookups) -> None:
        """Rewrite configMap/secret/downwardAPI/projected volumes with current data."""
        base = self.pod_dir(pod["metadata"]["uid"]) / "volumes"
        for vol in (pod.get("spec") or {}).get("volumes") or []:
            if any(k in vol for k in ("configMap", "secret", "downwardAPI", "projected")):
                with contextlib.suppress(ConfigError):
                    files, _ = self._content(pod, vol, lookups)
                    _write_atomic(base / vol["name"], files)

    def _host_path(self, spec: Obj) -> Path:
        path = Path(spec.get("path", ""))
        kind = spec.get("type", "")
        if kind == "DirectoryOrCreate":
            path.mkdir(parents=True, exist_ok=True, mode=0o755)
        elif kind == "FileOrCreate":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o644, exist_ok=True)
        checks = {
            "Directory": (stat.S_ISDIR, "is not a directory"),
            "File": (stat.S_ISREG, "is not a file"),
            "Socket": (stat.S_ISSOCK, "is not a socket file"),
            "CharDevice": (stat.S_ISCHR, "is not a character device"),
            "BlockDevice": (stat.S_ISBLK, "is not a block device"),
        }
        if kind in checks:
            test, message = checks[kind]
            try:
                mode = path.stat().st_mode
            except FileNotFoundError:
                raise ConfigError(f"hostPath type check failed: {path} {message}") from None
            if not test(mode):
                raise ConfigError(f"hostPath type check failed: {path} {message}")
        return path

    def _content(
        self, pod: Obj, vol: Obj, lookups: Lookups
    ) -> tuple[dict[str, tuple[bytes, int]], bool]:
        if "configMap" in vol:
            src = vol["configMap"]
            obj = lookups.configmaps.get(src.get("name", ""))
            mode = int(src.get("defaultMode", DEFAULT_MODE))
            if obj is None:
                if src.get("optional"):
                    return {}, False
                raise ConfigError(f'configmap "{src.get("name")}" not found')
            return _items(
                _configmap_data(obj),
                src.get("items"),
                mode,
                optional=bool(src.get("optional")),
                what="configmap",
            ), False
        if "secret" in vol:
            src = vol["secret"]
            obj = lookups.secrets.get(src.get("secretName", ""))
            mode = int(src.get("defaultMode", DEFAULT_MODE))
            if obj is None:
                if src.get("optional"):
                    return {}, True
                raise ConfigError(f'secret "{src.get("secretName")}" not found')
            return _items(
                _secret_data(obj),
                src.get("items"),
                mode,
                optional=bool(src.get("optional")),
                what="secret",
            ), True
        if "downwardAPI" in vol:
            src = vol["downwardAPI"]
            return self._downward(
                pod, src.get("items") or [], int(src.get("defaultMode", DEFAULT_MODE))
            ), False
        src = vol["projected"]
        mode = int(src.get("defaultMode", DEFAULT_MODE))
        files: dict[str, tuple[bytes, int]] = {}
        secret = False
        for source in src.get("sources") or []:
            if "configMap" in source:
                cm = source["configMap"]
                obj = lookups.configmaps.get(cm.get("name", ""))
                if obj is None:
                    if cm.get("optional"):
                        continue
                    raise ConfigError(f'configmap "{cm.get("name")}" not found')
                files.update(
                    _items(
                        _configmap_data(obj),
                        cm.get("items"),
                        mode,
                        optional=bool(cm.get("optional")),
                        what="configmap",
                    )
                )
            elif "secret" in source:
                sec = source["secret"]
                secret = True
                obj = lookups.secrets.get(sec.get("name", ""))
                if obj is None:
                    if sec.get("optional"):
                        continue
                    raise ConfigError(f'secret "{sec.get("name")}" not found')
                files.update(
                    _items(
                        _secret_data(obj),
                        sec.get("items"),
                        mode,
                        optional=bool(sec.get("optional")),
                        what="secret",
                    )
                )
            elif "downwardAPI" in source:
                files.update(self._downward(pod, source["downwardAPI"].get("items") or [], mode))
            elif "serviceAccountToken" in source:
                projection = source["serviceAccountToken"]
                token = lookups.tokens.get(token_key(projection))
                if not isinstance(token, str):
                    raise ConfigError(f"failed to fetch token: {token or 'no token requested'}")
                secret = True
                files[projection.get("path", "token")] = (token.encode(), mode)
        return files, secret

    def _downward(self, pod: Obj, items: list[Obj], mode: int) -> dict[str, tuple[bytes, int]]:
        out: dict[str, tuple[bytes, int]] = {}
        containers = {c["name"]: c for c in (pod.get("spec") or {}).get("containers") or []}
        for item in items:
            path = item.get("path", "")
            if "fieldRef" in item:
                field = item["fieldRef"].get("fieldPath", "")
                md = pod.get("metadata") or {}
                if field in ("metadata.labels", "metadata.annotations"):
                    values = md.get(field.split(".")[1]) or {}
                    text = "\n".join(f'{k}="{v}"' for k, v in sorted(values.items()))
                else:
                    text = _field_ref(pod, field)
            elif "resourceFieldRef" in item:
                ref = item["resourceFieldRef"]
                container = containers.get(ref.get("containerName", ""), {})
                text = _resource_ref(container, ref, self.node_allocatable)
            else:
                continue
            out[path] = (text.encode(), int(item.get("mode", mode)))
        return out

    def mounts_for(
        self, pod: Obj, container: Obj, prepared: dict[str, PreparedVolume]
    ) -> list[protocol.Mount]:
        """The container's volume mounts (subpaths bind-mounted under the pod's directory)."""
        out = []
        subpaths = self.pod_dir(pod["metadata"]["uid"]) / "volume-subpaths"
        for index, vm in enumerate(container.get("volumeMounts") or []):
            vol = prepared.get(vm["name"])
            if vol is None:
                raise ConfigError(f"volume {vm['name']!r} not found")
            host = str(vol.path)
            sub_file = False
            if vm.get("subPath"):
                target = subpaths / vm["name"] / container["name"] / str(index)
                try:
                    sub_file = subpath.bind(vol.path, vm["subPath"], target)
                except subpath.SubPathError as exc:
                    # The details stay in the log: they describe the host's filesystem.
                    log.info("volume %s: %s", vm["name"], exc)
                    raise ConfigError(
                        f'failed to prepare subPath for volumeMount "{vm["name"]}" of container '
                        f'"{container["name"]}"'
                    ) from None
                host = str(target)
            propagation = {"HostToContainer": "rslave", "Bidirectional": "rshared"}.get(
                vm.get("mountPropagation", "None"), "private"
            )
            out.append(
                protocol.Mount(
                    container_path=vm["mountPath"],
                    host_path=host,
                    readonly=bool(vm.get("readOnly")) or vol.readonly,
                    propagation=propagation,
                    sub_path_file=sub_file,
                )
            )
        return out

    def cleanup(self, uid: str) -> None:
        """Unmount and remove every volume of a pod (idempotent). Claims' volumes live
        elsewhere and stay; subpaths of them are bind-mounted here, so nothing is removed
        while anything under the pod's directory is still mounted."""
        self._set_up.pop(uid, None)
        base = self.pod_dir(uid)
        for target in sorted(_mounts_under(base), key=len, reverse=True):
            try:
                subpath.unmount(target)
            except OSError as exc:
                log.warning("cannot unmount %s: %s", target, exc.strerror)
        left = _mounts_under(base)
        if left:
            log.error(
                "pod %s: %s still mounted; its directory is kept (remove it by hand once "
                "unmounted)",
                uid,
                ", ".join(left),
            )
            return
        shutil.rmtree(base, ignore_errors=True)


def _mounts_under(base: Path) -> list[str]:
    prefix = str(base).rstrip("/") + "/"
    out = []
    with contextlib.suppress(OSError), open("/proc/self/mountinfo") as f:
        for line in f:
            target = line.split()[4].replace("\\040", " ")
            if target.startswith(prefix):
                out.append(target)
    return out
