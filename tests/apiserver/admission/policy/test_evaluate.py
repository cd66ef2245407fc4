"""ValidatingAdmissionPolicy evaluation on a hand-filled watch cache: matching, params,
variables, match conditions, messages, actions, audit annotations, failure policies."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from pilothouse.api import defaults, errors, resources
from pilothouse.apiserver import cacheentry, resourcecache
from pilothouse.apiserver.admission.policy import evaluate, policies
from pilothouse.apiserver.admission.webhook import matching

REGISTRY = resources.DEFAULT
DEPLOYMENTS = REGISTRY.by_path("apps", "v1", "deployments")
assert DEPLOYMENTS is not None
CONFIGMAPS = "/registry/configmaps/"
PREFIXES = (policies.POLICIES, policies.BINDINGS, "/registry/namespaces/", CONFIGMAPS)


class Cache:
    def __init__(self) -> None:
        self.caches = {p: resourcecache.ResourceCache(p, 0) for p in PREFIXES}
        self.revision = 1

    def put(self, prefix: str, key: str, obj: dict[str, Any]) -> None:
        self.revision += 1
        cache = self.caches[prefix]
        entry = cacheentry.Entry(prefix + key, obj, self.revision)
        cache.apply(cacheentry.WatchEvent(cacheentry.ADDED, entry, None))

    def drop(self, prefix: str, key: str) -> None:
        self.revision += 1
        cache = self.caches[prefix]
        entry = cacheentry.Entry(prefix + key, {}, self.revision)
        cache.apply(cacheentry.WatchEvent(cacheentry.DELETED, entry, None))


def policy(name: str = "p", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
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
    obj = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": body,
    }
    defaults.apply_defaults("admissionregistration.k8s.io", "v1", "ValidatingAdmissionPolicy", obj)
    return obj


def binding(name: str = "b", policy_name: str = "p", **spec: Any) -> dict[str, Any]:
    obj = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {"policyName": policy_name, "validationActions": ["Deny"], **spec},
    }
    defaults.apply_defaults(
        "admissionregistration.k8s.io", "v1", "ValidatingAdmissionPolicyBinding", obj
    )
    return obj


def deployment(
    name: str = "web", replicas: int = 3, namespace: str = "dev", **labels: str
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"replicas": replicas},
    }


def request(
    obj: dict[str, Any], *, operation: str = "CREATE", old: dict[str, Any] | None = None
) -> matching.Request:
    warnings: list[str] = []
    annotations: dict[str, str] = {}
    req = matching.Request(
        operation=operation,
        resource=DEPLOYMENTS,
        subresource="",
        namespace=obj["metadata"]["namespace"],
        name=obj["metadata"]["name"],
        obj=obj,
        old=old,
        user={"username": "alice", "groups": ["dev"]},
        warn=warnings.append,
        annotate=annotations.__setitem__,
    )
    req.warnings = warnings  # type: ignore[attr-defined]
    req.annotations = annotations  # type: ignore[attr-defined]
    return req


@pytest.fixture
def cache() -> Cache:
    c = Cache()
    c.put("/registry/namespaces/", "dev", {"metadata": {"name": "dev", "labels": {"env": "dev"}}})
    c.put(
        "/registry/namespaces/", "prod", {"metadata": {"name": "prod", "labels": {"env": "prod"}}}
    )
    return c


def run(cache: Cache, req: matching.Request, authorizer: Any = None) -> errors.StatusError | None:
    source = policies.Source(cache)  # type: ignore[arg-type]
    evaluator = evaluate.Evaluator(
        cache=cache,  # type: ignore[arg-type]
        registry=REGISTRY,
        authorizer=authorizer,
        namespace=lambda n: (
            e.obj
            if (e := cache.caches["/registry/namespaces/"].objects.get("/registry/namespaces/" + n))
            else None
        ),
    )
    try:
        evaluator.validate(req, source.policies())
    except errors.StatusError as exc:
        return exc
    return None


def test_deny_with_upstream_status(cache: Cache) -> None:
    cache.put(policies.POLICIES, "p", policy())
    assert run(cache, request(deployment(replicas=6))) is None, "no binding: not in effect"
    cache.put(policies.BINDINGS, "b", binding())
    denied = run(cache, request(deployment(replicas=6)))
    assert denied is not None
    message = "ValidatingAdmissionPolicy 'p' with binding 'b' denied request: failed expression: object.spec.replicas <= 5"
    assert denied.status() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f'deployments.apps "web" is forbidden: {message}',
        "reason": "Invalid",
        "code": 422,
        "details": {
            "name": "web",
            "group": "apps",
            "kind": "deployments",
            "causes": [{"message": message}],
        },
    }
    assert run(cache, request(deployment(replicas=5))) is None


def test_messages_reasons_and_actions(cache: Cache) -> None:
    cache.put(
        policies.POLICIES,
        "p",
        policy(
            validations=[
                {
                    "expression": "object.spec.replicas <= 5",
                    "message": "  too many  ",
                    "reason": "Forbidden",
                },
                {
                    "expression": "object.metadata.name != 'forbidden'",
                    "messageExpression": "'name ' + object.metadata.name + ' is taken'",
                },
                {"expression": "object.spec.replicas != 4", "messageExpression": "'two\\nlines'"},
            ]
        ),
    )
    cache.put(policies.BINDINGS, "b", binding(validationActions=["Warn", "Audit"]))
    req = request(deployment(name="forbidden", replicas=6))
    assert run(cache, req) is None
    assert req.warnings == [  # type: ignore[attr-defined]
        "Validation failed for ValidatingAdmissionPolicy 'p' with binding 'b': too many",
        "Validation failed for ValidatingAdmissionPolicy 'p' with binding 'b': name forbidden is taken",
    ]
    failure = json.loads(req.annotations[evaluate.VALIDATION_FAILURE])  # type: ignore[attr-defined]
    assert failure == [
        {
            "message": "name forbidden is taken",
            "policy": "p",
            "binding": "b",
            "expressionIndex": 1,
            "validationActions": ["Warn", "Audit"],
        }
    ]
    cache.put(policies.BINDINGS, "b", binding())
    denied = run(cache, request(deployment(replicas=6)))
    assert denied is not None and (denied.code, denied.reason) == (403, "Forbidden")
    multi = run(cache, request(deployment(replicas=4)))
    assert multi is not None and multi.message.endswith(
        "denied request: failed expression: object.spec.replicas != 4"
    ), "a message expression with a line break falls back"


def test_params_by_name_and_selector(cache: Cache) -> None:
    spec = {
        "paramKind": {"apiVersion": "v1", "kind": "ConfigMap"},
        "validations": [
            {
                "expression": "object.spec.replicas <= int(params.data.max)",
                "messageExpression": "'over ' + params.metadata.name",
            }
        ],
    }
    cache.put(policies.POLICIES, "p", policy(**spec))
    cache.put(
        policies.BINDINGS,
        "b",
        binding(paramRef={"name": "limit", "parameterNotFoundAction": "Allow"}),
    )
    assert run(cache, request(deployment(replicas=50))) is None, "no param, Allow: skipped"
    cache.put(
        policies.BINDINGS,
        "b",
        binding(paramRef={"name": "limit", "parameterNotFoundAction": "Deny"}),
    )
    missing = run(cache, request(deployment(replicas=1)))
    assert missing is not None and missing.message.endswith(
        "failed to configure binding: no params found for policy binding with `Deny` parameterNotFoundAction"
    )
    cache.put(
        CONFIGMAPS,
        "dev/limit",
        {
            "metadata": {"name": "limit", "namespace": "dev", "labels": {"kind": "limit"}},
            "data": {"max": "3"},
        },
    )
    cache.put(
        CONFIGMAPS,
        "dev/strict",
        {
            "metadata": {"name": "strict", "namespace": "dev", "labels": {"kind": "limit"}},
            "data": {"max": "1"},
        },
    )
    assert run(cache, request(deployment(replicas=3))) is None
    over = run(cache, request(deployment(replicas=4)))
    assert over is not None and over.message.endswith("denied request: over limit")
    cache.put(
        policies.BINDINGS,
        "b",
        binding(
            paramRef={
                "selector": {"matchLabels": {"kind": "limit"}},
                "parameterNotFoundAction": "Deny",
            }
        ),
    )
    strict = run(cache, request(deployment(replicas=2)))
    assert strict is not None and strict.message.endswith("denied request: over strict"), (
        "every selected param checks"
    )
    # A namespaced param kind needs a namespace: a cluster-scoped request cannot have one.
    cache.put(
        policies.BINDINGS,
        "b",
        binding(paramRef={"name": "limit", "namespace": "dev", "parameterNotFoundAction": "Deny"}),
    )
    assert run(cache, request(deployment(replicas=3, namespace="prod"))) is None


def test_variables_match_conditions_and_request(cache: Cache) -> None:
    cache.put(
        policies.POLICIES,
        "p",
        policy(
            matchConditions=[
                {
                    "name": "not-system",
                    "expression": "!request.userInfo.username.startsWith('system:')",
                }
            ],
            variables=[
                {"name": "replicas", "expression": "object.spec.replicas"},
                {"name": "doubled", "expression": "variables.replicas * 2"},
            ],
            validations=[
                {"expression": "variables.doubled <= 10"},
                {
                    "expression": "request.operation != 'UPDATE' || object.spec.replicas >= oldObject.spec.replicas",
                    "message": "no scaling down",
                },
                {
                    "expression": "namespaceObject.metadata.labels.env != 'prod' || variables.replicas >= 2",
                    "message": "prod needs two",
                },
            ],
        ),
    )
    cache.put(policies.BINDINGS, "b", binding())
    assert run(cache, request(deployment(replicas=5))) is None
    assert run(cache, request(deployment(replicas=6))) is not None
    down = run(
        cache, request(deployment(replicas=2), operation="UPDATE", old=deployment(replicas=3))
    )
    assert down is not None and down.message.endswith("denied request: no scaling down")
    prod = run(cache, request(deployment(replicas=1, namespace="prod")))
    assert prod is not None and prod.message.endswith("denied request: prod needs two")
    system = request(deployment(replicas=9))
    system.user = {"username": "system:admin"}
    assert run(cache, system) is None, "the match condition excludes system users"


def test_evaluation_errors_follow_the_failure_policy(cache: Cache) -> None:
    cache.put(
        policies.POLICIES, "p", policy(validations=[{"expression": "object.spec.nothing > 1"}])
    )
    cache.put(policies.BINDINGS, "b", binding())
    failed = run(cache, request(deployment()))
    assert failed is not None
    assert failed.message.endswith(
        "denied request: expression 'object.spec.nothing > 1' resulted in error: no such key: nothing"
    )
    cache.put(
        policies.POLICIES,
        "p",
        policy(failurePolicy="Ignore", validations=[{"expression": "object.spec.nothing > 1"}]),
    )
    assert run(cache, request(deployment())) is None


def test_matching_excludes_names_and_selectors(cache: Cache) -> None:
    spec = copy.deepcopy(policy()["spec"])
    spec["matchConstraints"]["excludeResourceRules"] = [
        {
            "apiGroups": ["apps"],
            "apiVersions": ["v1"],
            "operations": ["*"],
            "resources": ["deployments"],
            "resourceNames": ["exempt"],
        }
    ]
    cache.put(policies.POLICIES, "p", policy(**spec))
    cache.put(
        policies.BINDINGS,
        "b",
        binding(
            matchResources={
                "namespaceSelector": {"matchLabels": {"env": "dev"}},
                "objectSelector": {
                    "matchExpressions": [{"key": "skip", "operator": "DoesNotExist"}]
                },
            }
        ),
    )
    assert run(cache, request(deployment(replicas=9))) is not None
    assert run(cache, request(deployment(name="exempt", replicas=9))) is None
    assert run(cache, request(deployment(replicas=9, namespace="prod"))) is None
    assert run(cache, request(deployment(replicas=9, skip="yes"))) is None


def test_audit_annotations(cache: Cache) -> None:
    cache.put(
        policies.POLICIES,
        "p",
        policy(
            validations=[],
            auditAnnotations=[
                {
                    "key": "replicas",
                    "valueExpression": "'replicas: ' + string(object.spec.replicas)",
                },
                {"key": "nothing", "valueExpression": "null"},
                {
                    "key": "wrong",
                    "valueExpression": "object.spec.replicas > 100 ? object.spec.replicas : null",
                },
            ],
        ),
    )
    cache.put(policies.BINDINGS, "b", binding())
    req = request(deployment(replicas=3))
    assert run(cache, req) is None
    assert req.annotations == {"p/replicas": "replicas: 3"}  # type: ignore[attr-defined]
    wrong = run(cache, request(deployment(replicas=101)))
    assert wrong is not None and wrong.message.endswith(
        "denied request: valueExpression 'object.spec.replicas > 100 ? object.spec.replicas : null' resulted in "
        "unsupported return type: int. Return type must be either string or null."
    )


def test_unknown_param_kind_is_the_policys_configuration_error(cache: Cache) -> None:
    cache.put(
        policies.POLICIES,
        "p",
        policy(paramKind={"apiVersion": "example.com/v1", "kind": "Limit"}),
    )
    cache.put(policies.BINDINGS, "b", binding(paramRef={"name": "x"}))
    denied = run(cache, request(deployment()))
    assert denied is not None and (denied.code, denied.reason) == (422, "Invalid")
    assert denied.message == (
        "deployments.apps \"web\" is forbidden: ValidatingAdmissionPolicy 'p' denied request: "
        "failed to configure policy: failed to find resource referenced by paramKind: "
        "'example.com/v1, Kind=Limit'"
    ), "no binding in the message: the policy itself cannot be used"
    other = request(deployment())
    other.operation = "DELETE"
    assert run(cache, other) is None, "requests the policy does not match are not refused"
    cache.put(
        policies.POLICIES,
        "p",
        policy(paramKind={"apiVersion": "v1", "kind": "Limit"}, failurePolicy="Ignore"),
    )
    assert run(cache, request(deployment())) is None, "Ignore: the policy is skipped"
    cache.put(policies.POLICIES, "p", policy(paramKind={"apiVersion": "v1", "kind": "Limit"}))
    core = run(cache, request(deployment()))
    assert core is not None and core.message.endswith("paramKind: '/v1, Kind=Limit'"), (
        "Go's GroupVersionKind.String() for the core group"
    )


def test_match_conditions_false_wins_then_errors_aggregate(cache: Cache) -> None:
    broken = {"name": "broken", "expression": "object.spec.nothing == 1"}
    also = {"name": "also", "expression": "object.spec.missing == 2"}
    no = {"name": "no", "expression": "object.metadata.name == 'other'"}
    cache.put(policies.BINDINGS, "b", binding())
    cache.put(policies.POLICIES, "p", policy(matchConditions=[broken, no]))
    assert run(cache, request(deployment(replicas=9))) is None, "a false condition skips"
    cache.put(policies.POLICIES, "p", policy(matchConditions=[broken]))
    one = run(cache, request(deployment(replicas=1)))
    assert one is not None and one.message.endswith(
        "denied request: expression 'object.spec.nothing == 1' resulted in error: "
        "no such key: nothing"
    )
    cache.put(policies.POLICIES, "p", policy(matchConditions=[broken, also]))
    both = run(cache, request(deployment(replicas=1)))
    assert both is not None and both.message.endswith(
        "denied request: [expression 'object.spec.nothing == 1' resulted in error: no such key: "
        "nothing, expression 'object.spec.missing == 2' resulted in error: no such key: missing]"
    )
    cache.put(
        policies.POLICIES, "p", policy(matchConditions=[broken, also], failurePolicy="Ignore")
    )
    assert run(cache, request(deployment(replicas=9))) is None, "Ignore: not evaluated"


def test_delete_sees_the_old_object_and_request(cache: Cache) -> None:
    cache.put(
        policies.POLICIES,
        "p",
        policy(
            matchConstraints={
                "resourceRules": [
                    {
                        "apiGroups": ["apps"],
                        "apiVersions": ["v1"],
                        "operations": ["DELETE"],
                        "resources": ["deployments"],
                    }
                ]
            },
            validations=[
                {
                    "expression": "object == null && (!has(oldObject.metadata.labels.keep) "
                    "|| oldObject.metadata.labels.keep != 'yes')",
                    "messageExpression": "request.userInfo.username + ' may not delete ' "
                    "+ request.name",
                }
            ],
        ),
    )
    cache.put(policies.BINDINGS, "b", binding())
    gone = request(deployment(), operation="DELETE", old=deployment())
    gone.obj = None
    assert run(cache, gone) is None
    kept = request(deployment(keep="yes"), operation="DELETE", old=deployment(keep="yes"))
    kept.obj = None
    denied = run(cache, kept)
    assert denied is not None and denied.message.endswith(
        "denied request: alice may not delete web"
    )


def test_match_policy_equivalent_sees_the_rules_version(cache: Cache) -> None:
    v2 = REGISTRY.by_path("autoscaling", "v2", "horizontalpodautoscalers")
    assert v2 is not None
    rules = [
        {
            "apiGroups": ["autoscaling"],
            "apiVersions": ["v1"],
            "operations": ["CREATE"],
            "resources": ["horizontalpodautoscalers"],
        }
    ]
    validations = [
        {
            # Only autoscaling/v1 has targetCPUUtilizationPercentage.
            "expression": "object.spec.targetCPUUtilizationPercentage <= 80",
            "messageExpression": "request.kind.version + ' ' + request.requestKind.version",
        }
    ]
    cache.put(
        policies.POLICIES,
        "p",
        policy(matchConstraints={"resourceRules": rules}, validations=validations),
    )
    cache.put(policies.BINDINGS, "b", binding())
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": "dev"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 1,
            "maxReplicas": 3,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 90},
                    },
                }
            ],
        },
    }
    req = request(hpa)
    req.resource = v2
    denied = run(cache, req)
    assert denied is not None and denied.message.endswith("denied request: v1 v2"), (
        "matched through autoscaling/v1: the object in v1, the request says both"
    )
    exact = copy.deepcopy(policy(matchConstraints={"resourceRules": rules}))
    exact["spec"]["matchConstraints"]["matchPolicy"] = "Exact"
    exact["spec"]["validations"] = validations
    cache.put(policies.POLICIES, "p", exact)
    assert run(cache, req) is None, "Exact: a v2 write is not a v1 rule's business"


class FakeAuthorizer:
    """Allows alice to read secrets in dev, and nothing else; records what it was asked."""

    def __init__(self) -> None:
        self.asked: list[Any] = []

    def authorize(self, a: Any) -> tuple[bool, str]:
        self.asked.append(a)
        if a.user.name == "alice" and a.resource == "secrets" and a.namespace == "dev":
            return True, "alice reads dev's secrets"
        return False, ""


def test_authorizer_checks_ask_the_servers_authorizer(cache: Cache) -> None:
    cache.put(
        policies.POLICIES,
        "p",
        policy(
            validations=[
                {
                    "expression": "authorizer.group('').resource('secrets')"
                    ".namespace(object.metadata.namespace).check('get').allowed()",
                    "messageExpression": "'secrets: ' + authorizer.group('').resource('secrets')"
                    ".namespace(object.metadata.namespace).check('get').reason()",
                },
                {
                    "expression": "!authorizer.serviceAccount('dev', 'builder').group('apps')"
                    ".resource('deployments').check('delete').allowed()",
                    "message": "the builder may not delete deployments",
                },
                {
                    "expression": "!authorizer.requestResource.subresource('scale')"
                    ".check('update').allowed()",
                    "message": "scale allowed",
                },
            ]
        ),
    )
    cache.put(policies.BINDINGS, "b", binding())
    fake = FakeAuthorizer()
    assert run(cache, request(deployment()), fake) is None, "alice may read dev's secrets"
    secrets, builder, scale = fake.asked
    assert (secrets.verb, secrets.resource_request, secrets.api_group, secrets.namespace) == (
        "get",
        True,
        "",
        "dev",
    )
    assert secrets.api_version == "*" and secrets.user.groups == ("dev",)
    assert builder.user.name == "system:serviceaccount:dev:builder"
    assert builder.user.groups == ("system:serviceaccounts", "system:serviceaccounts:dev")
    assert (scale.api_group, scale.api_version, scale.resource, scale.subresource) == (
        "apps",
        "*",
        "deployments",
        "scale",
    )
    assert (scale.namespace, scale.name) == ("dev", "web")
    denied = run(cache, request(deployment(namespace="prod")), FakeAuthorizer())
    assert denied is not None and denied.message.endswith("denied request: secrets:"), (
        "trimmed, as upstream"
    )


def test_a_failed_variable_fails_only_what_reads_it(cache: Cache) -> None:
    cache.put(
        policies.POLICIES,
        "p",
        policy(
            variables=[
                {"name": "bad", "expression": "object.spec.nothing"},
                {"name": "worse", "expression": "variables.bad + 1"},
                {"name": "replicas", "expression": "object.spec.replicas"},
            ],
            validations=[
                {"expression": "variables.replicas <= 5"},
                {"expression": "variables.worse > 1"},
            ],
        ),
    )
    cache.put(policies.BINDINGS, "b", binding())
    denied = run(cache, request(deployment(replicas=3)))
    assert denied is not None and denied.message.endswith(
        "denied request: expression 'variables.worse > 1' resulted in error: no such key: nothing"
    ), "the error of the variable at the root, as upstream's lazy variables give it"
    cache.put(
        policies.POLICIES,
        "p",
        policy(
            variables=[
                {"name": "bad", "expression": "object.spec.nothing"},
                {"name": "replicas", "expression": "object.spec.replicas"},
            ],
            validations=[{"expression": "variables.replicas <= 5"}],
        ),
    )
    assert run(cache, request(deployment(replicas=3))) is None, "an unread failure is no error"


def test_a_missing_namespace_is_not_found(cache: Cache) -> None:
    cache.put(policies.POLICIES, "p", policy())
    cache.put(policies.BINDINGS, "b", binding())
    missing = run(cache, request(deployment(namespace="gone")))
    assert missing is not None and (missing.code, missing.message) == (
        404,
        'namespaces "gone" not found',
    )
