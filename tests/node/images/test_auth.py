"""imagePullSecrets to credentials, credential matching, and WWW-Authenticate parsing."""

from __future__ import annotations

import base64
import json

import pytest

from pilothouse.node.runtime import protocol
from pilothouse.node.runtime.images import auth, auth_from_dockerconfig, reference


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_dockerconfigjson_as_the_api_serves_it() -> None:
    config = {
        "auths": {
            "https://index.docker.io/v1/": {"auth": b64("hubuser:hubpass")},
            "registry.example.com:5000": {"username": "u", "password": "p:with:colons"},
            "http://plain.example.com/v2/": {"auth": b64("a:b:c")},
            "ghcr.io": {"identitytoken": "refresh-me"},
            "empty.example.com": {},
        }
    }
    creds = auth_from_dockerconfig({".dockerconfigjson": b64(json.dumps(config))})
    assert creds == [
        protocol.RegistryAuth("docker.io", "hubuser", "hubpass"),
        protocol.RegistryAuth("registry.example.com:5000", "u", "p:with:colons"),
        protocol.RegistryAuth("plain.example.com", "a", "b:c"),
        protocol.RegistryAuth("ghcr.io", token="refresh-me"),
    ]


def test_legacy_dockercfg_and_plain_values() -> None:
    legacy = {"quay.io": {"auth": b64("q:r"), "email": "x@example.com"}}
    assert auth_from_dockerconfig({".dockercfg": json.dumps(legacy)}) == [
        protocol.RegistryAuth("quay.io", "q", "r")
    ]
    # stringData-style (not base64) and bytes values work too
    raw = json.dumps({"auths": {"h.io": {"username": "a", "password": "b"}}}).encode()
    assert auth_from_dockerconfig({".dockerconfigjson": raw}) == [
        protocol.RegistryAuth("h.io", "a", "b")
    ]


@pytest.mark.parametrize(
    "data",
    [
        {},
        {".dockerconfigjson": "!!!not base64"},
        {".dockerconfigjson": b64("[1, 2]")},
        {"other": "x"},
    ],
)
def test_unreadable_secrets_give_nothing(data: dict[str, str]) -> None:
    assert auth_from_dockerconfig(data) == []


@pytest.mark.parametrize(
    ("server", "key"),
    [
        ("https://index.docker.io/v1/", "docker.io"),
        ("registry-1.docker.io", "docker.io"),
        ("HTTPS://Registry.Example.com:5000/v2/team/", "registry.example.com:5000/team"),
        ("example.com/ns", "example.com/ns"),
    ],
)
def test_normalize_registry(server: str, key: str) -> None:
    assert auth.normalize_registry(server) == key


def _cred(registry: str) -> protocol.RegistryAuth:
    return protocol.RegistryAuth(registry, "u-" + registry, "p")


def test_matching_picks_host_port_path_and_wildcards_most_specific_first() -> None:
    creds = [
        _cred("*.example.com"),
        _cred("registry.example.com"),
        _cred("registry.example.com/team"),
        _cred("registry.example.com:5000"),
        _cred("other.io"),
        _cred("https://index.docker.io/v1/"),
    ]
    ref = reference.parse("registry.example.com/team/app:1")
    assert [c.registry for c in auth.matching(creds, ref)] == [
        "registry.example.com/team",
        "registry.example.com",
        "*.example.com",
    ]
    assert [
        c.registry for c in auth.matching(creds, reference.parse("registry.example.com/other"))
    ] == [
        "registry.example.com",
        "*.example.com",
    ]
    assert [
        c.registry for c in auth.matching(creds, reference.parse("registry.example.com:5000/x"))
    ] == ["registry.example.com:5000"]
    assert [c.registry for c in auth.matching(creds, reference.parse("busybox"))] == [
        "https://index.docker.io/v1/"
    ]
    # a wildcard covers one label only
    assert auth.matching(creds, reference.parse("a.b.example.com/x")) == []


@pytest.mark.parametrize(
    ("header", "scheme", "params"),
    [
        (
            'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
            'scope="repository:library/busybox:pull"',
            "bearer",
            {
                "realm": "https://auth.docker.io/token",
                "service": "registry.docker.io",
                "scope": "repository:library/busybox:pull",
            },
        ),
        (
            'Bearer realm="http://h/token", scope="repository:a/b:pull,push",error="insufficient_scope"',
            "bearer",
            {
                "realm": "http://h/token",
                "scope": "repository:a/b:pull,push",
                "error": "insufficient_scope",
            },
        ),
        ('Basic realm="Registry Realm"', "basic", {"realm": "Registry Realm"}),
        ("Basic realm=plain, charset=UTF-8", "basic", {"realm": "plain", "charset": "UTF-8"}),
        ('Bearer realm="with \\"quote\\""', "bearer", {"realm": 'with "quote"'}),
        ("", "", {}),
    ],
)
def test_parse_challenge(header: str, scheme: str, params: dict[str, str]) -> None:
    assert auth.parse_challenge(header) == (scheme, params)
