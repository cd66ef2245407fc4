"""Image references parse and normalise exactly as docker's reference package does."""

from __future__ import annotations

import pytest

from pilothouse.node.runtime.images import reference

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "domain", "path", "tag", "digest"),
    [
        ("busybox", "docker.io", "library/busybox", "latest", ""),
        ("busybox:1.36", "docker.io", "library/busybox", "1.36", ""),
        ("library/busybox", "docker.io", "library/busybox", "latest", ""),
        ("docker.io/busybox", "docker.io", "library/busybox", "latest", ""),
        ("index.docker.io/library/busybox:1", "docker.io", "library/busybox", "1", ""),
        ("myuser/app", "docker.io", "myuser/app", "latest", ""),
        ("a/b/c/d:tag", "docker.io", "a/b/c/d", "tag", ""),
        ("quay.io/coreos/etcd:v3.5.0", "quay.io", "coreos/etcd", "v3.5.0", ""),
        ("registry.k8s.io/pause:3.10", "registry.k8s.io", "pause", "3.10", ""),
        ("localhost/app", "localhost", "app", "latest", ""),
        ("localhost:5000/app:v1", "localhost:5000", "app", "v1", ""),
        (f"127.0.0.1:5000/ns/name:tag@{DIGEST}", "127.0.0.1:5000", "ns/name", "tag", DIGEST),
        (f"busybox@{DIGEST}", "docker.io", "library/busybox", "", DIGEST),
        ("[::1]:5000/app", "[::1]:5000", "app", "latest", ""),
        ("Example.com/app", "Example.com", "app", "latest", ""),  # uppercase: a domain
        ("UPPER/app", "UPPER", "app", "latest", ""),
        ("my-app__x_y/sub--z.a", "docker.io", "my-app__x_y/sub--z.a", "latest", ""),
        ("my-app.x/y", "my-app.x", "y", "latest", ""),  # a dot: a domain
        ("host.example:443/a_b/c:V_1.x-y", "host.example:443", "a_b/c", "V_1.x-y", ""),
    ],
)
def test_parse(text: str, domain: str, path: str, tag: str, digest: str) -> None:
    ref = reference.parse(text)
    assert (ref.domain, ref.path, ref.tag, ref.digest) == (domain, path, tag, digest)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Busybox", "repository name must be lowercase"),
        ("docker.io/Library/busybox", "repository name must be lowercase"),
        ("", "invalid reference format"),
        ("busybox:", "invalid reference format"),
        (":tag", "invalid reference format"),
        ("-leading", "invalid reference format"),
        ("busybox:tag with space", "invalid reference format"),
        ("a//b", "invalid reference format"),
        ("bad_host.com:8080/x", "invalid reference format"),
        ("ab" * 32, "cannot specify 64-byte hexadecimal strings"),
        ("busybox@sha256:abc", "invalid reference format"),
        ("busybox@sha256:" + "a" * 40, "invalid checksum digest"),
        ("busybox@sha256:" + "A" * 64, "invalid checksum digest"),
        ("busybox@md5:" + "a" * 32, "unsupported digest algorithm"),
        ("x" * 256, "must not be more than 255 characters"),
        ("busybox:" + "t" * 129, "invalid reference format"),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(reference.ReferenceError_, match=message):
        reference.parse(text)


def test_without_default_tag() -> None:
    ref = reference.parse("busybox", default_tag=False)
    assert ref.tag == "" and str(ref) == "docker.io/library/busybox"


@pytest.mark.parametrize(
    ("text", "familiar", "full"),
    [
        ("busybox", "busybox", "docker.io/library/busybox:latest"),
        ("user/app:1", "user/app", "docker.io/user/app:1"),
        ("quay.io/x/y", "quay.io/x/y", "quay.io/x/y:latest"),
        (f"b@{DIGEST}", "b", f"docker.io/library/b@{DIGEST}"),
    ],
)
def test_names(text: str, familiar: str, full: str) -> None:
    ref = reference.parse(text)
    assert ref.familiar_name == familiar
    assert str(ref) == full


def test_object_prefers_digest() -> None:
    ref = reference.parse(f"busybox:1.36@{DIGEST}")
    assert ref.object == DIGEST
    assert str(ref.with_tag("1.36")) == "docker.io/library/busybox:1.36"
    assert str(ref.with_digest(DIGEST)) == f"docker.io/library/busybox@{DIGEST}"


@pytest.mark.parametrize(
    ("domain", "loopback"),
    [
        ("127.0.0.1:5000", True),
        ("127.1.2.3", True),
        ("localhost", True),
        ("localhost:5000", True),
        ("[::1]:5000", True),
        ("example.com", False),
        ("10.0.0.1:5000", False),
        ("localhost.example.com", False),
    ],
)
def test_is_loopback(domain: str, loopback: bool) -> None:
    assert reference.is_loopback(domain) is loopback


def test_registry_host() -> None:
    assert reference.registry_host("docker.io") == "registry-1.docker.io"
    assert reference.registry_host("quay.io") == "quay.io"


@pytest.mark.parametrize(
    ("text", "is_id"),
    [("sha256:" + "a" * 64, True), ("3e9e01986", True), ("busybox", False), ("a" * 65, False)],
)
def test_looks_like_id(text: str, is_id: bool) -> None:
    assert reference.looks_like_id(text) is is_id
