"""Stand-in images built from Debian packages, for tests and benchmarks without docker.io.

* :func:`nginx_rootfs` — Debian's ``nginx`` and ``nginx-common`` packages (``.deb`` files,
  as ``make install-test`` downloads them) unpacked with ``dpkg-deb``, plus the shared
  libraries the binary needs from this machine, laid out as the package's own scripts
  would (the default site enabled, its welcome page in ``/var/www/html``, ``www-data``);
  it serves "Welcome to nginx!" on port 80 like the official image.
* :func:`python_rootfs` — this machine's Debian ``python3-minimal`` interpreter with its
  standard library and libraries, as ``python``, ``python3`` and ``python3.11``.
* :func:`directory_layer` — any directory as a deterministic layer tarball, and
  :func:`unique_layer` — a layer of random bytes, to make images of a given size.

Blocking file work throughout; callers in async code run it in a thread.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

from pilothouse.node.runtime.images import testimage

NGINX_DEBS = ("nginx", "nginx-common")
PASSWD = (
    b"root:x:0:0:root:/root:/bin/sh\n"
    b"www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n"
    b"nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
)
GROUP = b"root:x:0:\nwww-data:x:33:\nnobody:x:65534:\n"
_LDD_PATH = re.compile(r"(/\S+) \(0x")


def shared_libraries(binary: Path) -> list[Path]:
    """The shared objects ``binary`` loads (the dynamic loader included), from ``ldd``."""
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True).stdout
    return [Path(m.group(1)) for m in _LDD_PATH.finditer(out)]


def _copy_into(root: Path, path: Path) -> None:
    """Copy a host file into ``root`` at the same path, and its real file if it is a link."""
    target = root / str(path).lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink():
        if not target.exists() and not target.is_symlink():
            os.symlink(os.readlink(path), target)
        _copy_into(root, path.resolve())
    elif not target.exists():
        shutil.copy2(path, target)


def _merge_usr(root: Path) -> None:
    """Debian's merged /usr: /bin, /sbin, /lib and /lib64 are links into /usr, so the
    absolute paths binaries and their links name resolve inside the image too."""
    for top in ("bin", "sbin", "lib", "lib64"):
        link, real = root / top, root / "usr" / top
        real.mkdir(parents=True, exist_ok=True)
        if link.is_symlink():
            continue
        if link.is_dir():
            shutil.copytree(link, real, symlinks=True, dirs_exist_ok=True)
            shutil.rmtree(link)
        os.symlink(f"usr/{top}", link)


def _base(root: Path) -> None:
    _merge_usr(root)
    for d in ("etc", "tmp", "run", "var/tmp", "root"):
        (root / d).mkdir(parents=True, exist_ok=True)
    os.chmod(root / "tmp", 0o1777)
    (root / "etc/passwd").write_bytes(PASSWD)
    (root / "etc/group").write_bytes(GROUP)


def find_debs(directory: Path, names: tuple[str, ...]) -> list[Path]:
    """The newest ``<name>_*.deb`` of each name in ``directory``; FileNotFoundError says
    how to get them."""
    found = []
    for name in names:
        candidates = sorted(directory.glob(f"{name}_*.deb"))
        if not candidates:
            raise FileNotFoundError(
                f"no {name}_*.deb in {directory}: run `make install-test` (it downloads "
                f"{' '.join(names)} with apt-get download)"
            )
        found.append(candidates[-1])
    return found


def nginx_rootfs(debs: Path, root: Path) -> dict[str, Any]:
    """Unpack Debian's nginx into ``root``; the image config to run it."""
    root.mkdir(parents=True, exist_ok=True)
    for deb in find_debs(debs, NGINX_DEBS):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    _base(root)
    for lib in shared_libraries(root / "usr/sbin/nginx"):
        _copy_into(root, lib)
    # What the packages' maintainer scripts would do.
    enabled = root / "etc/nginx/sites-enabled"
    enabled.mkdir(parents=True, exist_ok=True)
    if not (enabled / "default").is_symlink():
        os.symlink("/etc/nginx/sites-available/default", enabled / "default")
    html = root / "var/www/html"
    html.mkdir(parents=True, exist_ok=True)
    shutil.copy2(root / "usr/share/nginx/html/index.html", html / "index.nginx-debian.html")
    for d in ("var/log/nginx", "var/lib/nginx", "var/cache/nginx"):
        (root / d).mkdir(parents=True, exist_ok=True)
    return {
        "Env": [testimage.PATH_ENV],
        "Cmd": ["nginx", "-g", "daemon off;"],
        "ExposedPorts": {"80/tcp": {}},
        "StopSignal": "SIGQUIT",
    }


def python_rootfs(root: Path, *, interpreter: Path = Path("/usr/bin/python3.11")) -> dict[str, Any]:
    """This machine's Debian Python in ``root``; the image config to run it."""
    if not interpreter.is_file():
        raise FileNotFoundError(f"{interpreter} not found: apt-get install python3-minimal")
    _base(root)
    version = interpreter.name.removeprefix("python")
    _copy_into(root, interpreter)
    for lib in shared_libraries(interpreter):
        _copy_into(root, lib)
    stdlib = Path(f"/usr/lib/python{version}")
    skip = shutil.ignore_patterns(
        "__pycache__", "test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3",
        "pydoc_data", "config-*",
    )  # fmt: skip
    shutil.copytree(stdlib, root / str(stdlib).lstrip("/"), symlinks=True, ignore=skip,
                    dirs_exist_ok=True)  # fmt: skip
    for so in (root / str(stdlib).lstrip("/") / "lib-dynload").glob("*.so"):
        for lib in shared_libraries(so):
            _copy_into(root, lib)
    for alias in ("python", "python3"):
        link = root / "usr/bin" / alias
        if not link.is_symlink():
            os.symlink(interpreter.name, link)
    return {"Env": [testimage.PATH_ENV, "PYTHONDONTWRITEBYTECODE=1"], "Cmd": ["python3"]}


def directory_layer(root: Path) -> bytes:
    """A layer tarball of everything under ``root``: sorted, owned by root, mtime 0."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(dirnames) + sorted(filenames):
                path = Path(dirpath) / name
                info = tar.gettarinfo(str(path), arcname=str(path.relative_to(root)))
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                info.mtime = 0
                if info.isreg():
                    with open(path, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
    return buffer.getvalue()


def busybox_with(name: str, size: int) -> bytes:
    """The busybox layer plus ``/data/<name>``: ``size`` random bytes. Each name gives an
    image that shares no layer with another, as distinct images pulled cold do."""
    buffer = io.BytesIO(testimage.busybox_layer())
    with tarfile.open(fileobj=buffer, mode="a", format=tarfile.PAX_FORMAT) as tar:
        folder = tarfile.TarInfo("data")
        folder.type, folder.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(folder)
        info = tarfile.TarInfo(f"data/{name}")
        info.size, info.mode = size, 0o644
        tar.addfile(info, io.BytesIO(os.urandom(size)))
    return buffer.getvalue()


def unique_layer(name: str, size: int) -> bytes:
    """One file of ``size`` random bytes: an incompressible layer that no other image has."""
    return testimage.LayerBuilder().dir("data").file(f"data/{name}", os.urandom(size)).tar()
