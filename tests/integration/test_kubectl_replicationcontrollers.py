"""ReplicationControllers through the real kubectl: discovery, the upstream
table, ``scale rc`` on the scale subresource, ``describe rc`` and ``delete rc``,
on a server that runs the controllers (pods stay Pending: no node)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.kubectl

RC = """\
apiVersion: v1
kind: ReplicationController
metadata:
  name: web
spec:
  replicas: 2
  template:
    metadata:
      labels: {app: web, tier: fe}
    spec:
      containers:
      - name: web
        image: busybox:1.36
        command: [httpd, -f, -p, "8080"]
"""


def _wait(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def test_kubectl_knows_rc(cluster_kubectl) -> None:
    out = cluster_kubectl("api-resources", "--api-group=", "--no-headers").stdout
    row = next(
        line.split() for line in out.splitlines() if line.startswith("replicationcontrollers")
    )
    assert row == ["replicationcontrollers", "rc", "v1", "true", "ReplicationController"]
    explained = cluster_kubectl("explain", "rc.spec.selector").stdout
    assert "<map[string]string>" in explained


def test_get_scale_describe_and_delete_rc(
    cluster_kubectl, cluster_namespace: str, tmp_path: Path
) -> None:
    k, ns = cluster_kubectl, cluster_namespace
    manifest = tmp_path / "rc.yaml"
    manifest.write_text(RC)
    assert k("apply", "-n", ns, "-f", str(manifest)).stdout.strip() == (
        "replicationcontroller/web created"
    )

    def pods() -> list[str]:
        out = k("get", "pods", "-n", ns, "-l", "app=web", "-o", "name").stdout
        return out.split()

    assert len(_wait(lambda: len(pods()) == 2 and pods())) == 2
    table = k("get", "rc", "-n", ns).stdout.splitlines()
    assert table[0].split() == ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
    assert table[1].split()[:4] == ["web", "2", "2", "0"]
    wide = k("get", "rc", "web", "-n", ns, "-o", "wide").stdout.splitlines()
    assert wide[0].split() == [
        "NAME",
        "DESIRED",
        "CURRENT",
        "READY",
        "AGE",
        "CONTAINERS",
        "IMAGES",
        "SELECTOR",
    ]
    assert wide[1].split()[-3:] == ["web", "busybox:1.36", "app=web,tier=fe"]

    assert k("scale", "rc", "web", "-n", ns, "--replicas=3").stdout.strip() == (
        "replicationcontroller/web scaled"
    )
    assert len(_wait(lambda: len(pods()) == 3 and pods())) == 3
    rc = json.loads(k("get", "rc", "web", "-n", ns, "-o", "json").stdout)
    assert rc["spec"]["replicas"] == 3 and rc["metadata"]["generation"] == 2
    assert rc["spec"]["selector"] == {"app": "web", "tier": "fe"}

    described = k("describe", "rc", "web", "-n", ns).stdout
    assert "Replicas:     3 current / 3 desired" in described
    assert "Selector:     app=web,tier=fe" in described
    assert "replication-controller  Created pod: web-" in described

    everything = k("get", "all", "-n", ns, "-o", "name").stdout.split()
    assert "replicationcontroller/web" in everything

    # kubectl deletes in the background: the pods go with their controller.
    assert k("delete", "rc", "web", "-n", ns).stdout.strip() == (
        'replicationcontroller "web" deleted'
    )
    assert _wait(lambda: not pods())
