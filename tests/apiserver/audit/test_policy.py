"""Audit policies: loading with upstream's errors, and which rule decides a request."""

from __future__ import annotations

from pathlib import Path

import pytest

from pilothouse.apiserver.audit import policy

POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  users: ["system:kube-proxy"]
  verbs: ["watch"]
- level: None
  userGroups: ["system:nodes"]
  nonResourceURLs: ["/healthz*", "/version"]
- level: RequestResponse
  resources:
  - group: ""
    resources: ["pods/log", "pods/status"]
- level: Request
  namespaces: ["kube-system"]
  resources:
  - group: ""
    resources: ["configmaps"]
    resourceNames: ["controller-leader"]
- level: Metadata
  resources:
  - group: ""
    resources: ["secrets", "*/exec"]
  - group: "apps"
  omitStages: [ResponseStarted]
  omitManagedFields: true
- level: Request
  resources: [{group: "batch", resources: ["jobs/*"]}]
- level: Metadata
"""


def attrs(**kw: object) -> policy.RequestAttributes:
    base: dict[str, object] = {
        "user": "alice",
        "groups": ("system:authenticated",),
        "verb": "get",
        "path": "/api/v1/namespaces/default/pods",
        "resource_request": True,
        "resource": "pods",
        "namespace": "default",
    }
    base.update(kw)
    return policy.RequestAttributes(**base)  # type: ignore[arg-type]


@pytest.fixture
def loaded(tmp_path: Path) -> policy.Policy:
    f = tmp_path / "policy.yaml"
    f.write_text(POLICY)
    return policy.load(f)


def test_first_matching_rule_decides(loaded: policy.Policy) -> None:
    assert loaded.evaluate(attrs(user="system:kube-proxy", verb="watch")).level == "None"
    assert loaded.evaluate(attrs(user="system:kube-proxy", verb="list")).level == "Metadata"
    assert loaded.evaluate(attrs(subresource="log")).level == "RequestResponse"
    assert loaded.evaluate(attrs(subresource="exec")).level == "Metadata"
    assert loaded.evaluate(attrs(resource="secrets")).level == "Metadata"
    assert loaded.evaluate(attrs(api_group="apps", resource="deployments")).level == "Metadata"
    assert (
        loaded.evaluate(attrs(api_group="batch", resource="jobs", subresource="status")).level
        == "Request"
    )
    # Upstream's "resource/*" matches the resource itself as well as its subresources.
    assert loaded.evaluate(attrs(api_group="batch", resource="jobs")).level == "Request"
    assert loaded.evaluate(attrs(api_group="batch", resource="cronjobs")).level == "Metadata"


def test_namespaces_and_resource_names(loaded: policy.Policy) -> None:
    leader = attrs(resource="configmaps", namespace="kube-system", name="controller-leader")
    assert loaded.evaluate(leader).level == "Request"
    other = attrs(resource="configmaps", namespace="kube-system", name="x")
    assert loaded.evaluate(other).level == "Metadata"


def test_non_resource_urls(loaded: policy.Policy) -> None:
    node = {"groups": ("system:nodes",), "resource_request": False, "resource": "", "namespace": ""}
    assert loaded.evaluate(attrs(path="/healthz/ready", **node)).level == "None"
    assert loaded.evaluate(attrs(path="/version", **node)).level == "None"
    assert loaded.evaluate(attrs(path="/metrics", **node)).level == "Metadata"


def test_omit_stages_and_managed_fields_merge(loaded: policy.Policy) -> None:
    decision = loaded.evaluate(attrs(resource="secrets"))
    assert decision.omit_stages == {"RequestReceived", "ResponseStarted"}
    assert decision.omit_managed_fields is True
    plain = loaded.evaluate(attrs(resource="services"))
    assert plain.omit_stages == {"RequestReceived"} and plain.omit_managed_fields is False


def test_no_rule_matching_is_level_none() -> None:
    p = policy.parse(
        {
            "apiVersion": "audit.k8s.io/v1",
            "kind": "Policy",
            "rules": [{"level": "Metadata", "verbs": ["create"]}],
        }
    )
    assert p.evaluate(attrs()).level == "None"
    assert p.evaluate(attrs(verb="create")).level == "Metadata"


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (
            {"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": []},
            "loaded illegal policy with 0 rules",
        ),
        (
            {"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [{"level": "Everything"}]},
            'rules[0].level: Unsupported value: "Everything": supported values: "None", '
            '"Metadata", "Request", "RequestResponse"',
        ),
        (
            {"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [{}]},
            "rules[0].level: Required value",
        ),
        (
            {
                "apiVersion": "audit.k8s.io/v1",
                "kind": "Policy",
                "omitStages": ["Later"],
                "rules": [
                    {"level": "None", "nonResourceURLs": ["healthz", "/a*b"], "namespaces": ["x"]}
                ],
            },
            '[omitStages[0]: Invalid value: "Later": allowed stages are '
            "RequestReceived,ResponseStarted,ResponseComplete,Panic, "
            'rules[0].nonResourceURLs[0]: Invalid value: "healthz": non-resource URL rules '
            "must begin with a '/' character, rules[0].nonResourceURLs[1]: Invalid value: "
            "\"/a*b\": non-resource URL wildcards '*' must be the final character of the rule, "
            'rules[0].nonResourceURLs: Invalid value: []string{"healthz", "/a*b"}: rules cannot '
            "apply to both regular resources and non-resource URLs]",
        ),
        (
            {"apiVersion": "v1", "kind": "ConfigMap"},
            "unknown group version field v1, Kind=ConfigMap in policy",
        ),
        (
            {
                "apiVersion": "audit.k8s.io/v1",
                "kind": "Policy",
                "rules": [{"level": "None", "resources": [{"resourceNames": ["x"]}]}],
            },
            'rules[0].resources.resourceNames: Invalid value: []string{"x"}: using resourceNames '
            "requires at least one resource",
        ),
    ],
)
def test_bad_policies(doc: dict[str, object], message: str) -> None:
    with pytest.raises(policy.PolicyError) as exc:
        policy.parse(doc)
    assert str(exc.value) == message


def test_load_says_the_file(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: []\n")
    with pytest.raises(policy.PolicyError) as exc:
        policy.load(f)
    assert str(exc.value) == f"loaded illegal policy with 0 rules: from file {f}"
    with pytest.raises(policy.PolicyError, match="failed to read file path"):
        policy.load(tmp_path / "missing.yaml")
