"""Apply one layer tarball to an empty directory, in the form overlayfs stacks.

Each layer is unpacked alone into its own directory; the runtime mounts the
directories as overlay lowerdirs. So the layer's whiteouts become overlayfs
whiteouts: ``.wh.NAME`` a character device 0/0 named NAME, ``.wh..wh..opq`` the
xattr ``trusted.overlay.opaque=y`` on its directory.

Safety: entry names are normalised and any that climb out with ``..`` are rejected;
the directories an entry lives in are resolved *inside* the layer, following the
layer's own symlinks as if the layer were ``/`` (as docker's chrooted unpack does),
so a symlink to ``/etc`` can never lead a later entry out of the layer. Symlink
targets are kept verbatim (absolute ones included): they are only followed inside a
container. Files are created with ``O_NOFOLLOW | O_EXCL``.

This is blocking code: callers run it in a thread.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import posixpath
import shutil
import stat
import subprocess
import tarfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_MAX_SYMLINKS = 40


class UnpackError(Exception):
    """The layer cannot be applied (unsafe, corrupt, or needs privileges we lack)."""


@dataclass
class UnpackResult:
    diff_id: str  # sha256 of the uncompressed tar stream
    entries: int
    size: int  # bytes of regular file content written


class _HashingReader:
    """A read-only stream that hashes everything read through it."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.hash = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self.hash.update(data)
        return data

    def drain(self) -> None:
        for chunk in iter(lambda: self._raw.read(1 << 20), b""):
            self.hash.update(chunk)


@contextlib.contextmanager
def open_layer(path: Path) -> Iterator[BinaryIO]:
    """The uncompressed tar stream of a layer blob: gzip, zstd or plain, told by magic bytes.

    Media types lie now and then (``docker save`` calls plain tars gzip), so the
    bytes decide. zstd goes through the ``zstd`` program when it is installed; the
    standard library of Python 3.11 cannot read it.
    """
    with open(path, "rb") as raw:
        # pread: a buffered read + seek(0) would leave the fd's offset past the start,
        # and the zstd child reads the fd itself.
        magic = os.pread(raw.fileno(), 4, 0)
        if magic.startswith(_GZIP_MAGIC):
            import gzip

            with gzip.GzipFile(fileobj=raw, mode="rb") as gz:
                yield gz  # type: ignore[misc]
        elif magic == _ZSTD_MAGIC:
            zstd = shutil.which("zstd")
            if zstd is None:
                raise UnpackError("layer is zstd-compressed and the zstd program is not installed")
            proc = subprocess.Popen([zstd, "-dcq"], stdin=raw, stdout=subprocess.PIPE)
            assert proc.stdout is not None
            try:
                yield proc.stdout  # type: ignore[misc]
            finally:
                proc.stdout.close()
                if proc.wait() not in (0, -13):  # -13: we stopped reading (SIGPIPE)
                    raise UnpackError(f"zstd failed with exit status {proc.returncode}")
        else:
            yield raw


def apply_layer(
    source: BinaryIO, dest: Path, *, parents: Sequence[Path] = (), privileged: bool | None = None
) -> UnpackResult:
    """Unpack the tar stream ``source`` into the empty directory ``dest``.

    ``parents`` are the unpacked layers below, topmost first; they are read only to
    resolve a hardlink to a file this layer does not contain. ``privileged`` (default:
    running as root) decides whether ownership, device nodes and whiteouts are made.
    """
    if privileged is None:
        privileged = os.geteuid() == 0
    reader = _HashingReader(source)
    applier = _Applier(str(dest), [str(p) for p in parents], privileged)
    try:
        with tarfile.open(fileobj=reader, mode="r|") as tar:  # type: ignore[call-overload]
            for member in tar:
                applier.apply(tar, member)
        reader.drain()  # the diff id covers the trailing padding too (and gzip's CRC check)
        applier.finish()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise UnpackError(f"failed to extract layer: {exc}") from exc
    return UnpackResult("sha256:" + reader.hash.hexdigest(), applier.entries, applier.size)


def _clean_name(name: str) -> str:
    """The entry's path relative to the layer root, or UnpackError if it escapes."""
    cleaned = posixpath.normpath("/" + name).lstrip("/")
    if cleaned in ("", "."):
        return "."
    norm = posixpath.normpath(name.lstrip("/"))
    if norm == ".." or norm.startswith("../"):
        raise UnpackError(f"invalid tar entry {name!r}: path escapes the layer")
    return cleaned


class _Applier:
    """Applies tar entries one by one under ``root`` (state: counts and deferred dirs)."""

    def __init__(self, root: str, parents: list[str], privileged: bool) -> None:
        self.root = root
        self.parents = parents
        self.privileged = privileged
        self.entries = 0
        self.size = 0
        # Directory metadata waits until the end: children change a directory's mtime,
        # and a read-only mode would stop an unprivileged unpack from writing children.
        self._dirs: list[tuple[str, tarfile.TarInfo]] = []

    # --- paths ---------------------------------------------------------------------------
    def resolve_dir(self, rel: str, *, create: bool = True) -> str:
        """The real directory ``rel`` names inside the layer, following the layer's symlinks
        with the layer as ``/``; missing directories are created (0755) when ``create``."""
        parts = [p for p in rel.split("/") if p not in ("", ".")]
        resolved: list[str] = []
        links = 0
        while parts:
            part = parts.pop(0)
            if part == "..":
                if resolved:
                    resolved.pop()
                continue
            current = os.path.join(self.root, *resolved, part)
            try:
                st = os.lstat(current)
            except FileNotFoundError:
                if not create:
                    raise
                os.mkdir(current, 0o755)
                resolved.append(part)
                continue
            if stat.S_ISLNK(st.st_mode):
                links += 1
                if links > _MAX_SYMLINKS:
                    raise UnpackError(f"{rel}: too many levels of symbolic links")
                target = os.readlink(current)
                if target.startswith("/"):
                    resolved = []
                parts = [p for p in target.split("/") if p not in ("", ".")] + parts
                continue
            if not stat.S_ISDIR(st.st_mode):
                raise UnpackError(f"{rel}: {part} is not a directory")
            resolved.append(part)
        return os.path.join(self.root, *resolved)

    def _clear(self, path: str, *, keep_dir: bool) -> None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            if keep_dir:
                return
            shutil.rmtree(path)
        else:
            os.unlink(path)

    # --- entries -------------------------------------------------------------------------
    def apply(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        self.entries += 1
        name = _clean_name(member.name)
        if name == ".":
            if member.isdir():
                self._dirs.append((self.root, member))
            return
        dirname, base = posixpath.split(name)
        if WHITEOUT_META_PREFIX in name and any(
            part.startswith(WHITEOUT_META_PREFIX) for part in name.split("/")[:-1]
        ):
            return  # inside aufs bookkeeping directories (.wh..wh.plnk/…)
        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout(dirname, base)
            return
        parent = self.resolve_dir(dirname)
        path = os.path.join(parent, base)
        self._clear(path, keep_dir=member.isdir())
        if member.isdir():
            if not os.path.isdir(path):
                os.mkdir(path, 0o700)
            self._dirs.append((path, member))
            return
        if member.isreg():
            self._write_file(tar, member, path)
        elif member.issym():
            os.symlink(member.linkname, path)
        elif member.islnk():
            self._hardlink(member, path)
            return  # a hardlink shares its target's inode and metadata
        elif member.ischr() or member.isblk():
            if not self.privileged:
                log.warning("skipping device node %s (needs root)", name)
                return
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
            os.mknod(
                path, kind | (member.mode & 0o7777), os.makedev(member.devmajor, member.devminor)
            )
        elif member.isfifo():
            os.mkfifo(path, member.mode & 0o7777)
        else:
            log.warning("skipping tar entry %s of unsupported type %r", name, member.type)
            return
        self._metadata(path, member)

    def _whiteout(self, dirname: str, base: str) -> None:
        parent = self.resolve_dir(dirname)
        if base == WHITEOUT_OPAQUE:
            self._setxattr(parent, OPAQUE_XATTR, b"y", required=True)
            return
        if base.startswith(WHITEOUT_META_PREFIX):
            return  # aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs): nothing to show
        target = base[len(WHITEOUT_PREFIX) :]
        if target in ("", ".", ".."):
            raise UnpackError(f"invalid whiteout {posixpath.join(dirname, base)!r}")
        if not self.privileged:
            raise UnpackError(
                "layer has whiteouts: unpacking it needs root (overlayfs whiteout devices)"
            )
        path = os.path.join(parent, target)
        self._clear(path, keep_dir=False)
        os.mknod(path, stat.S_IFCHR, os.makedev(0, 0))

    def _write_file(self, tar: tarfile.TarFile, member: tarfile.TarInfo, path: str) -> None:
        data = tar.extractfile(member)
        assert data is not None
        fd = os.open(
            path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(data, out, 1 << 20)
        self.size += member.size

    def _hardlink(self, member: tarfile.TarInfo, path: str) -> None:
        target = _clean_name(member.linkname)
        if target == ".":
            raise UnpackError(f"invalid hardlink {member.name!r} to the layer root")
        tdir, tbase = posixpath.split(target)
        try:
            source = os.path.join(self.resolve_dir(tdir, create=False), tbase)
            os.link(source, path, follow_symlinks=False)
            return
        except FileNotFoundError:
            pass
        # The target lives in a layer below: this layer gets its own copy.
        for lower in self.parents:
            candidate = os.path.join(lower, target)
            if os.path.lexists(candidate) and not os.path.isdir(candidate):
                shutil.copy2(candidate, path, follow_symlinks=False)
                if self.privileged:
                    st = os.lstat(candidate)
                    os.lchown(path, st.st_uid, st.st_gid)
                return
        raise UnpackError(f"hardlink {member.name!r} points to missing {member.linkname!r}")

    # --- metadata ------------------------------------------------------------------------
    def _metadata(self, path: str, member: tarfile.TarInfo) -> None:
        if self.privileged:
            os.lchown(path, member.uid, member.gid)
        if not member.issym():
            # After chown, which clears setuid/setgid bits.
            os.chmod(path, member.mode & 0o7777)
        for key, value in member.pax_headers.items():
            if not key.startswith("SCHILY.xattr."):
                continue
            name = key[len("SCHILY.xattr.") :]
            if name.startswith("trusted.overlay."):
                # Only our whiteout conversion may speak to overlayfs; an image's own
                # overlay xattrs (redirect, metacopy, opaque) could reshape the stack.
                log.warning("ignoring overlayfs xattr %s on %s from the layer", name, member.name)
                continue
            raw = value.encode("utf-8", "surrogateescape")
            self._setxattr(path, name, raw, required=False)
        mtime = int(member.mtime * 1_000_000_000)
        with contextlib.suppress(NotImplementedError):
            os.utime(path, ns=(mtime, mtime), follow_symlinks=False)

    def _setxattr(self, path: str, key: str, value: bytes, *, required: bool) -> None:
        try:
            os.setxattr(path, key, value, follow_symlinks=False)
        except OSError as exc:
            if required:
                raise UnpackError(
                    f"cannot set {key} on {path}: {exc.strerror} (needs root)"
                ) from exc
            log.debug("xattr %s on %s not set: %s", key, path, exc)

    def finish(self) -> None:
        if not os.stat(self.root).st_mode & 0o077:
            os.chmod(self.root, 0o755)  # a fresh temp dir is 0700; a layer root is 0755
        for path, member in reversed(self._dirs):
            self._metadata(path, member)
