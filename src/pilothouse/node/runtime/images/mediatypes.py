"""OCI and Docker schema 2 media types, and picking this machine's manifest from an index."""

from __future__ import annotations

import platform as _platform
from dataclasses import dataclass
from typing import Any

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_ND = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_ND_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_LAYER_ND_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"

DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
DOCKER_SCHEMA1 = (
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
)

INDEXES = (OCI_INDEX, DOCKER_MANIFEST_LIST)
MANIFESTS = (OCI_MANIFEST, DOCKER_MANIFEST)
CONFIGS = (OCI_CONFIG, DOCKER_CONFIG)
LAYERS = (
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD,
    OCI_LAYER_ND,
    OCI_LAYER_ND_GZIP,
    OCI_LAYER_ND_ZSTD,
    DOCKER_LAYER,
    DOCKER_FOREIGN_LAYER,
    # Docker's own "uncompressed" label, seen in `docker save` output and a few registries.
    "application/vnd.docker.image.rootfs.diff.tar",
)

# Order matters: registries answer with the first type they have.
MANIFEST_ACCEPT = ", ".join((OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST))

ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_CONTAINERD_NAME = "io.containerd.image.name"


def kind_of(document: dict[str, Any], media_type: str = "") -> str:
    """``index``, ``manifest`` or ``schema1`` for a manifest document.

    The OCI spec lets ``mediaType`` be absent, so fall back to the shape.
    """
    media_type = media_type.split(";")[0].strip() or str(document.get("mediaType", ""))
    if media_type in INDEXES:
        return "index"
    if media_type in MANIFESTS:
        return "manifest"
    if media_type in DOCKER_SCHEMA1 or document.get("schemaVersion") == 1:
        return "schema1"
    if "manifests" in document:
        return "index"
    if "layers" in document and "config" in document:
        return "manifest"
    return "unknown"


@dataclass(frozen=True)
class Platform:
    """An OCI platform: ``linux/arm64/v8``."""

    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


_MACHINE_ARCH = {
    "x86_64": ("amd64", ""),
    "amd64": ("amd64", ""),
    "aarch64": ("arm64", "v8"),
    "arm64": ("arm64", "v8"),
    "armv7l": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "i686": ("386", ""),
    "i386": ("386", ""),
    "ppc64le": ("ppc64le", ""),
    "s390x": ("s390x", ""),
    "riscv64": ("riscv64", ""),
}


def host_platform() -> Platform:
    arch, variant = _MACHINE_ARCH.get(_platform.machine(), (_platform.machine(), ""))
    return Platform("linux", arch, variant)


def _variants_for(wanted: Platform) -> list[str]:
    """Acceptable variants, best first (an armv7 host runs v6 and v5 images too)."""
    if wanted.architecture == "arm64":
        return ["v8", ""]
    if wanted.architecture == "arm":
        order = ["v8", "v7", "v6", "v5"]
        start = order.index(wanted.variant) if wanted.variant in order else 1
        return order[start:]
    return ["", wanted.variant] if wanted.variant else [""]


def select_manifest(index: dict[str, Any], wanted: Platform) -> dict[str, Any] | None:
    """The descriptor in ``index`` that runs on ``wanted`` (best variant first), if any."""
    candidates: list[tuple[int, int, dict[str, Any]]] = []
    variants = _variants_for(wanted)
    for position, desc in enumerate(index.get("manifests") or []):
        plat = desc.get("platform")
        if plat is None:
            # An index entry without a platform (rare; some single-arch indexes) is taken
            # only as the last resort.
            candidates.append((len(variants) + 1, position, desc))
            continue
        if plat.get("os") != wanted.os or plat.get("architecture") != wanted.architecture:
            continue
        variant = plat.get("variant", "")
        if variant in variants:
            candidates.append((variants.index(variant), position, desc))
        elif not variants or variant == wanted.variant:
            candidates.append((len(variants), position, desc))
    if not candidates:
        return None
    candidates.sort(key=lambda c: (c[0], c[1]))
    return candidates[0][2]
