"""ValidatingAdmissionPolicy with the real kubectl (issue 16's "what it must show"):
a policy refuses Deployments with more than 5 replicas, with upstream's message; its
parameterised, warning and auditing forms; bad policies refused with CEL's words."""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pilothouse import testing
from pilothouse.apiserver.audit import backend

pytestmark = pytest.mark.kubectl

Kubectl = Any


@pytest.fixture(scope="module")
def k(kubectl_as: type) -> Iterator[Kubectl]:
    with (
        tempfile.TemporaryDirectory(prefix="pilothouse-policies-") as tmp,
        testing.server_thread(Path(tmp) / "data") as srv,
    ):
        yield kubectl_as(srv.kubeconfig)


def apply(k: Kubectl, *objs: dict[str, Any]) -> None:
    for obj in objs:
        k("apply", "-f", "-", input=json.dumps(obj))


def namespace(k: Kubectl, test: str) -> str:
    name = "t-" + uuid.uuid4().hex[:8]
    k(
        "create",
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": name, "labels": {"test": test}},
            }
        ),
    )
    return name


def policy(name: str, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "failurePolicy": "Fail",
        "matchConstraints": {
            "resourceRules": [
                {
                    "apiGroups": ["apps"],
                    "apiVersions": ["v1"],
                    "operations": ["CREATE", "UPDATE"],
                    "resources": ["deployments"],
                }
            ]
        },
        "validations": [{"expression": "object.spec.replicas <= 5"}],
    }
    body.update(spec)
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": body,
    }


def binding(name: str, policy_name: str, test: str, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "policyName": policy_name,
        "validationActions": ["Deny"],
        "matchResources": {"namespaceSelector": {"matchLabels": {"test": test}}},
    }
    body.update(spec)
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": body,
    }


def deployment(name: str, replicas: int) -> str:
    return json.dumps(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}]},
                },
            },
        }
    )


def test_policy_refuses_deployments_with_more_than_five_replicas(k: Kubectl) -> None:
    test = "max-" + uuid.uuid4().hex[:6]
    ns = namespace(k, test)
    apply(
        k,
        policy(f"{test}.example.com"),
        binding(f"{test}-binding.example.com", f"{test}.example.com", test),
    )
    table = k("get", "validatingadmissionpolicies", f"{test}.example.com").stdout.splitlines()
    assert table[0].split() == ["NAME", "VALIDATIONS", "PARAMKIND", "AGE"]
    assert table[1].split()[:3] == [f"{test}.example.com", "1", "<unset>"]
    bindings = k(
        "get", "validatingadmissionpolicybindings", f"{test}-binding.example.com"
    ).stdout.splitlines()
    assert bindings[0].split() == ["NAME", "POLICYNAME", "PARAMREF", "AGE"]
    assert bindings[1].split()[:3] == [
        f"{test}-binding.example.com",
        f"{test}.example.com",
        "<unset>",
    ]

    refused = k("apply", "-n", ns, "-f", "-", input=deployment("big", 6), check=False)
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        f"The deployments \"big\" is invalid: : ValidatingAdmissionPolicy '{test}.example.com' "
        f"with binding '{test}-binding.example.com' denied request: failed expression: "
        "object.spec.replicas <= 5"
    )
    created = k("create", "deployment", "small", "--image=busybox", "--replicas=5", "-n", ns)
    assert created.stdout.strip() == "deployment.apps/small created"
    patched = k(
        "patch", "deployment", "small", "-n", ns, "-p", '{"spec":{"replicas":7}}', check=False
    )
    assert patched.returncode == 1
    assert "denied request: failed expression: object.spec.replicas <= 5" in patched.stderr
    assert (
        k("get", "deployment", "small", "-n", ns, "-o", "jsonpath={.spec.replicas}").stdout == "5"
    )
    # Namespaces the binding does not select are not checked.
    other = namespace(k, "none")
    k("apply", "-n", other, "-f", "-", input=deployment("big", 6))


def test_params_messages_and_warnings(k: Kubectl) -> None:
    test = "params-" + uuid.uuid4().hex[:6]
    ns = namespace(k, test)
    apply(
        k,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "limits", "namespace": ns},
            "data": {"maxReplicas": "3"},
        },
        policy(
            f"{test}.example.com",
            paramKind={"apiVersion": "v1", "kind": "ConfigMap"},
            variables=[{"name": "limit", "expression": "int(params.data.maxReplicas)"}],
            validations=[
                {
                    "expression": "object.spec.replicas <= variables.limit",
                    "messageExpression": "'replicas ' + string(object.spec.replicas) + ' over the limit of ' + string(variables.limit)",
                    "reason": "Forbidden",
                }
            ],
        ),
        binding(
            f"{test}-deny.example.com",
            f"{test}.example.com",
            test,
            paramRef={"name": "limits", "parameterNotFoundAction": "Deny"},
        ),
    )
    refused = k("apply", "-n", ns, "-f", "-", input=deployment("four", 4), check=False)
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        'Error from server (Forbidden): error when creating "STDIN": deployments.apps "four" is '
        f"forbidden: ValidatingAdmissionPolicy '{test}.example.com' with binding "
        f"'{test}-deny.example.com' denied request: replicas 4 over the limit of 3"
    )
    k("apply", "-n", ns, "-f", "-", input=deployment("three", 3))

    # Without the param, parameterNotFoundAction Deny refuses everything it binds.
    k("delete", "configmap", "limits", "-n", ns)
    missing = k("apply", "-n", ns, "-f", "-", input=deployment("two", 2), check=False)
    assert missing.returncode == 1
    assert (
        f"ValidatingAdmissionPolicy '{test}.example.com' with binding '{test}-deny.example.com' "
        "denied request: failed to configure binding: no params found for policy binding with "
        "`Deny` parameterNotFoundAction"
    ) in missing.stderr

    # Warn instead of Deny: the write goes through, kubectl prints the warning.
    apply(
        k,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "limits", "namespace": ns},
            "data": {"maxReplicas": "1"},
        },
        binding(
            f"{test}-deny.example.com",
            f"{test}.example.com",
            test,
            paramRef={"name": "limits", "parameterNotFoundAction": "Deny"},
            validationActions=["Warn", "Audit"],
        ),
    )
    warned = k("apply", "-n", ns, "-f", "-", input=deployment("five", 2))
    assert warned.stdout.strip() == "deployment.apps/five created"
    assert warned.stderr.strip() == (
        f"Warning: Validation failed for ValidatingAdmissionPolicy '{test}.example.com' with "
        f"binding '{test}-deny.example.com': replicas 2 over the limit of 1"
    )
    # Audit only: nothing is said, nothing refused.
    apply(
        k,
        binding(
            f"{test}-deny.example.com",
            f"{test}.example.com",
            test,
            paramRef={"name": "limits", "parameterNotFoundAction": "Deny"},
            validationActions=["Audit"],
        ),
    )
    audited = k("apply", "-n", ns, "-f", "-", input=deployment("six", 2))
    assert (audited.stdout.strip(), audited.stderr.strip()) == (
        "deployment.apps/six created",
        "",
    )


def test_invalid_policies_are_refused_with_cel_s_words(k: Kubectl) -> None:
    bad = policy(
        "bad.example.com",
        validations=[
            {"expression": "object.spec.replicas <="},
            {"expression": "request.operaton == 'CREATE'"},
        ],
    )
    refused = k("apply", "-f", "-", input=json.dumps(bad), check=False)
    assert refused.returncode == 1
    assert refused.stderr.startswith(
        'The ValidatingAdmissionPolicy "bad.example.com" is invalid: \n'
        '* spec.validations[0].expression: Invalid value: "object.spec.replicas <=": '
        "compilation failed: ERROR: <input>:1:"
    )
    assert "undefined field 'operaton'" in refused.stderr
    no_actions = binding("b.example.com", "p", "x", validationActions=[])
    refused = k("apply", "-f", "-", input=json.dumps(no_actions), check=False)
    assert refused.stderr.strip() == (
        'The ValidatingAdmissionPolicyBinding "b.example.com" is invalid: '
        "spec.validationActions: Required value: at least one validation action is required"
    )


def test_type_checking_warnings_in_status(cluster_kubectl: Kubectl) -> None:
    """The status controller (in the controller manager) checks expressions against the
    schemas of the kinds the policy matches."""
    name = "typed-" + uuid.uuid4().hex[:6] + ".example.com"
    bad = policy(name, validations=[{"expression": "object.spec.replica > 1"}])
    cluster_kubectl("apply", "-f", "-", input=json.dumps(bad))
    deadline = time.monotonic() + 20
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = json.loads(
            cluster_kubectl("get", "validatingadmissionpolicy", name, "-o", "json").stdout
        ).get("status", {})
        if status.get("observedGeneration") == 1:
            break
        time.sleep(0.1)
    assert status["typeChecking"]["expressionWarnings"] == [
        {
            "fieldRef": "spec.validations[0].expression",
            "warning": "apps/v1, Kind=Deployment: compilation failed: ERROR: <input>:1:12: "
            "undefined field 'replica'\n | object.spec.replica > 1\n | ...........^\n",
        }
    ]
    fixed = policy(name, validations=[{"expression": "object.spec.replicas > 1"}])
    cluster_kubectl("apply", "-f", "-", input=json.dumps(fixed))
    while time.monotonic() < deadline + 20:
        status = json.loads(
            cluster_kubectl("get", "validatingadmissionpolicy", name, "-o", "json").stdout
        ).get("status", {})
        if status.get("observedGeneration") == 2:
            break
        time.sleep(0.1)
    assert status["typeChecking"] == {}
    cluster_kubectl("delete", "validatingadmissionpolicy", name)


AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  namespaces: [audited]
"""


def test_audit_action_annotates_the_audit_event(
    kubectl_as: type, tmp_path_factory: pytest.TempPathFactory
) -> None:
    tmp = tmp_path_factory.mktemp("policy-audit")
    (tmp / "policy.yaml").write_text(AUDIT_POLICY)
    log = tmp / "audit.log"
    with testing.server_thread(
        tmp / "data",
        audit_policy_file=tmp / "policy.yaml",
        audit_log=backend.Options(path=str(log)),
    ) as srv:
        k = kubectl_as(srv.kubeconfig)
        k("create", "namespace", "audited")
        k("label", "namespace", "audited", "test=audited")
        apply(
            k,
            policy(
                "audit.example.com",
                auditAnnotations=[
                    {
                        "key": "replicas",
                        "valueExpression": "'replicas: ' + string(object.spec.replicas)",
                    }
                ],
            ),
            binding(
                "audit-binding.example.com",
                "audit.example.com",
                "audited",
                validationActions=["Audit"],
            ),
        )
        created = k("apply", "-n", "audited", "-f", "-", input=deployment("big", 7))
        assert (created.stdout.strip(), created.stderr.strip()) == (
            "deployment.apps/big created",
            "",
        )
    events = [json.loads(line) for line in log.read_text().splitlines()]
    (event,) = [
        e
        for e in events
        if e["verb"] == "create" and (e.get("objectRef") or {}).get("resource") == "deployments"
    ]
    annotations = event["annotations"]
    assert json.loads(annotations["validation.policy.admission.k8s.io/validation_failure"]) == [
        {
            "message": "failed expression: object.spec.replicas <= 5",
            "policy": "audit.example.com",
            "binding": "audit-binding.example.com",
            "expressionIndex": 0,
            "validationActions": ["Audit"],
        }
    ]
    assert annotations["audit.example.com/replicas"] == "replicas: 7"


def test_authorizer_in_expressions_asks_rbac(k: Kubectl) -> None:
    test = "authz-" + uuid.uuid4().hex[:6]
    ns = namespace(k, test)
    apply(
        k,
        policy(
            f"{test}.example.com",
            validations=[
                {
                    # The request's user (the admin) may; the namespace's default
                    # ServiceAccount has no rights at all under RBAC.
                    "expression": "authorizer.requestResource.check('create').allowed()",
                    "message": "the user may not create this",
                },
                {
                    "expression": "authorizer.serviceAccount(object.metadata.namespace, "
                    "'default').group('').resource('secrets').namespace(object.metadata.namespace)"
                    ".check('list').allowed()",
                    "messageExpression": "'default may not list secrets in ' "
                    "+ object.metadata.namespace",
                },
            ],
        ),
        binding(f"{test}-binding.example.com", f"{test}.example.com", test),
    )
    refused = k("apply", "-n", ns, "-f", "-", input=deployment("web", 1), check=False)
    assert refused.returncode == 1
    assert refused.stderr.strip().endswith(f"denied request: default may not list secrets in {ns}")
    k(
        "create",
        "rolebinding",
        "default-view",
        "--clusterrole=admin",
        f"--serviceaccount={ns}:default",
        "-n",
        ns,
    )
    # RBAC sees the new binding through its watch, as upstream's does: retry a little.
    deadline = time.monotonic() + 10
    while True:
        created = k("apply", "-n", ns, "-f", "-", input=deployment("web", 1), check=False)
        if created.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert created.stdout.strip() == "deployment.apps/web created", created.stderr


def test_custom_resource_params(k: Kubectl) -> None:
    test = "crparams-" + uuid.uuid4().hex[:6]
    group = f"{test}.example.com"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"replicalimits.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {
                "plural": "replicalimits",
                "singular": "replicalimit",
                "kind": "ReplicaLimit",
            },
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {"maxReplicas": {"type": "integer"}},
                        }
                    },
                }
            ],
        },
    }
    apply(k, crd)
    k("wait", "--for=condition=Established", f"crd/replicalimits.{group}", "--timeout=30s")
    ns = namespace(k, test)
    limit = {
        "apiVersion": f"{group}/v1",
        "kind": "ReplicaLimit",
        "metadata": {"name": "limit", "namespace": ns},
        "maxReplicas": 2,
    }
    apply(
        k,
        limit,
        policy(
            f"{test}.example.com",
            paramKind={"apiVersion": f"{group}/v1", "kind": "ReplicaLimit"},
            validations=[
                {
                    "expression": "object.spec.replicas <= params.maxReplicas",
                    "messageExpression": "'at most ' + string(params.maxReplicas) + ' replicas'",
                }
            ],
        ),
        binding(
            f"{test}-binding.example.com",
            f"{test}.example.com",
            test,
            paramRef={"name": "limit", "parameterNotFoundAction": "Deny"},
        ),
    )
    refused = k("apply", "-n", ns, "-f", "-", input=deployment("three", 3), check=False)
    assert refused.returncode == 1
    assert refused.stderr.strip().endswith("denied request: at most 2 replicas")
    k("apply", "-n", ns, "-f", "-", input=deployment("two", 2))
    # The policy goes first: with its paramKind gone it would refuse every Deployment
    # its matchConstraints match ("failed to configure policy"), as upstream's does.
    k("delete", "validatingadmissionpolicy", f"{test}.example.com")
    k("delete", "crd", f"replicalimits.{group}")


def test_type_checking_against_a_custom_resources_schema(cluster_kubectl: Kubectl) -> None:
    """Custom resources' schemas come from the server's discovery and OpenAPI v3, as
    upstream's status controller finds them."""
    test = "typedcr-" + uuid.uuid4().hex[:6]
    group = f"{test}.example.com"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"limits.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "limits", "singular": "limit", "kind": "Limit"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "properties": {"max": {"type": "integer"}},
                                }
                            },
                        }
                    },
                }
            ],
        },
    }
    apply(cluster_kubectl, crd)
    cluster_kubectl("wait", "--for=condition=Established", f"crd/limits.{group}", "--timeout=30s")
    name = f"{test}.example.com"
    typed = policy(
        name,
        matchConstraints={
            "resourceRules": [
                {
                    "apiGroups": [group],
                    "apiVersions": ["v1"],
                    "operations": ["CREATE"],
                    "resources": ["limits"],
                }
            ]
        },
        validations=[
            {"expression": "object.spec.maxx <= 5"},
            {"expression": "object.spec.max <= 5 && object.metadata.name != ''"},
        ],
    )
    apply(cluster_kubectl, typed)
    deadline = time.monotonic() + 20
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = json.loads(
            cluster_kubectl("get", "validatingadmissionpolicy", name, "-o", "json").stdout
        ).get("status", {})
        if status.get("observedGeneration") == 1:
            break
        time.sleep(0.1)
    assert status["typeChecking"]["expressionWarnings"] == [
        {
            "fieldRef": "spec.validations[0].expression",
            "warning": f"{group}/v1, Kind=Limit: compilation failed: ERROR: <input>:1:12: "
            "undefined field 'maxx'\n | object.spec.maxx <= 5\n | ...........^\n",
        }
    ]
    cluster_kubectl("delete", "validatingadmissionpolicy", name)
    cluster_kubectl("delete", "crd", f"limits.{group}")
