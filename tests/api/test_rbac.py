"""RBAC's rule algebra and the validation of roles, bindings and CSRs."""

from __future__ import annotations

import base64

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pilothouse.api import defaults, rbac, validation

G = "rbac.authorization.k8s.io"


def allows(rule: dict, **kw: str) -> bool:
    return rbac.allows_resource(rbac.compile_rule(rule), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("rule", "request_", "expected"),
    [
        (
            {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]},
            ("get", "", "pods", ""),
            True,
        ),
        (
            {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]},
            ("list", "", "pods", ""),
            False,
        ),
        (
            {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]},
            ("get", "apps", "pods", ""),
            False,
        ),
        # a subresource is named with its resource; the bare resource does not cover it
        (
            {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]},
            ("get", "", "pods", "log"),
            False,
        ),
        (
            {"verbs": ["get"], "apiGroups": [""], "resources": ["pods/log"]},
            ("get", "", "pods", "log"),
            True,
        ),
        (
            {"verbs": ["get"], "apiGroups": ["*"], "resources": ["*/scale"]},
            ("get", "apps", "deployments", "scale"),
            True,
        ),
        (
            {"verbs": ["get"], "apiGroups": ["*"], "resources": ["*/scale"]},
            ("get", "apps", "deployments", ""),
            False,
        ),
        (
            {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]},
            ("escalate", "x.io", "things", "sub"),
            True,
        ),
    ],
)
def test_rule_matching(rule: dict, request_: tuple[str, str, str, str], expected: bool) -> None:
    verb, group, resource, sub = request_
    assert allows(rule, verb=verb, group=group, resource=resource, subresource=sub) is expected


def test_resource_names_and_urls() -> None:
    named = {
        "verbs": ["get"],
        "apiGroups": [""],
        "resources": ["configmaps"],
        "resourceNames": ["a"],
    }
    assert allows(named, verb="get", group="", resource="configmaps", name="a")
    assert not allows(named, verb="get", group="", resource="configmaps", name="b")
    assert not allows(named, verb="get", group="", resource="configmaps", name="")
    urls = rbac.compile_rule({"verbs": ["get"], "nonResourceURLs": ["/healthz", "/apis/*"]})
    assert rbac.allows_url(urls, verb="get", path="/healthz")
    assert rbac.allows_url(urls, verb="get", path="/apis/apps/v1")
    assert not rbac.allows_url(urls, verb="get", path="/healthz/ping")
    assert not rbac.allows_url(urls, verb="post", path="/healthz")


def test_covers_breaks_rules_down_and_reports_what_is_missing() -> None:
    owner = [
        {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods", "pods/log"]},
        {"verbs": ["get"], "apiGroups": ["*"], "resources": ["*/scale"]},
        {"verbs": ["get"], "nonResourceURLs": ["/logs/*"]},
    ]
    ok, missing = rbac.covers(
        owner,
        [
            {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]},
            {"verbs": ["get"], "apiGroups": ["apps"], "resources": ["deployments/scale"]},
            {"verbs": ["get"], "nonResourceURLs": ["/logs/today"]},
        ],
    )
    assert ok and missing == []
    ok, missing = rbac.covers(
        owner, [{"verbs": ["get", "delete"], "apiGroups": ["", "apps"], "resources": ["pods"]}]
    )
    assert not ok
    assert missing == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["delete"]},
        {"apiGroups": ["apps"], "resources": ["pods"], "verbs": ["get"]},
        {"apiGroups": ["apps"], "resources": ["pods"], "verbs": ["delete"]},
    ]
    # a rule with resourceNames does not cover a rule for every name
    named = [
        {"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["a"]}
    ]
    assert not rbac.covers(
        named, [{"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"]}]
    )[0]


def test_escalation_message_is_upstreams() -> None:
    missing = [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["delete"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["create"]},
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["patch"]},
    ]
    assert rbac.escalation_message("bob", ["dev", "system:authenticated"], missing) == (
        'user "bob" (groups=["dev" "system:authenticated"]) is attempting to grant RBAC '
        "permissions not currently held:\n"
        '{APIGroups:[""], Resources:["pods"], Verbs:["delete" "create"]}\n'
        '{APIGroups:["apps"], Resources:["deployments"], Verbs:["patch"]}'
    )


def test_subjects_and_service_account_names() -> None:
    assert rbac.split_service_account_username("system:serviceaccount:ns:sa") == ("ns", "sa")
    assert rbac.split_service_account_username("system:serviceaccount:ns") is None
    assert rbac.subject_applies(
        {"kind": "ServiceAccount", "name": "sa"},
        user="system:serviceaccount:dev:sa",
        groups=[],
        namespace="dev",
    )
    assert not rbac.subject_applies(
        {"kind": "ServiceAccount", "name": "sa"},
        user="system:serviceaccount:dev:sa",
        groups=[],
        namespace="",
    )
    assert rbac.node_name("system:node:n1", ["system:nodes"]) == "n1"
    assert rbac.node_name("system:node:n1", []) is None


def _messages(kind: str, obj: dict, old: dict | None = None) -> list[str]:
    defaults.apply_defaults(G, "v1", kind, obj)
    if old is None:
        return [e.message() for e in validation.validate_create(G, "v1", kind, obj)]
    return [e.message() for e in validation.validate_update(G, "v1", kind, obj, old)]


def test_role_and_binding_validation_words_as_upstream() -> None:
    role = {
        "metadata": {"name": "r", "namespace": "d"},
        "rules": [{"verbs": ["get"], "apiGroups": [""]}],
    }
    assert _messages("Role", role) == [
        "rules[0].resources: Required value: resource rules must supply at least one resource"
    ]
    cluster = {
        "metadata": {"name": "system:x"},
        "rules": [{"verbs": ["get"], "nonResourceURLs": ["/x"]}],
    }
    assert _messages("ClusterRole", cluster) == []
    binding = {
        "metadata": {"name": "b", "namespace": "d"},
        "roleRef": {"kind": "Pod", "name": "view"},
        "subjects": [
            {"kind": "Robot", "name": "r2"},
            {"kind": "User", "name": "u", "apiGroup": "x"},
        ],
    }
    assert _messages("RoleBinding", binding) == [
        'roleRef.kind: Unsupported value: "Pod": supported values: "Role", "ClusterRole"',
        'subjects[0].kind: Unsupported value: "Robot": supported values: "ServiceAccount", "User", "Group"',
        'subjects[1].apiGroup: Unsupported value: "x": supported values: "rbac.authorization.k8s.io"',
    ]
    crb = {
        "metadata": {"name": "c"},
        "roleRef": {"kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "ServiceAccount", "name": "sa"}],
    }
    assert _messages("ClusterRoleBinding", crb) == ["subjects[0].namespace: Required value"]
    old = {
        "metadata": {"name": "c"},
        "roleRef": {"kind": "ClusterRole", "name": "view", "apiGroup": G},
    }
    new = {"metadata": {"name": "c"}, "roleRef": {"kind": "ClusterRole", "name": "edit"}}
    assert _messages("ClusterRoleBinding", new, old) == [
        'roleRef: Invalid value: rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", '
        'Kind:"ClusterRole", Name:"edit"}: cannot change roleRef'
    ]


def _csr_request(cn: str = "alice") -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .sign(key, hashes.SHA256())
    )
    return base64.b64encode(csr.public_bytes(serialization.Encoding.PEM)).decode()


def test_csr_validation_words_as_upstream() -> None:
    C = "certificates.k8s.io"
    good = {
        "metadata": {"name": "x"},
        "spec": {"request": _csr_request(), "signerName": "kubernetes.io/kube-apiserver-client"},
    }
    defaults.apply_defaults(C, "v1", "CertificateSigningRequest", good)
    assert good["spec"]["usages"] == ["digital signature", "key encipherment"]
    assert validation.validate_create(C, "v1", "CertificateSigningRequest", good) == []
    bad = {
        "metadata": {"name": "x"},
        "spec": {
            "request": base64.b64encode(b"hello").decode(),
            "signerName": "example",
            "usages": ["client auth", "flying"],
            "expirationSeconds": 60,
        },
    }
    got = [
        e.message() for e in validation.validate_create(C, "v1", "CertificateSigningRequest", bad)
    ]
    assert got[0] == (
        "spec.request: Invalid value: []byte{0x68, 0x65, 0x6c, 0x6c, 0x6f}: "
        "PEM block type must be CERTIFICATE REQUEST"
    )
    assert got[1].startswith(
        'spec.usages[1]: Unsupported value: "flying": supported values: "any",'
    )
    assert got[2] == (
        'spec.signerName: Invalid value: "example": must be a fully qualified domain and path '
        "of the form 'example.com/signer-name'"
    )
    assert got[3] == (
        "spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 600 "
        "seconds (10 minutes)"
    )
    legacy = {**good, "spec": {**good["spec"], "signerName": "kubernetes.io/legacy-unknown"}}
    assert [
        e.message()
        for e in validation.validate_create(C, "v1", "CertificateSigningRequest", legacy)
    ] == [
        'spec.signerName: Invalid value: "kubernetes.io/legacy-unknown": the legacy signerName '
        "is not allowed via this API version"
    ]
