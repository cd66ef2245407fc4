"""Users, RBAC and access reviews with the real kubectl (issue 15's "what it must show").

alice gets a certificate the standard way (a CertificateSigningRequest that an
administrator approves with ``kubectl certificate approve``) and the ``view``
ClusterRole in ``dev``; bob gets his with ``pilothouse kubeconfig`` and may create
RoleBindings in ``dev`` but not grant himself ``edit``; carol may impersonate.
Every refusal is checked word for word against upstream's wording.
"""

from __future__ import annotations

import base64
import datetime
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pilothouse import testing

pytestmark = pytest.mark.kubectl

Kubectl = Any  # tests/conftest.py's Kubectl, handed out by the kubectl_as fixture


def _key_and_request(user: str, groups: list[str]) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            *(x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in groups),
            x509.NameAttribute(NameOID.COMMON_NAME, user),
        ]
    )
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, csr.public_bytes(serialization.Encoding.PEM)


def _kubeconfig_for(admin: Path, out: Path, user: str, cert_b64: str, key_pem: bytes) -> Path:
    doc = yaml.safe_load(admin.read_text())
    doc["users"] = [
        {
            "name": user,
            "user": {
                "client-certificate-data": cert_b64,
                "client-key-data": base64.b64encode(key_pem).decode(),
            },
        }
    ]
    doc["contexts"][0]["context"]["user"] = user
    out.write_text(yaml.safe_dump(doc))
    return out


@pytest.fixture(scope="module")
def dev(cluster_kubectl: Kubectl) -> Iterator[str]:
    ns = "dev-" + uuid.uuid4().hex[:6]
    cluster_kubectl("create", "namespace", ns)
    yield ns
    cluster_kubectl("delete", "namespace", ns, "--wait=false", check=False)


@pytest.fixture(scope="module")
def alice(
    cluster_kubectl: Kubectl,
    cluster_server: testing.ServerThread,
    dev: str,
    tmp_path_factory: pytest.TempPathFactory,
    kubectl_as: Any,
) -> Kubectl:
    """alice: a CSR approved with kubectl certificate approve, view in dev."""
    key_pem, request = _key_and_request("alice", [])
    name = "alice-" + uuid.uuid4().hex[:6]
    manifest = {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": {
            "request": base64.b64encode(request).decode(),
            "signerName": "kubernetes.io/kube-apiserver-client",
            "expirationSeconds": 86400,
            "usages": ["client auth"],
        },
    }
    cluster_kubectl("create", "-f", "-", input=json.dumps(manifest))
    got = cluster_kubectl.json("get", "csr", name)
    assert got["spec"]["username"] == "admin"
    assert got["spec"]["groups"] == ["system:masters", "system:authenticated"]
    listed = cluster_kubectl("get", "csr", name).stdout
    assert "kubernetes.io/kube-apiserver-client" in listed and "Pending" in listed
    approved = cluster_kubectl("certificate", "approve", name)
    assert (
        approved.stdout.strip() == f"certificatesigningrequest.certificates.k8s.io/{name} approved"
    )

    def issued() -> str:
        return cluster_kubectl("get", "csr", name, "-o", "jsonpath={.status.certificate}").stdout

    cert = _wait_for(issued)
    assert "Approved,Issued" in cluster_kubectl("get", "csr", name).stdout
    issued_cert = x509.load_pem_x509_certificate(base64.b64decode(cert))
    assert issued_cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "alice"
    usages = issued_cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    lifetime = issued_cert.not_valid_after_utc - issued_cert.not_valid_before_utc
    assert datetime.timedelta(hours=24) <= lifetime <= datetime.timedelta(hours=24, minutes=6)
    cluster_kubectl(
        "create", "rolebinding", "alice-view", "--clusterrole=view", "--user=alice", "-n", dev
    )
    path = tmp_path_factory.mktemp("alice") / "kubeconfig"
    return kubectl_as(_kubeconfig_for(cluster_server.kubeconfig, path, "alice", cert, key_pem))


def _wait_for(fetch: Callable[[], str], timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fetch()
        if value:
            return str(value)
        time.sleep(0.1)
    raise AssertionError("timed out")


@pytest.fixture(scope="module")
def bob(
    cluster_kubectl: Kubectl,
    cluster_server: testing.ServerThread,
    dev: str,
    tmp_path_factory: pytest.TempPathFactory,
    kubectl_as: Any,
) -> Kubectl:
    """bob (group dev-team) via `pilothouse kubeconfig`, allowed to manage RoleBindings in dev."""
    out = tmp_path_factory.mktemp("bob") / "kubeconfig"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pilothouse.cli.main",
            "kubeconfig",
            "--user",
            "bob",
            "--group",
            "dev-team",
            "--data-dir",
            str(cluster_server.config.data_dir),
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"kubeconfig for bob written to {out}" in proc.stderr
    cluster_kubectl(
        "create", "role", "binder", "--verb=create,get,list", "--resource=rolebindings", "-n", dev
    )
    cluster_kubectl(
        "create", "rolebinding", "bob-binder", "--role=binder", "--group=dev-team", "-n", dev
    )
    cluster_kubectl(
        "create", "rolebinding", "bob-view", "--clusterrole=view", "--group=dev-team", "-n", dev
    )
    return kubectl_as(out)


def test_alice_lists_pods_in_dev_and_is_refused_elsewhere(alice: Kubectl, dev: str) -> None:
    listed = alice("get", "pods", "-n", dev)
    assert listed.stderr.strip() == f"No resources found in {dev} namespace."
    refused = alice("get", "pods", "-n", "default", check=False)
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        'Error from server (Forbidden): pods is forbidden: User "alice" cannot list resource '
        '"pods" in API group "" in the namespace "default"'
    )
    secrets = alice("get", "secrets", "-n", dev, check=False)
    assert (
        'User "alice" cannot list resource "secrets" in API group "" in the namespace'
        in secrets.stderr
    )
    nodes = alice("get", "nodes", check=False)
    assert nodes.stderr.strip() == (
        'Error from server (Forbidden): nodes is forbidden: User "alice" cannot list resource '
        '"nodes" in API group "" at the cluster scope'
    )


def test_alice_auth_can_i_and_whoami(alice: Kubectl, dev: str) -> None:
    assert alice("auth", "can-i", "list", "pods", "-n", dev).stdout.strip() == "yes"
    no = alice("auth", "can-i", "create", "pods", "-n", dev, check=False)
    assert no.returncode == 1 and no.stdout.strip() == "no"
    assert (
        alice("auth", "can-i", "list", "pods", "-n", "default", check=False).stdout.strip() == "no"
    )
    rules = alice("auth", "can-i", "--list", "-n", dev).stdout
    lines = rules.splitlines()
    assert lines[0].split() == ["Resources", "Non-Resource", "URLs", "Resource", "Names", "Verbs"]
    assert any(line.split()[:1] == ["pods"] and "[get list watch]" in line for line in lines)
    assert any(
        line.split()[:1] == ["selfsubjectaccessreviews.authorization.k8s.io"] for line in lines
    )
    assert any(line.startswith("  ") or "/api/*" in line for line in lines)
    whoami = alice("auth", "whoami").stdout
    assert "alice" in whoami and "system:authenticated" in whoami


def test_bob_cannot_grant_himself_edit(bob: Kubectl, dev: str) -> None:
    refused = bob(
        "create",
        "rolebinding",
        "bob-edit",
        "--clusterrole=edit",
        "--user=bob",
        "-n",
        dev,
        check=False,
    )
    assert refused.returncode == 1
    first = refused.stderr.splitlines()[0]
    assert first == (
        'error: failed to create rolebinding: rolebindings.rbac.authorization.k8s.io "bob-edit" '
        'is forbidden: user "bob" (groups=["dev-team" "system:authenticated"]) is attempting to '
        "grant RBAC permissions not currently held:"
    )
    missing = refused.stderr.splitlines()[1:]
    assert (
        '{APIGroups:[""], Resources:["pods"], Verbs:["create" "delete" "deletecollection" "patch" "update"]}'
        in missing
    )
    assert missing == sorted(missing)
    # What bob holds himself he may grant.
    bob("create", "rolebinding", "bob-view-2", "--clusterrole=view", "--user=bob", "-n", dev)


def test_impersonation_needs_the_impersonate_verb(
    alice: Kubectl,
    cluster_kubectl: Kubectl,
    cluster_server: testing.ServerThread,
    dev: str,
    tmp_path: Path,
) -> None:
    refused = alice("get", "pods", "-n", dev, "--as", "bob", check=False)
    assert refused.stderr.strip() == (
        'Error from server (Forbidden): users "bob" is forbidden: User "alice" cannot '
        'impersonate resource "users" in API group "" at the cluster scope'
    )
    # An administrator may act as anyone.
    assert (
        cluster_kubectl("auth", "can-i", "list", "pods", "-n", dev, "--as", "alice").stdout.strip()
        == "yes"
    )
    assert (
        cluster_kubectl(
            "auth", "can-i", "list", "pods", "-n", "default", "--as", "alice", check=False
        ).stdout.strip()
        == "no"
    )
    who = cluster_kubectl("auth", "whoami", "--as", "alice", "--as-group", "dev-team").stdout
    assert "alice" in who and "dev-team" in who
    # alice may impersonate bob once granted exactly that.
    cluster_kubectl(
        "create",
        "clusterrole",
        "impersonate-bob",
        "--verb=impersonate",
        "--resource=users",
        "--resource-name=bob",
    )
    cluster_kubectl(
        "create",
        "clusterrolebinding",
        "alice-impersonates-bob",
        "--clusterrole=impersonate-bob",
        "--user=alice",
    )
    as_bob = alice("auth", "whoami", "--as", "bob")
    assert "bob" in as_bob.stdout
    carol = alice("get", "pods", "-n", dev, "--as", "carol", check=False)
    assert (
        'users "carol" is forbidden: User "alice" cannot impersonate resource "users"'
        in carol.stderr
    )


def test_tokens_for_service_accounts(
    cluster_kubectl: Kubectl,
    cluster_server: testing.ServerThread,
    dev: str,
    tmp_path: Path,
    kubectl_as: Any,
) -> None:
    token = cluster_kubectl(
        "create", "token", "default", "-n", dev, "--duration=15m"
    ).stdout.strip()
    assert token.count(".") == 2
    with_token = yaml.safe_load(cluster_server.kubeconfig.read_text())
    with_token["users"] = [{"name": "sa", "user": {"token": token}}]
    with_token["contexts"][0]["context"]["user"] = "sa"
    path = tmp_path / "sa"
    path.write_text(yaml.safe_dump(with_token))
    sa = kubectl_as(path)
    refused = sa("get", "pods", "-n", dev, check=False)
    assert refused.stderr.strip() == (
        f'Error from server (Forbidden): pods is forbidden: User "system:serviceaccount:{dev}:default" '
        f'cannot list resource "pods" in API group "" in the namespace "{dev}"'
    )
    who = sa("auth", "whoami", "-o", "json")
    info = json.loads(who.stdout)["status"]["userInfo"]
    assert info["username"] == f"system:serviceaccount:{dev}:default"
    assert info["groups"] == [
        "system:serviceaccounts",
        f"system:serviceaccounts:{dev}",
        "system:authenticated",
    ]
    too_short = cluster_kubectl(
        "create", "token", "default", "-n", dev, "--duration=5m", check=False
    )
    assert "may not specify a duration less than 10 minutes" in too_short.stderr
    # A token nobody issued is a 401, never anonymous.
    with_token["users"] = [{"name": "sa", "user": {"token": token[:-4] + "AAAA"}}]
    path.write_text(yaml.safe_dump(with_token))
    bad = sa("get", "pods", "-n", dev, check=False)
    assert bad.stderr.strip() == "error: You must be logged in to the server (Unauthorized)"
