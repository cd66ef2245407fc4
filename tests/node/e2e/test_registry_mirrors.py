"""Registry mirrors with real pods: `kubectl run t --image=busybox` on a machine without
docker.io, pulled through a docker.io mirror (Debian's docker-registry on 127.0.0.1);
the mirror down and a second one listed; a rewrite; the file edited while the node runs;
a broken edit; wrong credentials named in the pod's events.

The server runs with ``--disable-default-registry-endpoint`` (k3s' air-gapped mode): no
pull may fall back to docker.io itself, so nothing here leaves the machine.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from .realcluster import Cluster

pytestmark = [pytest.mark.root, pytest.mark.containers, pytest.mark.netns, pytest.mark.kubectl]


def server_args(tmp: Path, registry: Any) -> list[str]:
    path = tmp / "registries.yaml"
    path.write_text(mirror_file([f"http://{registry.host}"]))
    return ["--private-registry", str(path), "--disable-default-registry-endpoint"]


def mirror_file(endpoints: list[str], extra: str = "") -> str:
    quoted = ", ".join(f'"{e}"' for e in endpoints)
    return f"mirrors:\n  docker.io:\n    endpoint: [{quoted}]\n{extra}"


def registries_yaml(cluster: Cluster) -> Path:
    return cluster.srv.data_dir.parent / "registries.yaml"


def write(path: Path, text: str) -> None:
    """Replace the file in one rename, with a new inode: the agent sees a change at once."""
    tmp = path.with_name(path.name + ".new")
    tmp.write_text(text)
    os.replace(tmp, path)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module", autouse=True)
def images_in_the_mirror(local_registry: Any, busybox_layout: Path) -> None:
    asyncio.run(local_registry.push(busybox_layout, "library/busybox:latest"))
    asyncio.run(local_registry.push(busybox_layout, "mirror/app:v1"))


def run(cluster: Cluster, ns: str, name: str, image: str) -> None:
    cluster.kubectl(
        "-n", ns, "run", name, f"--image={image}",
        '--overrides={"spec":{"terminationGracePeriodSeconds":1}}', "--", "sleep", "3600",
    )  # fmt: skip


def pod_events(cluster: Cluster, ns: str, name: str) -> list[dict[str, Any]]:
    out = cluster.kubectl(
        "-n", ns, "get", "events", "--field-selector", f"involvedObject.name={name}", "-o", "json"
    )  # fmt: skip
    items: list[dict[str, Any]] = json.loads(out.stdout)["items"]
    return items


def test_busybox_runs_through_a_docker_io_mirror(cluster: Cluster, ns: str) -> None:
    run(cluster, ns, "t", "busybox")  # no tag: :latest, pull policy Always
    pod = cluster.running(ns, "t")
    assert pod["spec"]["containers"][0]["imagePullPolicy"] == "Always"
    reasons = [(e["reason"], e["message"]) for e in pod_events(cluster, ns, "t")]
    assert ("Pulling", 'Pulling image "busybox"') in reasons
    assert any(
        r == "Pulled" and m.startswith('Successfully pulled image "busybox"') for r, m in reasons
    )


def test_mirror_down_then_the_second_mirror(cluster: Cluster, ns: str, local_registry: Any) -> None:
    write(
        registries_yaml(cluster),
        mirror_file([f"http://127.0.0.1:{closed_port()}", f"http://{local_registry.host}"]),
    )
    run(cluster, ns, "t2", "busybox")
    cluster.running(ns, "t2")


def test_rewrite_pulls_myorg_app_from_mirror_app(
    cluster: Cluster, ns: str, local_registry: Any
) -> None:
    write(
        registries_yaml(cluster),
        mirror_file(
            [f"http://{local_registry.host}"], '    rewrite:\n      "^myorg/(.*)": "mirror/$1"\n'
        ),
    )
    run(cluster, ns, "app", "myorg/app:v1")  # the registry has mirror/app, no myorg/app
    pod = cluster.running(ns, "app")
    image_id = pod["status"]["containerStatuses"][0]["imageID"]
    assert image_id, "the image it runs is known"


def test_a_broken_file_keeps_the_last_good_and_says_where(
    cluster: Cluster, ns: str, local_registry: Any
) -> None:
    path = registries_yaml(cluster)
    write(path, mirror_file([f"http://{local_registry.host}"]))
    run(cluster, ns, "before", "busybox")
    cluster.running(ns, "before")
    write(path, "mirrors:\n  docker.io:\n    endpoint: [\n")
    run(cluster, ns, "after", "busybox")  # the pull re-reads the file: broken, last good kept
    cluster.running(ns, "after")

    def reported() -> list[dict[str, Any]]:
        out = cluster.kubectl(
            "-n", "default", "get", "events", "--field-selector",
            "involvedObject.kind=Node,reason=InvalidRegistryConfiguration", "-o", "json",
        )  # fmt: skip
        items: list[dict[str, Any]] = json.loads(out.stdout)["items"]
        return items

    events = cluster.wait(reported, timeout=30, what="a node event about the broken file")
    message = events[-1]["message"]
    assert f"cannot use {path}: {path}:4:1:" in message, message
    assert "keeping the previous registry configuration" in message
    assert events[-1]["type"] == "Warning"
    write(path, mirror_file([f"http://{local_registry.host}"]))


def test_wrong_credentials_name_the_endpoint_and_its_401(
    cluster: Cluster, ns: str, htpasswd_registry: Any
) -> None:
    path = registries_yaml(cluster)
    secure = f"http://{htpasswd_registry.host}"

    def config(password: str) -> str:
        return (
            f'mirrors:\n  "secure.example":\n    endpoint: ["{secure}"]\n'
            f'configs:\n  "{htpasswd_registry.host}":\n'
            f"    auth: {{username: alice, password: {password}}}\n"
        )

    write(path, config("wrong"))
    image = "secure.example/library/busybox:1.36"
    run(cluster, ns, "s", image)

    def failed() -> str:
        for e in pod_events(cluster, ns, "s"):
            if e["reason"] == "Failed" and "Failed to pull image" in e["message"]:
                return str(e["message"])
        return ""

    message = cluster.wait(failed, timeout=60, what="the pull to fail")
    assert message.startswith(f'Failed to pull image "{image}": failed to pull and unpack image ')
    assert f"[1] mirror {secure}/v2: " in message, message
    assert f"401 Unauthorized from GET {secure}/v2/library/busybox/manifests/1.36" in message
    waiting = cluster.pod(ns, "s")["status"]["containerStatuses"][0]["state"]["waiting"]
    assert waiting["reason"] in ("ErrImagePull", "ImagePullBackOff")
    # the right password, and the next attempt (after the back-off) pulls and runs it
    write(path, config("wonderland"))
    started = time.monotonic()
    cluster.running(ns, "s", timeout=90)
    assert time.monotonic() - started < 90
