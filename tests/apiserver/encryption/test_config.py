"""EncryptionConfiguration: upstream's file, validation wording and resource matching."""

from __future__ import annotations

import base64
import pathlib
from typing import Any

import pytest

from pilothouse.api import resources
from pilothouse.apiserver.encryption import config

K32 = base64.b64encode(bytes(range(32))).decode()
K16 = base64.b64encode(bytes(range(16))).decode()


def doc(*entries: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "EncryptionConfiguration",
        "resources": list(entries),
    }


def aescbc(name: str = "key1", secret: str = K32) -> dict[str, Any]:
    return {"aescbc": {"keys": [{"name": name, "secret": secret}]}}


def test_the_documented_example_loads(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "enc.yaml"
    path.write_text(
        f"""\
apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources:
      - secrets
      - configmaps
    providers:
      - aesgcm:
          keys:
            - name: key1
              secret: {K16}
      - secretbox:
          keys:
            - name: key2
              secret: {K32}
      - identity: {{}}
  - resources:
      - '*.apps'
    providers:
      - aescbc:
          keys:
            - name: key3
              secret: {K32}
"""
    )
    loaded = config.load(path)
    secrets = loaded.providers_for("", "secrets")
    assert secrets is not None
    assert [p.kind for p in secrets] == ["aesgcm", "secretbox", "identity"]
    routes = loaded.transformers(resources.DEFAULT)
    assert set(routes) >= {
        "/registry/secrets/",
        "/registry/configmaps/",
        "/registry/apps/deployments/",
    }
    assert "/registry/pods/" not in routes
    first = routes["/registry/secrets/"].writer
    assert first.prefix == b"k8s:enc:aesgcm:v1:key1:"


def test_matching_prefers_exact_then_group_wildcard_then_everything() -> None:
    loaded = config.parse(
        doc(
            {"resources": ["*.*"], "providers": [aescbc("all")]},
            {"resources": ["*.apps"], "providers": [aescbc("apps")]},
            {"resources": ["deployments.apps", "secrets"], "providers": [aescbc("exact")]},
            {"resources": ["secrets"], "providers": [aescbc("later")]},
        )
    )

    def key(group: str, resource: str) -> str:
        found = loaded.providers_for(group, resource)
        assert found is not None
        return found[0].keys[0].name

    assert key("apps", "deployments") == "exact"
    assert key("apps", "statefulsets") == "apps"
    assert key("", "pods") == "all"
    assert key("", "secrets") == "exact"  # the first list naming it wins


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (doc(), "resources: Required value: at least one resources is required"),
        (
            doc({"resources": ["secrets"], "providers": []}),
            "resources[0].providers: Required value: at least one resources[0].providers is required",
        ),
        (
            doc({"resources": ["secrets"], "providers": [aescbc(secret="bm90IGEga2V5")]}),
            'resources[0].providers[0].aescbc.keys[0].secret: Invalid value: "REDACTED": secret is'
            " not of the expected length, got 9, expected one of [16 24 32]",
        ),
        (
            doc({"resources": ["secrets"], "providers": [aescbc(secret="%%%")]}),
            "secrets must be base64 encoded",
        ),
        (
            doc({"resources": ["secrets"], "providers": [aescbc(name="")]}),
            "resources[0].providers[0].aescbc.keys[0].name: Required value: name is a mandatory"
            " field for a key",
        ),
        (
            doc(
                {
                    "resources": ["secrets"],
                    "providers": [{"secretbox": {"keys": [{"name": "k", "secret": K16}]}}],
                }
            ),
            "expected one of [32]",
        ),
        (
            doc({"resources": ["secrets", "*."], "providers": [aescbc()]}),
            "using overlapping resources such as 'secrets' and '*.' in the same resource list is"
            " not allowed as they will be masked",
        ),
        (
            doc({"resources": ["secrets", "secrets"], "providers": [aescbc()]}),
            "the same resource cannot be specified multiple times",
        ),
        (
            doc({"resources": ["Secrets"], "providers": [aescbc()]}),
            'resources[0].resources[0]: Invalid value: "Secrets": resource name should not'
            " contain capital letters",
        ),
        (doc({"resources": ["*"], "providers": [aescbc()]}), "use '*.' to encrypt all"),
        (
            doc({"resources": ["events.events.k8s.io"], "providers": [aescbc()]}),
            "Use 'events' instead in the config file",
        ),
        (
            doc({"resources": ["secrets.*"], "providers": [aescbc()]}),
            "encrypting the same resource across groups is not supported",
        ),
        (
            doc(
                {
                    "resources": ["secrets"],
                    "providers": [{"aescbc": aescbc()["aescbc"], "identity": {}}],
                }
            ),
            "more than one provider specified in a single element",
        ),
        (
            doc({"resources": ["secrets"], "providers": [{"identiy": {}}]}),
            'strict decoding error: unknown field "resources[0].providers[0].identiy"',
        ),
        (
            {"apiVersion": "v1", "kind": "ConfigMap"},
            'expected apiVersion "apiserver.config.k8s.io/v1" and kind "EncryptionConfiguration"',
        ),
        (
            doc(
                {
                    "resources": ["secrets"],
                    "providers": [{"kms": {"name": "vault", "endpoint": "unix:///kms.sock"}}],
                }
            ),
            "KMS providers need a KMS plugin, which pilothouse does not run",
        ),
    ],
)
def test_bad_files_are_refused_with_upstreams_words(document: Any, message: str) -> None:
    with pytest.raises(config.ConfigError) as info:
        config.parse(document)
    assert message in str(info.value)


def test_unreadable_or_broken_files_say_which_file(tmp_path: pathlib.Path) -> None:
    with pytest.raises(config.ConfigError, match="error reading encryption provider configuration"):
        config.load(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("resources: [\n")
    with pytest.raises(config.ConfigError, match=f"error while parsing file '{broken}'"):
        config.load(broken)


def test_dump_round_trips() -> None:
    original = config.parse(
        doc({"resources": ["secrets"], "providers": [aescbc(), {"identity": {}}]})
    )
    assert config.parse(config.dump(original)) == original
