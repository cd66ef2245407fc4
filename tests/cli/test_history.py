"""``pilothouse history`` against a real server, written to with the real kubectl."""

from __future__ import annotations

import base64
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from pilothouse import testing
from pilothouse.apiserver.auth import certs
from pilothouse.cli import history

pytestmark = pytest.mark.kubectl


def run_history(
    kubeconfig: Path, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pilothouse.cli.main",
            "history",
            "--kubeconfig",
            str(kubeconfig),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"history {args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


@pytest.fixture
def namespace(kubectl: Any) -> str:
    name = "h-" + uuid.uuid4().hex[:8]
    kubectl("create", "namespace", name)
    return name


def _apply(kubectl: Any, ns: str, data: dict[str, str], manager: str) -> None:
    doc = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "conf"}, "data": data}
    kubectl(
        "apply",
        "--server-side",
        f"--field-manager={manager}",
        "-n",
        ns,
        "-f",
        "-",
        input=yaml.safe_dump(doc),
    )


def test_three_updates_by_two_managers_are_four_revisions(
    kubectl: Any, api_server: testing.ServerThread, namespace: str
) -> None:
    ns = namespace
    kubectl("create", "configmap", "conf", "-n", ns, "--from-literal=a=1")
    kubectl(
        "patch",
        "configmap",
        "conf",
        "-n",
        ns,
        "--type=merge",
        "-p",
        '{"data":{"a":"2"}}',
        "--field-manager=alice",
    )
    _apply(kubectl, ns, {"b": "3"}, "bob")
    kubectl(
        "patch",
        "configmap",
        "conf",
        "-n",
        ns,
        "--type=merge",
        "-p",
        '{"data":{"a":"4"}}',
        "--field-manager=alice",
    )

    doc = orjson.loads(run_history(api_server.kubeconfig, "cm/conf", "-n", ns, "-o", "json").stdout)
    revs = doc["revisions"]
    assert [(r["manager"], r["operation"]) for r in revs] == [
        ("kubectl-create", "Update"),
        ("alice", "Update"),
        ("bob", "Apply"),
        ("alice", "Update"),
    ]
    assert {r["user"] for r in revs} == {certs.ADMIN_USER}  # the kubeconfig's certificate
    assert [r["object"]["data"] for r in revs] == [
        {"a": "1"},
        {"a": "2"},
        {"a": "2", "b": "3"},
        {"a": "4", "b": "3"},
    ]
    rvs = [int(r["resourceVersion"]) for r in revs]
    assert rvs == sorted(rvs) and len(set(rvs)) == 4
    assert all(r["time"].endswith("Z") for r in revs)

    table = run_history(api_server.kubeconfig, "configmap/conf", "-n", ns).stdout.splitlines()
    assert table[0].split() == ["REVISION", "TIME", "CHANGE", "OPERATION", "MANAGER", "USER"]
    assert [line.split()[2:5] for line in table[1:]] == [
        ["created", "Update", "kubectl-create"],
        ["updated", "Update", "alice"],
        ["updated", "Apply", "bob"],
        ["updated", "Update", "alice"],
    ]

    diffs = run_history(api_server.kubeconfig, "cm/conf", "-n", ns, "--diff").stdout
    # One diff per revision: the creation, then exactly the changed lines.
    assert diffs.count("\n+++ ") + diffs.startswith("+++ ") == 4
    assert "-  a: '1'\n+  a: '2'\n" in diffs
    assert "+  b: '3'\n" in diffs
    assert "-  a: '2'\n+  a: '4'\n" in diffs
    assert "resourceVersion" not in diffs and "managedFields" not in diffs

    chosen = run_history(
        api_server.kubeconfig, "cm/conf", "-n", ns, "--diff", str(rvs[0]), str(rvs[3])
    ).stdout
    assert "-  a: '1'\n+  a: '4'\n+  b: '3'\n" in chosen

    at = yaml.safe_load(
        run_history(api_server.kubeconfig, "cm/conf", "-n", ns, "--at", str(rvs[2])).stdout
    )
    assert at["data"] == {"a": "2", "b": "3"}
    assert at["metadata"]["resourceVersion"] == str(rvs[2])


def test_a_deleted_objects_history_stays_readable(
    kubectl: Any, api_server: testing.ServerThread, namespace: str
) -> None:
    ns = namespace
    kubectl("create", "configmap", "gone", "-n", ns, "--from-literal=k=v")
    kubectl("label", "configmap", "gone", "-n", ns, "tier=web")
    kubectl("delete", "configmap", "gone", "-n", ns)
    assert kubectl("get", "configmap", "gone", "-n", ns, check=False).returncode != 0

    doc = orjson.loads(run_history(api_server.kubeconfig, "cm/gone", "-n", ns, "-o", "json").stdout)
    revs = doc["revisions"]
    assert [r["deleted"] for r in revs] == [False, False, True]
    assert revs[-1]["operation"] == "Delete"
    assert revs[-1]["object"]["metadata"]["labels"] == {"tier": "web"}  # the last value
    table = run_history(api_server.kubeconfig, "cm/gone", "-n", ns).stdout
    assert [line.split()[2] for line in table.splitlines()[1:]] == ["created", "updated", "deleted"]
    at = yaml.safe_load(
        run_history(
            api_server.kubeconfig, "cm/gone", "-n", ns, "--at", revs[1]["resourceVersion"]
        ).stdout
    )
    assert at["metadata"]["labels"] == {"tier": "web"}
    late = run_history(
        api_server.kubeconfig, "cm/gone", "-n", ns, "--at", revs[2]["resourceVersion"], check=False
    )
    assert late.returncode == 1
    assert "was deleted at resourceVersion" in late.stderr

    never = run_history(api_server.kubeconfig, "cm/never", "-n", ns, check=False)
    assert never.returncode == 1
    assert never.stderr == 'Error from server (NotFound): configmaps "never" not found\n'


def _token_kubeconfig(
    api_server: testing.ServerThread, kubectl: Any, ns: str, account: str, tmp: Path
) -> Path:
    kubectl("create", "serviceaccount", account, "-n", ns)
    token = kubectl("create", "token", account, "-n", ns).stdout.strip()
    pki = api_server.server.pki
    assert pki is not None
    ca = base64.b64encode(pki.ca_cert.read_bytes()).decode()
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "c", "cluster": {"server": api_server.url, "certificate-authority-data": ca}}
        ],
        "users": [{"name": "u", "user": {"token": token}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u", "namespace": ns}}],
        "current-context": "x",
    }
    path = tmp / f"{account}.kubeconfig"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_history_is_authorized_as_a_get_of_the_object(
    kubectl: Any, api_server: testing.ServerThread, namespace: str, tmp_path: Path
) -> None:
    ns = namespace
    kubectl("create", "secret", "generic", "db", "-n", ns, "--from-literal=password=s3cret")
    kubectl("create", "configmap", "open", "-n", ns, "--from-literal=k=v")
    kubectl("create", "role", "cm-reader", "-n", ns, "--verb=get", "--resource=configmaps")
    kubectl(
        "create",
        "rolebinding",
        "cm-reader",
        "-n",
        ns,
        "--role=cm-reader",
        f"--serviceaccount={ns}:reader",
    )
    reader = _token_kubeconfig(api_server, kubectl, ns, "reader", tmp_path)

    refused = run_history(reader, "secret/db", "-n", ns, check=False)
    assert refused.returncode == 1
    assert refused.stderr == (
        f'Error from server (Forbidden): secrets "db" is forbidden: User '
        f'"system:serviceaccount:{ns}:reader" cannot get resource "secrets" in API group "" '
        f'in the namespace "{ns}"\n'
    )
    # The same user reads what it may GET, history included …
    allowed = orjson.loads(run_history(reader, "cm/open", "-n", ns, "-o", "json").stdout)
    assert allowed["revisions"][0]["object"]["data"] == {"k": "v"}
    # … and the admin reads the Secret's history, decrypted (it is encrypted at rest).
    secret = orjson.loads(
        run_history(api_server.kubeconfig, "secret/db", "-n", ns, "-o", "json").stdout
    )
    data = secret["revisions"][0]["object"]["data"]
    assert base64.b64decode(data["password"]) == b"s3cret"


def test_bad_input_says_what_to_do(api_server: testing.ServerThread) -> None:
    no_kind = run_history(api_server.kubeconfig, "web", check=False)
    assert no_kind.returncode == 1
    assert "name the object as KIND/NAME" in no_kind.stderr
    unknown = run_history(api_server.kubeconfig, "frobs/x", check=False)
    assert unknown.stderr.startswith('error: the server doesn\'t have a resource type "frobs"')
    bad_at = run_history(api_server.kubeconfig, "ns/default", "--at", "yesterday", check=False)
    assert "give a resourceVersion (1234), an RFC 3339 time" in bad_at.stderr


def test_resolve_names_as_kubectl() -> None:
    assert history.resolve("deploy").qualified == "deployments.apps"
    assert history.resolve("deployments.apps").kind == "Deployment"
    assert history.resolve("po").kind == "Pod"
    assert history.resolve("ev").group == ""  # core events before events.k8s.io
    assert history.resolve("cm").plural == "configmaps"


def test_pick_at_by_time() -> None:
    revs = [
        {
            "resourceVersion": "5",
            "time": "2026-12-06T06:00:00.000000Z",
            "deleted": False,
            "object": {"v": 1},
        },
        {
            "resourceVersion": "9",
            "time": "2026-12-06T07:00:00.000000Z",
            "deleted": False,
            "object": {"v": 2},
        },
    ]
    assert history.pick_at(revs, "2026-12-06T06:30:00Z")["object"] == {"v": 1}
    assert history.pick_at(revs, "8")["object"] == {"v": 1}
    assert history.pick_at(revs, "9")["object"] == {"v": 2}
    with pytest.raises(history.UsageError, match="did not exist yet"):
        history.pick_at(revs, "4")


def test_history_retention_flag() -> None:
    import argparse

    from pilothouse.cli import server

    assert server._retention("24h") == 86400.0
    assert server._retention("90m") == 5400.0
    assert server._retention("0") == 0.0
    with pytest.raises(argparse.ArgumentTypeError, match="write it as 24h, 90m, 7d"):
        server._retention("a day")
    with pytest.raises(argparse.ArgumentTypeError, match="0 turns history off"):
        server._retention("-5m")
