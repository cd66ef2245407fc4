"""``pilothouse images``: the node's image store by hand — import, ls, rm, pull, busybox.

Works on ``<data-dir>/agent/images``, the store the node agent uses, and may run
beside a running agent (the store's index is shared under a file lock).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import TextIO

from pilothouse.node.runtime import protocol
from pilothouse.node.runtime.images import archive, auth, registries, store, testimage

DEFAULT_DATA_DIR = Path("/var/lib/pilothouse")

EPILOG = """\
examples:
  # no registry and no files at hand: an image made from this machine's busybox-static
  pilothouse images busybox                     # busybox:1.36
  pilothouse images busybox --tag busybox:1.37  # a second tag, to try a rolling update

  # on a machine without a registry: bring images as files
  skopeo copy docker://busybox:1.36 oci-archive:busybox.tar:busybox:1.36   # elsewhere
  pilothouse images import busybox.tar
  docker save nginx:1.27 | gzip > nginx.tar.gz && pilothouse images import nginx.tar.gz

  pilothouse images pull registry.example.com:5000/team/app:v2 --creds user:secret
  pilothouse images pull 127.0.0.1:5000/library/busybox:1.36     # loopback: plain http
  pilothouse images pull busybox --private-registry registries.yaml # through a mirror
  pilothouse images ls
  pilothouse images rm busybox:1.36
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help="pilothouse data directory; images live in DATA_DIR/agent/images (default: %(default)s)",
    )
    p = sub.add_parser(
        "images",
        help="list, pull, import and remove the node's container images",
        description="Manage the image store the node agent runs containers from.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = p.add_subparsers(dest="images_command", metavar="ACTION")

    imp = actions.add_parser(
        "import",
        parents=[common],
        help="import an OCI archive or a docker save tarball (gzip allowed)",
        description="Imports every image in an OCI image layout archive (as made by "
        "`skopeo copy … oci-archive:FILE`) or a `docker save` tarball, gzipped or not.",
    )
    imp.add_argument("file", type=Path, help="the archive (or an OCI layout directory)")
    imp.add_argument(
        "--name",
        default="",
        help="repository for OCI entries whose ref.name is only a tag (e.g. docker.io/library/busybox)",
    )
    imp.set_defaults(func=run_import)

    bb = actions.add_parser(
        "busybox",
        parents=[common],
        help="make a busybox image from this machine's busybox-static, without a registry",
        description="Builds a one-layer image around the static busybox of Debian's "
        "busybox-static package (/bin/busybox and its applets, /etc/passwd, /etc/group) "
        "and imports it. Enough for `httpd`, `sh`, `sleep`, `wget` … in a first cluster "
        "with no internet.",
    )
    bb.add_argument(
        "--tag",
        action="append",
        default=[],
        help="name:tag to give it; repeat for several (default: busybox:1.36)",
    )
    bb.set_defaults(func=run_busybox)

    ls = actions.add_parser("ls", parents=[common], help="list images", description="Lists images.")
    ls.add_argument("-q", "--quiet", action="store_true", help="only image ids")
    ls.add_argument("--digests", action="store_true", help="show repository digests")
    ls.add_argument("--no-trunc", action="store_true", help="show full image ids")
    ls.add_argument("-o", "--output", choices=("table", "json"), default="table")
    ls.set_defaults(func=run_ls)

    rm = actions.add_parser(
        "rm",
        parents=[common],
        help="remove images by name or id",
        description="Removes a name (name:tag, name@digest) or, given an id, the whole image; "
        "layers no other image or container uses are deleted.",
    )
    rm.add_argument("refs", nargs="+", metavar="REF")
    rm.set_defaults(func=run_rm)

    pull = actions.add_parser(
        "pull",
        parents=[common],
        help="pull an image from a registry",
        description="Pulls an image (this machine's platform) into the store.",
    )
    pull.add_argument("ref", metavar="REF")
    pull.add_argument(
        "--creds",
        default="",
        help="USER[:PASSWORD] for the registry (asks for the password if omitted)",
    )
    pull.add_argument(
        "--auth-file", type=Path, help="a docker config.json with credentials (auths)"
    )
    pull.add_argument(
        "--insecure-registry",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="reach this registry over plain http (registries on 127.0.0.1/localhost always are)",
    )
    pull.add_argument(
        "--private-registry",
        type=Path,
        default=None,
        metavar="FILE",
        help="registry mirrors, rewrites, credentials and TLS (k3s' registries.yaml), as the "
        "node uses them (default: DATA_DIR/registries.yaml, if it exists)",
    )
    pull.add_argument(
        "--disable-default-registry-endpoint",
        action="store_true",
        help="pull mirrored registries' images from their mirrors only",
    )
    pull.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    pull.set_defaults(func=run_pull)

    p.set_defaults(func=lambda a: _usage(p))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _open(args: argparse.Namespace, **kwargs: object) -> store.ImageStore:
    return store.ImageStore(args.data_dir / "agent" / "images", **kwargs)  # type: ignore[arg-type]


def _fail(action: str, message: str) -> int:
    print(f"pilothouse images {action}: {message}", file=sys.stderr)
    return 1


def human_size(size: float) -> str:
    """crictl's size column: three significant digits, decimal units (``2.16MB``)."""
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    i = 0
    while size >= 1000 and i < len(units) - 1:
        size /= 1000
        i += 1
    return f"{size:.3g}{units[i]}"


# --- import -----------------------------------------------------------------------------------
def run_import(args: argparse.Namespace) -> int:
    if not args.file.exists():
        return _fail("import", f"{args.file}: no such file")
    try:
        images = asyncio.run(_open(args).import_archive(args.file, name=args.name))
    except (archive.ArchiveError, protocol.ImagePullError, OSError) as exc:
        return _fail("import", str(exc))
    for image in images:
        names = ", ".join(image.repo_tags) or "(untagged)"
        print(f"imported {names} {image.id}")
    if not images:
        return _fail("import", f"{args.file}: no images in the archive")
    return 0


# --- busybox --------------------------------------------------------------------------------
def run_busybox(args: argparse.Namespace) -> int:
    try:
        busybox = testimage.find_busybox()
    except FileNotFoundError as exc:
        return _fail("busybox", str(exc))
    for tag in args.tag or ["busybox:1.36"]:
        with tempfile.TemporaryDirectory(prefix="pilothouse-busybox-") as tmp:
            layout = testimage.write_oci_layout(
                Path(tmp) / "layout", [testimage.busybox_layer(busybox)], tag=tag
            )
            try:
                images = asyncio.run(_open(args).import_archive(layout, name="busybox"))
            except (archive.ArchiveError, protocol.ImagePullError, OSError) as exc:
                return _fail("busybox", str(exc))
        for image in images:
            print(f"imported {tag} {image.id} (from {busybox})")
    return 0


# --- ls --------------------------------------------------------------------------------------
def _rows(image: protocol.Image) -> list[tuple[str, str, str]]:
    """(repository, tag, digest) rows for one image, as crictl shows them."""
    rows: list[tuple[str, str, str]] = []
    digests = {d.partition("@")[0]: d.partition("@")[2] for d in image.repo_digests}
    for tag in image.repo_tags:
        repo, _, name_tag = tag.rpartition(":")
        rows.append((repo, name_tag, digests.get(repo, "<none>")))
    if not rows:
        for repo, digest in digests.items():
            rows.append((repo, "<none>", digest))
    return rows or [("<none>", "<none>", "<none>")]


def run_ls(args: argparse.Namespace) -> int:
    images = _open(args).list()
    if args.output == "json":
        doc = [
            {
                "id": i.id,
                "repoTags": list(i.repo_tags),
                "repoDigests": list(i.repo_digests),
                "size": str(i.size),
                "layers": [str(p) for p in i.layers],
            }
            for i in images
        ]
        print(json.dumps({"images": doc}, indent=2))
        return 0
    if args.quiet:
        for image in images:
            print(image.id if args.no_trunc else image.id.removeprefix("sha256:")[:13])
        return 0
    header = ["IMAGE", "TAG"] + (["DIGEST"] if args.digests else []) + ["IMAGE ID", "SIZE"]
    table = [header]
    for image in images:
        image_id = image.id if args.no_trunc else image.id.removeprefix("sha256:")[:13]
        for repo, tag, digest in _rows(image):
            short = digest if args.no_trunc else digest.removeprefix("sha256:")[:13]
            row = (
                [repo, tag] + ([short] if args.digests else []) + [image_id, human_size(image.size)]
            )
            table.append(row)
    widths = [max(len(r[c]) for r in table) for c in range(len(header))]
    for row in table:
        print("   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


# --- rm --------------------------------------------------------------------------------------
def run_rm(args: argparse.Namespace) -> int:
    images = _open(args)
    status = 0
    for ref in args.refs:
        image = images.get(ref)
        if image is None:
            status = _fail("rm", f'no such image "{ref}"')
            continue
        asyncio.run(images.remove(ref))
        print(f"Deleted: {ref}" if images.get(image.id) is None else f"Untagged: {ref}")
    return status


# --- pull ------------------------------------------------------------------------------------
class ProgressDisplay:
    """Layer progress: redrawn in place on a terminal, one line per finished layer otherwise."""

    def __init__(self, stream: TextIO, *, tty: bool | None = None) -> None:
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self.layers: dict[str, protocol.PullProgress] = {}
        self._drawn = 0
        self._last_draw = 0.0

    def __call__(self, event: protocol.PullProgress) -> None:
        self.layers[event.layer] = event
        if not self.tty:
            if event.finished:
                self.stream.write(f"{_short(event.layer)}: done {human_size(event.total_bytes)}\n")
                self.stream.flush()
            return
        now = time.monotonic()
        if event.finished or now - self._last_draw >= 0.1:
            self._last_draw = now
            self.draw()

    def draw(self) -> None:
        out = []
        if self._drawn:
            out.append(f"\x1b[{self._drawn}F")
        for event in self.layers.values():
            out.append("\x1b[2K" + _line(event) + "\n")
        self._drawn = len(self.layers)
        self.stream.write("".join(out))
        self.stream.flush()


def _short(digest: str) -> str:
    return digest.removeprefix("sha256:")[:12]


def _line(event: protocol.PullProgress) -> str:
    if event.finished:
        return f"{_short(event.layer)}: done         {human_size(event.total_bytes):>8}"
    total = max(event.total_bytes, 1)
    width = 30
    filled = min(width, event.done_bytes * width // total)
    bar = "=" * filled + (">" if filled < width else "") + " " * (width - filled - 1)
    return (
        f"{_short(event.layer)}: [{bar[:width]}] "
        f"{human_size(event.done_bytes):>8} / {human_size(event.total_bytes)}"
    )


def _credentials(args: argparse.Namespace, registry: str) -> list[protocol.RegistryAuth]:
    creds: list[protocol.RegistryAuth] = []
    if args.creds:
        user, sep, password = args.creds.partition(":")
        if not sep:
            password = getpass.getpass(f"password for {user}@{registry}: ")
        creds.append(protocol.RegistryAuth(registry=registry, username=user, password=password))
    if args.auth_file:
        creds.extend(auth.auth_from_dockerconfig({".dockerconfigjson": args.auth_file.read_text()}))
    return creds


def run_pull(args: argparse.Namespace) -> int:
    from pilothouse.node.runtime.images import reference

    try:
        ref = reference.parse(args.ref)
    except reference.ReferenceError_ as exc:
        return _fail("pull", f'"{args.ref}": {exc}')
    try:
        creds = _credentials(args, ref.domain)
    except OSError as exc:
        return _fail("pull", str(exc))
    registries_file = registries.RegistriesFile(
        args.private_registry or args.data_dir / "registries.yaml",
        default_endpoint=not args.disable_default_registry_endpoint,
    )
    if registries_file.current() is not None and registries_file.error:
        return _fail("pull", registries_file.error)
    images = _open(args, insecure_registries=args.insecure_registry, registries=registries_file)
    display = None if args.quiet else ProgressDisplay(sys.stderr)
    started = time.monotonic()
    try:
        image = asyncio.run(images.pull(args.ref, auth=creds, progress=display))
    except protocol.ImagePullError as exc:
        return _fail("pull", exc.message)
    took = time.monotonic() - started
    print(f"Pulled {ref} ({image.id}) in {took:.2f}s, size {human_size(image.size)}")
    return 0
