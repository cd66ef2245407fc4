"""A Python test image made from this machine's own interpreter, for in-cluster clients.

Tests that run a Python program inside a pod (the ``kubernetes`` client with
``load_incluster_config()``) need an interpreter in an image, and may not reach the
internet. :func:`python_layer` copies the host's Python — the interpreter, its
standard library, the distributions of the named packages and what they require —
and every shared library those link (found with ``ldd``), each at the path the host
has it, so the dynamic loader finds them as it does on the host. Put it on top of
the busybox layer (:mod:`testimage`) for a shell. Packages go to
``/opt/python/site-packages``, which the image's ``PYTHONPATH`` names.

Built in memory, deterministically (sorted, fixed mtimes), once per test session.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

from pilothouse.node.runtime.images import testimage

SITE = "opt/python/site-packages"
_SKIP_STDLIB = frozenset(
    {"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "__pycache__"}
)
_LDD_LINE = re.compile(r"(?:=>\s*)?(/\S+)\s+\(0x")


def _requirement_names(dist: importlib.metadata.Distribution) -> list[str]:
    out = []
    for req in dist.requires or []:
        if ";" in req and "extra ==" in req.split(";", 1)[1]:
            continue  # optional extras are not needed
        name = re.split(r"[\s<>=!~;\[(]", req, maxsplit=1)[0]
        if name:
            out.append(name)
    return out


def distributions(packages: list[str]) -> list[importlib.metadata.Distribution]:
    """The named distributions and everything they require, each once."""
    seen: dict[str, importlib.metadata.Distribution] = {}
    pending = list(packages)
    while pending:
        name = pending.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in seen:
            continue
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        seen[key] = dist
        pending.extend(_requirement_names(dist))
    return list(seen.values())


def _shared_libraries(binaries: list[Path]) -> set[Path]:
    libs: set[Path] = set()
    for chunk in range(0, len(binaries), 200):
        proc = subprocess.run(
            ["ldd", *map(str, binaries[chunk : chunk + 200])],
            capture_output=True,
            text=True,
            check=False,
        )
        for line in proc.stdout.splitlines():
            match = _LDD_LINE.search(line)
            if match:
                libs.add(Path(match.group(1)))
    return libs


def python_layer(packages: list[str]) -> bytes:
    """The host's Python with ``packages`` (see the module docstring) as a layer tarball."""
    interpreter = Path(os.path.realpath(sys.base_exec_prefix + "/bin/python3"))
    if not interpreter.exists():
        interpreter = Path(os.path.realpath(sys.executable))
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files: dict[str, Path] = {}
    for root, subdirs, names in os.walk(stdlib):
        subdirs[:] = sorted(
            d
            for d in subdirs
            if d not in _SKIP_STDLIB and d != "site-packages" and not d.startswith("config-")
        )
        for name in names:
            found = Path(root) / name
            files[str(found).lstrip("/")] = found
    for dist in distributions(packages):
        for entry in dist.files or []:
            if "__pycache__" in entry.parts or entry.parts[0] == "..":
                continue
            source = Path(str(dist.locate_file(entry)))
            if source.is_file():
                files[f"{SITE}/{entry.as_posix()}"] = source
    files[str(interpreter).lstrip("/")] = interpreter
    binaries = [interpreter, *(p for p in files.values() if p.suffix == ".so" or ".so." in p.name)]
    for lib in _shared_libraries(binaries):
        files[str(lib).lstrip("/")] = lib
    layer = testimage.LayerBuilder()
    dirs: set[str] = set()
    for member in files:
        parent = os.path.dirname(member)
        while parent:
            dirs.add(parent)
            parent = os.path.dirname(parent)
    for d in sorted(dirs | {"usr/local/bin"}):
        layer.dir(d)
    for member in sorted(files):
        source = files[member]
        mode = 0o755 if os.access(source, os.X_OK) else 0o644
        layer.file(member, Path(os.path.realpath(source)).read_bytes(), mode=mode)
    layer.symlink("usr/local/bin/python3", str(interpreter))
    layer.symlink("usr/local/bin/python", str(interpreter))
    return layer.tar()


def image_config() -> dict[str, object]:
    return {
        "Env": [
            testimage.PATH_ENV,
            f"PYTHONPATH=/{SITE}",
            "PYTHONDONTWRITEBYTECODE=1",
            "PYTHONUNBUFFERED=1",
        ],
        "Cmd": ["python3"],
    }


def build_python_oci(dest: Path, *, packages: list[str], tag: str = "python-client:test") -> Path:
    """A busybox + host-Python OCI image layout at ``dest``; returns ``dest``."""
    return testimage.write_oci_layout(
        dest,
        [testimage.busybox_layer(), python_layer(packages)],
        tag=tag,
        image_config=image_config(),
        compress=False,
    )
