"""A StatefulSet end to end with real containers and real volumes (issue 13): three
replicas come up in order, each writes its name into its own claim; a deleted pod comes
back on the same data; scaling to one and back keeps the claims and the data; a rolling
update goes 2 → 1 → 0; ``partition: 2`` stops after web-2.

Needs root and a default StorageClass whose provisioner makes volumes on this node (the
local-path provisioner of the storage work): without one, claims stay Pending and the
test says so and skips.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from typing import Any

import pytest

from .realcluster import Cluster

pytestmark = [
    pytest.mark.root,
    pytest.mark.containers,
    pytest.mark.netns,
    pytest.mark.kubectl,
    pytest.mark.slow,
]

DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"
# Writes its name once (a new pod on the same claim finds it), logs every start, and is
# Ready only once the name is on its volume.
SCRIPT = (
    "[ -f /data/name ] || hostname > /data/name; echo start >> /data/starts; "
    "trap 'exit 0' TERM; while true; do sleep 1; done"
)


def manifest(image: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "web"},
        "spec": {
            "serviceName": "web",
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "terminationGracePeriodSeconds": 2,
                    "containers": [
                        {
                            "name": "main",
                            "image": image,
                            "command": ["sh", "-c", SCRIPT],
                            "env": [{"name": "VERSION", "value": "1"}],
                            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                            "readinessProbe": {
                                "exec": {"command": ["cat", "/data/name"]},
                                "periodSeconds": 1,
                            },
                        }
                    ],
                },
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "64Mi"}},
                    },
                }
            ],
        },
    }


class PodJournal:
    """``kubectl get pods --watch`` of a namespace: the events in order. Its output is read
    as it comes (a full pipe would stall kubectl)."""

    def __init__(self, cluster: Cluster, ns: str) -> None:
        self.proc = subprocess.Popen(
            ["kubectl", "-n", ns, "get", "pods", "--watch", "--output-watch-events", "-o", "json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=cluster.env(),
            text=True,
        )
        self.chunks: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.lines: list[tuple[str, str, bool, str]] = []

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.chunks.append(line)

    def stop(self) -> list[tuple[str, str, bool, str]]:
        time.sleep(2.0)  # the last events reach kubectl
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.reader.join(timeout=10)
        decoder = json.JSONDecoder()
        text = "".join(self.chunks).strip()
        pos = 0
        while pos < len(text):
            event, pos = decoder.raw_decode(text, pos)
            while pos < len(text) and text[pos].isspace():
                pos += 1
            obj = event["object"]
            ready = any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in (obj.get("status") or {}).get("conditions") or []
            )
            kind = "DELETING" if obj["metadata"].get("deletionTimestamp") else event["type"]
            env = {e["name"]: e.get("value") for e in obj["spec"]["containers"][0].get("env", [])}
            self.lines.append((kind, obj["metadata"]["name"], ready, str(env.get("VERSION"))))
        return self.lines

    def first(self, kind: str, name: str, *, ready: bool | None = None, version: str = "") -> int:
        for i, (k, n, r, v) in enumerate(self.lines):
            if k == kind and n == name and ready in (None, r) and version in ("", v):
                return i
        raise AssertionError(f"no {kind} {name} ready={ready} version={version}: {self.lines}")


def default_class(cluster: Cluster) -> str | None:
    classes = json.loads(cluster.kubectl("get", "storageclass", "-o", "json").stdout)["items"]
    for sc in classes:
        if (sc["metadata"].get("annotations") or {}).get(DEFAULT_CLASS) == "true":
            return str(sc["metadata"]["name"])
    return None


def test_statefulset_with_volumes_end_to_end(cluster: Cluster, ns: str) -> None:
    deadline = time.monotonic() + 30
    while default_class(cluster) is None and time.monotonic() < deadline:
        time.sleep(1)
    if default_class(cluster) is None:
        pytest.skip(
            "no default StorageClass on this cluster: the StatefulSet end-to-end test needs "
            "the local-path provisioner (issue 13's storage work) to bind its claims"
        )

    def k(*args: str, check: bool = True, timeout: float = 240) -> str:
        return cluster.kubectl("-n", ns, *args, check=check, timeout=timeout).stdout

    def read(pod: str, path: str) -> str:
        return k("exec", pod, "--", "cat", path).strip()

    journal = PodJournal(cluster, ns)
    cluster.apply(ns, manifest(cluster.image))
    k("rollout", "status", "sts/web", "--timeout=180s")
    journal.stop()
    # In order: each pod is made once the one before it is Ready.
    assert journal.first("MODIFIED", "web-0", ready=True) < journal.first("ADDED", "web-1")
    assert journal.first("MODIFIED", "web-1", ready=True) < journal.first("ADDED", "web-2")
    for i in range(3):
        assert read(f"web-{i}", "/data/name") == f"web-{i}"
        cluster.pod(ns, f"web-{i}")
    claims = json.loads(k("get", "pvc", "-o", "json"))["items"]
    assert sorted(c["metadata"]["name"] for c in claims) == [
        "data-web-0",
        "data-web-1",
        "data-web-2",
    ]
    assert {c["status"]["phase"] for c in claims} == {"Bound"}
    claim_uids = {c["metadata"]["name"]: c["metadata"]["uid"] for c in claims}

    # A deleted pod comes back with the same name on the same data.
    old_uid = cluster.pod(ns, "web-1")["metadata"]["uid"]
    k("delete", "pod", "web-1")

    def replaced() -> bool:
        got = k(
            "get", "pod", "web-1", "-o", "jsonpath={.metadata.uid} {.status.phase}", check=False
        ).split()
        return len(got) == 2 and got[0] != old_uid and got[1] == "Running"

    cluster.wait(replaced, timeout=120, what="web-1 back")
    k("rollout", "status", "sts/web", "--timeout=120s")
    assert read("web-1", "/data/name") == "web-1"
    assert read("web-1", "/data/starts").splitlines() == ["start", "start"]

    # Scale to one and back: the claims stay (whenScaled: Retain), the data too.
    k("scale", "sts/web", "--replicas=1")
    cluster.wait(
        lambda: k("get", "pods", "-o", "name").split() == ["pod/web-0"], timeout=120, what="scale 1"
    )
    claims = json.loads(k("get", "pvc", "-o", "json"))["items"]
    assert {c["metadata"]["name"]: c["metadata"]["uid"] for c in claims} == claim_uids
    k("scale", "sts/web", "--replicas=3")
    k("rollout", "status", "sts/web", "--timeout=180s")
    assert read("web-2", "/data/name") == "web-2"
    assert read("web-2", "/data/starts").splitlines() == ["start", "start"]

    # A rolling update goes from the highest ordinal down, one ready pod at a time.
    journal = PodJournal(cluster, ns)
    k("set", "env", "sts/web", "VERSION=2")
    k("rollout", "status", "sts/web", "--timeout=240s")
    journal.stop()
    assert journal.first("DELETING", "web-2") < journal.first("DELETING", "web-1")
    assert journal.first("MODIFIED", "web-2", ready=True, version="2") < journal.first(
        "DELETING", "web-1"
    )
    assert journal.first("MODIFIED", "web-1", ready=True, version="2") < journal.first(
        "DELETING", "web-0"
    )
    for i in range(3):
        assert read(f"web-{i}", "/data/name") == f"web-{i}"

    # partition: 2 stops the update after web-2.
    k("patch", "sts/web", "-p", '{"spec":{"updateStrategy":{"rollingUpdate":{"partition":2}}}}')
    k("set", "env", "sts/web", "VERSION=3")
    out = k("rollout", "status", "sts/web", "--timeout=180s")
    assert "partitioned roll out complete: 1 new pods have been updated..." in out
    versions = {
        f"web-{i}": k("exec", f"web-{i}", "--", "sh", "-c", "echo $VERSION").strip()
        for i in range(3)
    }
    assert versions == {"web-0": "2", "web-1": "2", "web-2": "3"}

    k("delete", "sts", "web", "--wait=true")
    for i in range(3):
        k("delete", "pvc", f"data-web-{i}", "--wait=false")
