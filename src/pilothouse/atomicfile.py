"""Replacing a file in one step, durably.

:func:`write` puts new content at a path so that a reader — or the next start after
a crash or a power cut — finds the old content or the new, never a mix or an empty
file: the bytes go to a temporary file in the same directory (a rename is atomic
only within one file system), which is fsynced and given its mode, then renamed
over the target; the directory is fsynced last so that the rename itself survives
a power cut. Nothing is left behind when any step fails.

Used by the API server (certificates, keys, kubeconfigs, the encryption
configuration) and the node (the runtime's records), so it sits outside both.

It blocks (two fsyncs): callers run it at start-up or in a worker thread, except
where they pass ``durable=False``. Nothing is shared between calls; concurrent
writers of one path each use a temporary file of their own, and the last rename
wins. The file belongs to the writing process's user and group like any new file;
an existing file's owner is not carried over.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import tempfile


def write(path: pathlib.Path, data: bytes, *, mode: int, durable: bool = True) -> None:
    """Replace ``path`` with ``data``, its permission bits exactly ``mode`` (the umask
    does not narrow them). ``durable=False`` skips both fsyncs: still atomic for
    readers, but a power cut may lose the new content (or leave the file empty)."""
    # mkstemp creates the file 0600 and never follows or reuses an existing name.
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    if durable:
        _fsync_directory(path.parent)


def _fsync_directory(directory: pathlib.Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
