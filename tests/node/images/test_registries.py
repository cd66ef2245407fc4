"""registries.yaml (k3s' format): parsing, endpoint order, rewrites, reloads — and pulls
through mirrors of a real registry on 127.0.0.1 (Debian's docker-registry).

No request ever leaves the machine: the registries pulled "from" are loopback ones, so
even their default endpoints are local.
"""

from __future__ import annotations

import base64
import os
import socket
from pathlib import Path
from typing import Any

import pytest

from pilothouse.node.runtime import protocol
from pilothouse.node.runtime.images import reference, registries, store

LocalRegistry = Any  # tests/node/conftest.py


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens once the socket is closed


def endpoints(text: str, image: str, **kw: Any) -> list[tuple[str, str, bool]]:
    config = registries.parse(text)
    return [
        (e.api_root, e.repository, e.mirror) for e in config.endpoints(reference.parse(image), **kw)
    ]


# --- parsing and endpoint order -------------------------------------------------------------
def test_mirrors_come_first_then_the_registry_itself() -> None:
    text = """
mirrors:
  docker.io:
    endpoint:
      - "http://127.0.0.1:5000"
      - "mirror.example.com:8443/cache/v2/"
"""
    assert endpoints(text, "busybox") == [
        ("http://127.0.0.1:5000/v2", "library/busybox", True),
        ("https://mirror.example.com:8443/cache/v2", "library/busybox", True),
        ("https://registry-1.docker.io/v2", "library/busybox", False),
    ]
    # k3s' --disable-default-registry-endpoint: mirrored registries use mirrors only
    assert [e[0] for e in endpoints(text, "busybox", default_endpoint=False)] == [
        "http://127.0.0.1:5000/v2",
        "https://mirror.example.com:8443/cache/v2",
    ]
    # ... and a registry without mirrors keeps its own endpoint
    assert endpoints(text, "quay.io/a/b", default_endpoint=False) == [
        ("https://quay.io/v2", "a/b", False)
    ]


def test_wildcard_mirrors_every_registry_without_its_own_entry() -> None:
    text = """
mirrors:
  "*":
    endpoint: ["https://cache.example"]
  ghcr.io:
    endpoint: ["https://ghcr-cache.example"]
"""
    assert [e[0] for e in endpoints(text, "quay.io/x/y")] == [
        "https://cache.example/v2",
        "https://quay.io/v2",
    ]
    assert [e[0] for e in endpoints(text, "ghcr.io/x/y")] == [
        "https://ghcr-cache.example/v2",
        "https://ghcr.io/v2",
    ]


def test_rewrites_apply_to_mirrors_only_first_match_wins() -> None:
    text = r"""
mirrors:
  docker.io:
    endpoint: ["https://mirror.example"]
    rewrite:
      "^myorg/(.*)": "mirror/$1"
      "^(.*)$": "everything/${1}"
"""
    assert endpoints(text, "myorg/app:v1") == [
        ("https://mirror.example/v2", "mirror/app", True),
        ("https://registry-1.docker.io/v2", "myorg/app", False),
    ]
    assert endpoints(text, "busybox")[0][1] == "everything/library/busybox"


def test_a_registry_listed_as_its_own_endpoint_sets_how_it_is_reached() -> None:
    # k3s' way to pull from a registry without TLS: mirror it to itself over http
    text = 'mirrors:\n  "registry.lan:5000":\n    endpoint: ["http://registry.lan:5000"]\n'
    assert endpoints(text, "registry.lan:5000/team/app") == [
        ("http://registry.lan:5000/v2", "team/app", False)
    ]


def test_docker_hub_aliases_and_configs() -> None:
    config = registries.parse(
        f"""
mirrors:
  index.docker.io:
    endpoint: ["https://m.example"]
configs:
  "m.example":
    auth:
      auth: {base64.b64encode(b"alice:secret").decode()}
    tls:
      ca_file: /etc/ca.pem
      insecure_skip_verify: true
  "*":
    auth: {{username: bob, password: pw, identity_token: tok}}
"""
    )
    first, default = config.endpoints(reference.parse("busybox"))
    assert first.api_root == "https://m.example/v2"
    assert first.config.auth is not None
    assert (first.config.auth.username, first.config.auth.password) == ("alice", "secret")
    assert first.config.tls == registries.TLSConfig(
        ca_file="/etc/ca.pem", insecure_skip_verify=True
    )
    assert default.config.auth is not None and default.config.auth.username == "bob"
    assert default.config.auth.token == "tok"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mirrors:\n  docker.io:\n    endpoint: [\n", "registries.yaml:4:1"),
        ("mirrors: [a, b]\n", "mirrors: expected a mapping, got a list"),
        (
            'mirrors:\n  docker.io:\n    endpoint: ["ftp://x"]\n',
            "mirrors['docker.io'].endpoint[0]: 'ftp://x': unsupported scheme 'ftp' (use http or https)",
        ),
        (
            'mirrors:\n  docker.io:\n    endpoint: "x"\n    rewrite: {"(": "y"}\n',
            "mirrors['docker.io'].rewrite['(']: invalid regular expression",
        ),
        (
            'mirrors:\n  docker.io:\n    rewrite: {"^a": "$2"}\n',
            "mirrors['docker.io'].rewrite['^a']: replacement '$2'",
        ),
        (
            "configs:\n  h:\n    tls: {insecure_skip_verify: maybe}\n",
            "configs['h'].tls.insecure_skip_verify: expected true or false, got 'maybe'",
        ),
        ("configs:\n  h:\n    auth: {auth: '***'}\n", "not base64 of username:password"),
        ("configs:\n  h:\n    tls: {cert_file: /c}\n", "cert_file and key_file go together"),
    ],
)
def test_bad_files_say_where(text: str, message: str) -> None:
    with pytest.raises(registries.RegistriesError) as err:
        registries.parse(text)
    assert message in str(err.value)


def test_unknown_keys_are_warnings_not_silence() -> None:
    config = registries.parse("mirrors:\n  docker.io:\n    endpoints: [x]\nmirror: {}\n")
    assert config.mirrors["docker.io"].endpoints == ()
    assert any("unknown key 'endpoints'" in w for w in config.warnings)
    assert any("unknown key 'mirror'" in w for w in config.warnings)


def test_the_file_is_reloaded_and_a_broken_edit_keeps_the_last_good(tmp_path: Path) -> None:
    path = tmp_path / "registries.yaml"
    errors: list[str] = []
    files = registries.RegistriesFile(path, on_error=errors.append)
    assert files.current().mirrors == {}  # no file: no mirrors
    path.write_text('mirrors:\n  docker.io:\n    endpoint: ["http://127.0.0.1:1"]\n')
    assert files.current().mirrors["docker.io"].endpoints == ("http://127.0.0.1:1/v2",)
    path.write_text("mirrors:\n  docker.io: [\n")
    kept = files.current()
    assert kept.mirrors["docker.io"].endpoints == ("http://127.0.0.1:1/v2",)
    assert len(errors) == 1 and f"cannot use {path}: {path}:3:1" in errors[0]
    assert "keeping the previous registry configuration" in errors[0]
    files.current()
    assert len(errors) == 1, "a problem is reported once, not on every pull"
    path.write_text('mirrors:\n  docker.io:\n    endpoint: ["http://127.0.0.1:2"]\n')
    os.utime(path, ns=(1, 1))  # a different stamp even within one clock tick
    assert files.current().mirrors["docker.io"].endpoints == ("http://127.0.0.1:2/v2",)
    assert files.error == ""


# --- pulls through mirrors --------------------------------------------------------------------
def mirrored_store(tmp_path: Path, text: str, **kw: Any) -> store.ImageStore:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "registries.yaml"
    path.write_text(text)
    return store.ImageStore(tmp_path / "images", registries=registries.RegistriesFile(path, **kw))


async def test_pull_through_a_mirror_names_the_image_as_asked(
    local_registry: LocalRegistry, tmp_path: Path
) -> None:
    # "fake.registry:1" does not exist: every byte must come from the mirror
    images = mirrored_store(
        tmp_path,
        f'mirrors:\n  "127.0.0.1:{closed_port()}":\n'
        f'    endpoint: ["http://{local_registry.host}"]\n',
    )
    ref = f"127.0.0.1:{closed_port()}/library/busybox:1.36"
    # the wildcard covers it too; here the entry is for another port, so it fails first
    with pytest.raises(protocol.ImagePullError):
        await images.pull(ref)
    images = mirrored_store(
        tmp_path / "2", f'mirrors:\n  "*":\n    endpoint: ["http://{local_registry.host}"]\n'
    )
    image = await images.pull(ref)
    assert image.repo_tags == (ref,)
    assert image.repo_digests[0].endswith(local_registry.busybox_digest)
    assert (image.layers[0] / "bin/busybox").is_file()


async def test_mirror_down_then_the_next_mirror(
    local_registry: LocalRegistry, tmp_path: Path
) -> None:
    down = closed_port()
    images = mirrored_store(
        tmp_path,
        f'mirrors:\n  "*":\n    endpoint: ["http://127.0.0.1:{down}", '
        f'"http://{local_registry.host}"]\n',
        default_endpoint=False,
    )
    image = await images.pull(f"127.0.0.1:{closed_port()}/library/busybox:1.36")
    assert (image.layers[0] / "bin/busybox").is_file()


async def test_rewrite_pulls_myorg_app_from_mirror_app(
    local_registry: LocalRegistry, busybox_layout: Path, tmp_path: Path
) -> None:
    await local_registry.push(busybox_layout, "mirror/app:v1")
    images = mirrored_store(
        tmp_path,
        f'mirrors:\n  "*":\n    endpoint: ["http://{local_registry.host}"]\n'
        '    rewrite:\n      "^myorg/(.*)": "mirror/$1"\n',
        default_endpoint=False,
    )
    registry = f"127.0.0.1:{closed_port()}"
    image = await images.pull(f"{registry}/myorg/app:v1")
    assert image.repo_tags == (f"{registry}/myorg/app:v1",)


async def test_every_endpoint_tried_is_named_with_its_answer(
    local_registry: LocalRegistry, tmp_path: Path
) -> None:
    down = closed_port()
    registry = f"127.0.0.1:{closed_port()}"
    images = mirrored_store(
        tmp_path,
        f'mirrors:\n  "{registry}":\n    endpoint: ["http://127.0.0.1:{down}", '
        f'"http://{local_registry.host}"]\n',
    )
    with pytest.raises(protocol.ImagePullError) as err:
        await images.pull(f"{registry}/library/nothing-here:1")
    message = err.value.message
    assert message.startswith(
        f'failed to pull and unpack image "{registry}/library/nothing-here:1": failed to resolve '
        f'reference "{registry}/library/nothing-here:1": no endpoint could serve it, tried 3: '
    )
    assert f"[1] mirror http://127.0.0.1:{down}/v2: failed to do request: Get " in message
    assert f"[2] mirror http://{local_registry.host}/v2: failed to resolve reference" in message
    assert "not found" in message
    assert f"[3] default endpoint http://{registry}/v2: failed to do request" in message


async def test_credentials_per_endpoint_and_401_named(
    htpasswd_registry: LocalRegistry, tmp_path: Path
) -> None:
    registry = f"127.0.0.1:{closed_port()}"
    mirror = f'mirrors:\n  "*":\n    endpoint: ["http://{htpasswd_registry.host}"]\n'
    images = mirrored_store(tmp_path, mirror, default_endpoint=False)
    with pytest.raises(protocol.ImagePullError) as err:
        await images.pull(f"{registry}/library/busybox:1.36")
    assert "401 Unauthorized" in err.value.message or "authorization" in err.value.message
    assert err.value.reason == "ErrImagePull"
    wrong = mirrored_store(
        tmp_path / "wrong",
        mirror + f'configs:\n  "{htpasswd_registry.host}":\n'
        "    auth: {username: alice, password: nope}\n",
        default_endpoint=False,
    )
    with pytest.raises(protocol.ImagePullError, match="401"):
        await wrong.pull(f"{registry}/library/busybox:1.36")
    right = mirrored_store(
        tmp_path / "right",
        mirror + f'configs:\n  "{htpasswd_registry.host}":\n'
        "    auth: {username: alice, password: wonderland}\n",
        default_endpoint=False,
    )
    image = await right.pull(f"{registry}/library/busybox:1.36")
    assert (image.layers[0] / "bin/busybox").is_file()
