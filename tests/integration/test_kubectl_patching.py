"""The real kubectl changing live objects: apply (client- and server-side), edit,
label, annotate, patch, set image, scale, and deletion with cascades."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.kubectl

DEPLOY_V1 = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web, tier: frontend}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: busybox:1.36
        env:
        - {name: MODE, value: blue}
        - {name: DEBUG, value: "1"}
      - name: sidecar
        image: busybox:1.36
"""


def write(tmp_path: Path, name: str, text: str) -> str:
    f = tmp_path / name
    f.write_text(text)
    return str(f)


def test_apply_three_times_with_removals(kubectl, namespace: str, tmp_path: Path) -> None:
    ns = ["-n", namespace]
    assert (
        kubectl(*ns, "apply", "-f", write(tmp_path, "1.yaml", DEPLOY_V1)).stdout.strip()
        == "deployment.apps/web created"
    )
    # Second apply: change replicas and the image, drop an env var and a label.
    v2 = (
        DEPLOY_V1.replace("replicas: 2", "replicas: 4")
        .replace("labels: {app: web, tier: frontend}", "labels: {app: web}")
        .replace('        - {name: DEBUG, value: "1"}\n', "")
        .replace("image: busybox:1.36\n        env", "image: busybox:1.37\n        env")
    )
    assert (
        kubectl(*ns, "apply", "-f", write(tmp_path, "2.yaml", v2)).stdout.strip()
        == "deployment.apps/web configured"
    )
    obj = kubectl.json(*ns, "get", "deploy", "web")
    assert obj["spec"]["replicas"] == 4
    assert obj["metadata"]["labels"] == {"app": "web"}
    web = obj["spec"]["template"]["spec"]["containers"][0]
    assert web["image"] == "busybox:1.37"
    assert web["env"] == [{"name": "MODE", "value": "blue"}]
    # Someone else labels it; a third apply that removes the sidecar keeps their label.
    kubectl(*ns, "label", "deploy", "web", "owner=ops")
    v3 = v2.replace("      - name: sidecar\n        image: busybox:1.36\n", "")
    assert (
        kubectl(*ns, "apply", "-f", write(tmp_path, "3.yaml", v3)).stdout.strip()
        == "deployment.apps/web configured"
    )
    obj = kubectl.json(*ns, "get", "deploy", "web")
    assert [c["name"] for c in obj["spec"]["template"]["spec"]["containers"]] == ["web"]
    assert obj["metadata"]["labels"] == {"app": "web", "owner": "ops"}
    assert obj["metadata"]["generation"] == 3
    # Applying the same file again changes nothing.
    out = kubectl(*ns, "apply", "-f", str(tmp_path / "3.yaml")).stdout.strip()
    assert out == "deployment.apps/web unchanged"


def test_server_side_apply_conflicts_and_force(kubectl, namespace: str, tmp_path: Path) -> None:
    ns = ["-n", namespace]
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shared\ndata:\n  color: red\n"
    out = kubectl(
        *ns, "apply", "--server-side", "--field-manager=team-a", "-f", write(tmp_path, "a.yaml", cm)
    )
    assert out.stdout.strip() == "configmap/shared serverside-applied"
    again = kubectl(
        *ns, "apply", "--server-side", "--field-manager=team-a", "-f", str(tmp_path / "a.yaml")
    )
    assert again.returncode == 0
    other = cm.replace("color: red", "color: blue")
    conflict = kubectl(
        *ns,
        "apply",
        "--server-side",
        "--field-manager=team-b",
        "-f",
        write(tmp_path, "b.yaml", other),
        check=False,
    )
    assert conflict.returncode != 0
    assert 'conflict with "team-a"' in conflict.stderr and ".data.color" in conflict.stderr
    forced = kubectl(
        *ns,
        "apply",
        "--server-side",
        "--field-manager=team-b",
        "--force-conflicts",
        "-f",
        str(tmp_path / "b.yaml"),
    )
    assert forced.returncode == 0
    obj = kubectl.json(*ns, "get", "cm", "shared", "--show-managed-fields")
    assert obj["data"] == {"color": "blue"}
    managers = {m["manager"]: m for m in obj["metadata"]["managedFields"]}
    assert managers["team-b"]["operation"] == "Apply"
    assert "f:color" in json.dumps(managers["team-b"]["fieldsV1"])
    assert "team-a" not in managers or "f:color" not in json.dumps(
        managers["team-a"].get("fieldsV1", {})
    )


def test_edit_label_annotate_patch(kubectl, namespace: str, tmp_path: Path) -> None:
    ns = ["-n", namespace]
    kubectl(*ns, "apply", "-f", write(tmp_path, "d.yaml", DEPLOY_V1))
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nsed -i 's/replicas: 2/replicas: 5/' \"$1\"\n")
    editor.chmod(editor.stat().st_mode | stat.S_IEXEC)
    env_editor = {"KUBE_EDITOR": str(editor), "EDITOR": str(editor)}
    proc = __import__("subprocess").run(
        ["kubectl", *ns, "edit", "deploy", "web"],
        capture_output=True,
        text=True,
        env={**kubectl.env(), **env_editor},
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "deployment.apps/web edited"
    assert kubectl.json(*ns, "get", "deploy", "web")["spec"]["replicas"] == 5

    assert (
        kubectl(*ns, "label", "deploy", "web", "stage=prod").stdout.strip()
        == "deployment.apps/web labeled"
    )
    assert (
        kubectl(*ns, "annotate", "deploy", "web", "note=hello").stdout.strip()
        == "deployment.apps/web annotated"
    )
    md = kubectl.json(*ns, "get", "deploy", "web")["metadata"]
    assert md["labels"]["stage"] == "prod" and md["annotations"]["note"] == "hello"
    kubectl(*ns, "label", "deploy", "web", "stage-")
    assert "stage" not in kubectl.json(*ns, "get", "deploy", "web")["metadata"]["labels"]

    kubectl(
        *ns,
        "patch",
        "deploy",
        "web",
        "--type",
        "json",
        "-p",
        '[{"op": "replace", "path": "/spec/replicas", "value": 1}]',
    )
    assert kubectl.json(*ns, "get", "deploy", "web")["spec"]["replicas"] == 1
    kubectl(
        *ns, "patch", "deploy", "web", "--type", "merge", "-p", '{"spec": {"minReadySeconds": 7}}'
    )
    assert kubectl.json(*ns, "get", "deploy", "web")["spec"]["minReadySeconds"] == 7
    kubectl(
        *ns,
        "patch",
        "deploy",
        "web",
        "--type",
        "strategic",
        "-p",
        '{"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "busybox:1.37"}]}}}}',
    )
    containers = kubectl.json(*ns, "get", "deploy", "web")["spec"]["template"]["spec"]["containers"]
    assert [(c["name"], c["image"]) for c in containers] == [
        ("web", "busybox:1.36"),
        ("sidecar", "busybox:1.37"),
    ]
    bad = kubectl(
        *ns,
        "patch",
        "deploy",
        "web",
        "--type",
        "json",
        "-p",
        '[{"op": "test", "path": "/spec/replicas", "value": 99}]',
        check=False,
    )
    assert bad.returncode != 0 and (
        "The request is invalid: the server rejected our request due to an error in our request"
        in bad.stderr
    )
    assert kubectl.json(*ns, "get", "deploy", "web")["spec"]["replicas"] == 1  # nothing applied


def test_set_image_and_scale(kubectl, namespace: str, tmp_path: Path) -> None:
    ns = ["-n", namespace]
    kubectl(*ns, "apply", "-f", write(tmp_path, "d.yaml", DEPLOY_V1))
    out = kubectl(*ns, "set", "image", "deployment/web", "web=busybox:1.38").stdout.strip()
    assert out == "deployment.apps/web image updated"
    containers = kubectl.json(*ns, "get", "deploy", "web")["spec"]["template"]["spec"]["containers"]
    assert containers[0]["image"] == "busybox:1.38" and containers[1]["image"] == "busybox:1.36"
    assert (
        kubectl(*ns, "scale", "deployment/web", "--replicas=7").stdout.strip()
        == "deployment.apps/web scaled"
    )
    assert kubectl.json(*ns, "get", "deploy", "web")["spec"]["replicas"] == 7


def _wait_gone(kubectl, *args: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if kubectl(*args, check=False).returncode != 0:
            return
        time.sleep(0.2)
    raise AssertionError(f"{args} still exists")


def _owner_and_dependents(kubectl, ns: list[str], tmp_path: Path, owner: str) -> str:
    kubectl(*ns, "create", "configmap", owner, "--from-literal=a=b")
    uid = kubectl.json(*ns, "get", "cm", owner)["metadata"]["uid"]
    for i in range(2):
        dep = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": f"{owner}-dep-{i}",
                "ownerReferences": [
                    {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "name": owner,
                        "uid": uid,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
        }
        kubectl(*ns, "create", "-f", write(tmp_path, f"{owner}-{i}.json", json.dumps(dep)))
    return uid


def test_delete_cascade_modes(cluster_kubectl, cluster_namespace: str, tmp_path: Path) -> None:
    k, ns = cluster_kubectl, ["-n", cluster_namespace]
    _owner_and_dependents(k, ns, tmp_path, "bg")
    assert (
        k(*ns, "delete", "cm", "bg", "--cascade=background").stdout.strip()
        == 'configmap "bg" deleted'
    )
    _wait_gone(k, *ns, "get", "cm", "bg-dep-0")
    _wait_gone(k, *ns, "get", "cm", "bg-dep-1")

    _owner_and_dependents(k, ns, tmp_path, "fg")
    k(*ns, "delete", "cm", "fg", "--cascade=foreground", "--timeout=30s")
    for name in ("fg", "fg-dep-0", "fg-dep-1"):
        assert k(*ns, "get", "cm", name, check=False).returncode != 0

    _owner_and_dependents(k, ns, tmp_path, "keep")
    k(*ns, "delete", "cm", "keep", "--cascade=orphan", "--timeout=30s")
    for name in ("keep-dep-0", "keep-dep-1"):
        dep = k.json(*ns, "get", "cm", name)
        assert not dep["metadata"].get("ownerReferences")


def test_delete_namespace_with_several_kinds(cluster_kubectl, tmp_path: Path) -> None:
    k = cluster_kubectl
    name = "doomed-" + os.urandom(3).hex()
    k("create", "namespace", name)
    k("-n", name, "create", "configmap", "c", "--from-literal=a=b")
    k("-n", name, "create", "secret", "generic", "s", "--from-literal=p=q")
    k("-n", name, "apply", "-f", write(tmp_path, "d.yaml", DEPLOY_V1))
    k("-n", name, "create", "service", "clusterip", "svc", "--tcp=80:8080")
    out = k("delete", "namespace", name, "--timeout=60s")
    assert out.stdout.strip() == f'namespace "{name}" deleted'
    missing = k("get", "namespace", name, check=False)
    assert missing.returncode != 0 and "NotFound" in missing.stderr
