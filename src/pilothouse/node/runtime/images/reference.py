"""Image references, parsed and normalised the way docker and containerd do it.

``busybox`` means ``docker.io/library/busybox:latest``; ``host:port/ns/name:tag@sha256:…``
names a repository on another registry, a tag and a digest. The grammar is the one
of the distribution project's ``reference`` package (lowercase path components
joined by ``.``, ``_``, ``__`` or dashes; a domain only when the first component has
a dot or a port, is ``localhost``, or has an uppercase letter).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

_PATH_RE = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
_DOMAIN_RE = re.compile(_DOMAIN)
_TAG_RE = re.compile(_TAG)
_DIGEST_RE = re.compile(_DIGEST)
_IDENTIFIER_RE = re.compile(r"[a-f0-9]{64}")
_HEX_RE = re.compile(r"[a-f0-9]+")


class ReferenceError_(ValueError):
    """A string is not a valid image reference (docker's wording in the message)."""


@dataclass(frozen=True)
class Reference:
    """A fully qualified image reference: ``domain/path[:tag][@digest]``."""

    domain: str
    path: str
    tag: str = ""
    digest: str = ""

    @property
    def name(self) -> str:
        """The repository: ``docker.io/library/busybox``."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_name(self) -> str:
        """The short form people type: ``busybox``, ``quay.io/x/y``."""
        if self.domain != DEFAULT_DOMAIN:
            return self.name
        return self.path.removeprefix(OFFICIAL_REPO_PREFIX)

    @property
    def object(self) -> str:
        """What to ask the registry for: the digest when there is one, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def with_tag(self, tag: str) -> Reference:
        return Reference(self.domain, self.path, tag, "")

    def with_digest(self, digest: str) -> Reference:
        return Reference(self.domain, self.path, "", digest)

    def __str__(self) -> str:
        out = self.name
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


def parse(text: str, *, default_tag: bool = True) -> Reference:
    """Parse and normalise ``text`` (docker's ParseNormalizedNamed + TagNameOnly).

    With ``default_tag`` a reference without tag and digest gets ``:latest``.
    """
    if _IDENTIFIER_RE.fullmatch(text):
        raise ReferenceError_(
            f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings"
        )
    if not text:
        raise ReferenceError_(
            "invalid reference format: repository name must have at least one component"
        )
    rest, _, digest = text.partition("@")
    # The tag separator is a colon after the last slash (a colon before it is a port).
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    tag = ""
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
        if not tag:
            raise ReferenceError_("invalid reference format")
    domain, path = _split_domain(rest)
    if path.lower() != path:
        raise ReferenceError_("invalid reference format: repository name must be lowercase")
    if not _PATH_RE.fullmatch(path) or not _DOMAIN_RE.fullmatch(domain):
        raise ReferenceError_("invalid reference format")
    if len(domain) + 1 + len(path) > NAME_TOTAL_LENGTH_MAX:
        raise ReferenceError_(
            f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters"
        )
    if tag and not _TAG_RE.fullmatch(tag):
        raise ReferenceError_("invalid reference format")
    if "@" in text:
        validate_digest(digest)
    if default_tag and not tag and not digest:
        tag = DEFAULT_TAG
    return Reference(domain, path, tag, digest)


def _split_domain(name: str) -> tuple[str, str]:
    first, sep, remainder = name.partition("/")
    if not sep or (
        not any(c in first for c in ".:") and first != "localhost" and first.lower() == first
    ):
        domain, remainder = DEFAULT_DOMAIN, name
    else:
        domain = first
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_REPO_PREFIX + remainder
    return domain, remainder


def validate_digest(digest: str) -> str:
    """Check ``algorithm:hex``; sha256 (the only one pulled) must have 64 lowercase hex digits."""
    if not _DIGEST_RE.fullmatch(digest):
        raise ReferenceError_("invalid reference format")
    algorithm, _, hexpart = digest.partition(":")
    if algorithm == "sha256" and (len(hexpart) != 64 or not _HEX_RE.fullmatch(hexpart)):
        raise ReferenceError_(f"invalid checksum digest length or format: {digest}")
    if algorithm not in ("sha256", "sha512"):
        raise ReferenceError_(f"unsupported digest algorithm: {digest}")
    return digest


def looks_like_id(text: str) -> bool:
    """True for ``sha256:<hex>`` or a bare hex string (a full or short image id)."""
    hexpart = text.removeprefix("sha256:")
    return bool(_HEX_RE.fullmatch(hexpart)) and len(hexpart) <= 64


def is_loopback(domain: str) -> bool:
    """Registries on this machine speak plain http unless told otherwise (as containerd)."""
    if domain.startswith("["):
        host = domain[1 : domain.find("]")]
    else:
        host = domain.partition(":")[0]
    return host in ("localhost", "::1") or host.startswith("127.")


def registry_host(domain: str) -> str:
    """The host serving the v2 API for ``domain`` (Docker Hub's differs from its name)."""
    return "registry-1.docker.io" if domain == DEFAULT_DOMAIN else domain
