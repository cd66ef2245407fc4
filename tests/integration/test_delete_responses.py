"""What DELETE answers, kind by kind, as upstream answers it, and the official
Python client's generated ``delete_*`` calls decoding every answer.

Upstream's generic store (``registry/generic/registry/store.go``) answers a
deletion that happened with the deleted object when the kind's storage sets
``ReturnDeletedObject`` (``pkg/registry/<group>/<kind>/storage/storage.go``),
and otherwise with a ``Status`` of success whose ``details.kind`` is the
*resource*; a deletion deferred by finalizers or a grace period answers with
the object as it now is, for every kind. The table below is read from those
files (Kubernetes 1.32) and checked against the OpenAPI the official Python
client was generated from, which types the answer of exactly those kinds as
the object.
"""

from __future__ import annotations

import inspect
import json
import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import config

from pilothouse import testing
from pilothouse.api import resources
from pilothouse.client import rest

OBJECT = "object"
STATUS = "status"

UPSTREAM_DELETE_ANSWER: dict[tuple[str, str], str] = {
    ("", "pods"): OBJECT,
    ("", "services"): OBJECT,
    ("", "namespaces"): OBJECT,  # its REST wraps the store; always deferred at first
    ("", "serviceaccounts"): OBJECT,
    ("", "persistentvolumes"): OBJECT,
    ("", "persistentvolumeclaims"): OBJECT,
    ("", "podtemplates"): OBJECT,
    ("", "resourcequotas"): OBJECT,
    ("", "nodes"): STATUS,
    ("", "replicationcontrollers"): STATUS,
    ("", "endpoints"): STATUS,
    ("", "configmaps"): STATUS,
    ("", "secrets"): STATUS,
    ("", "events"): STATUS,
    ("", "limitranges"): STATUS,
    ("apps", "deployments"): STATUS,
    ("apps", "replicasets"): STATUS,
    ("apps", "statefulsets"): STATUS,
    ("apps", "daemonsets"): STATUS,
    ("apps", "controllerrevisions"): STATUS,
    ("batch", "jobs"): STATUS,
    ("batch", "cronjobs"): STATUS,
    ("autoscaling", "horizontalpodautoscalers"): STATUS,
    ("coordination.k8s.io", "leases"): STATUS,
    ("discovery.k8s.io", "endpointslices"): STATUS,
    ("events.k8s.io", "events"): STATUS,
    ("scheduling.k8s.io", "priorityclasses"): STATUS,
    ("policy", "poddisruptionbudgets"): STATUS,
    ("certificates.k8s.io", "certificatesigningrequests"): STATUS,
    ("rbac.authorization.k8s.io", "roles"): STATUS,
    ("rbac.authorization.k8s.io", "rolebindings"): STATUS,
    ("rbac.authorization.k8s.io", "clusterroles"): STATUS,
    ("rbac.authorization.k8s.io", "clusterrolebindings"): STATUS,
    ("storage.k8s.io", "storageclasses"): OBJECT,
    ("storage.k8s.io", "csidrivers"): OBJECT,
    ("storage.k8s.io", "csinodes"): OBJECT,
    ("storage.k8s.io", "volumeattachments"): OBJECT,
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"): STATUS,
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations"): STATUS,
    ("admissionregistration.k8s.io", "validatingadmissionpolicies"): STATUS,
    ("admissionregistration.k8s.io", "validatingadmissionpolicybindings"): STATUS,
}

# Kinds whose names are what they serve (``<plural>.<group>``, ``<version>.<group>``), so
# the table's made-up names do not fit them: a CRD's DELETE answer (the object, held by
# its cleanup finalizer) is checked in tests/apiserver/crd/test_serving.py.
NAMED_AFTER_WHAT_THEY_SERVE = {
    ("apiextensions.k8s.io", "customresourcedefinitions"),
    ("apiregistration.k8s.io", "apiservices"),
}

DELETABLE = [
    r
    for r in resources.RESOURCES
    if r.stored and "delete" in r.verbs and (r.group, r.plural) not in NAMED_AFTER_WHAT_THEY_SERVE
]


def _ident(r: resources.Resource) -> str:
    return f"{r.group or 'core'}/{r.version}/{r.plural}"


def client_api_class(resource: resources.Resource) -> Any:
    """The generated API class of a group version (``apps/v1`` → ``AppsV1Api``)."""
    words = resource.group.removesuffix(".k8s.io").split(".") if resource.group else ["core"]
    name = "".join(w.capitalize() for w in words) + resource.version.capitalize() + "Api"
    return getattr(k8s, name)


def snake(kind: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", kind).lower()


def delete_method(resource: resources.Resource, *, collection: bool = False) -> str:
    scope = "namespaced_" if resource.namespaced else ""
    if resource.kind == "Namespace":
        return "delete_collection_namespace" if collection else "delete_namespace"
    prefix = "delete_collection_" if collection else "delete_"
    return f"{prefix}{scope}{snake(resource.kind)}"


def declared_answer(resource: resources.Resource) -> str:
    """What the client's OpenAPI declares a DELETE answers: a model or 'object'."""
    api = client_api_class(resource)
    fn = getattr(api, delete_method(resource))
    # The generated method lists its response types in its own source.
    source = inspect.getsource(fn)
    found = re.search(r"'200': \"(\w+)\"", source)
    assert found, f"no response type in {api.__name__}.{fn.__name__}"
    return found.group(1)


def test_every_deletable_resource_has_an_upstream_answer() -> None:
    missing = [_ident(r) for r in DELETABLE if (r.group, r.plural) not in UPSTREAM_DELETE_ANSWER]
    assert not missing, f"add upstream's DELETE answer for {missing} (and a sample object)"


@pytest.mark.parametrize("res", DELETABLE, ids=_ident)
def test_table_agrees_with_the_openapi_the_client_was_generated_from(
    res: resources.Resource,
) -> None:
    declared = declared_answer(res)
    expected = UPSTREAM_DELETE_ANSWER[(res.group, res.plural)]
    if res.plural == "namespaces":
        # The namespace REST wraps the store, so OpenAPI shows a Status; the
        # answer is the namespace (marked Terminating).
        assert declared == "object"
        return
    assert (declared != "object") == (expected == OBJECT), declared


@pytest.fixture(scope="module")
def api_client(api_server: testing.ServerThread) -> Iterator[k8s.ApiClient]:
    c = config.new_client_from_config(config_file=str(api_server.kubeconfig))
    yield c
    c.close()


@pytest.fixture
def cleanup(api: Any) -> Iterator[list[str]]:
    paths: list[str] = []
    yield paths
    for path in paths:
        api.request("DELETE", path + "?gracePeriodSeconds=0")


@pytest.mark.parametrize("res", DELETABLE, ids=_ident)
def test_delete_answers_as_upstream(
    api: Any,
    namespace: str,
    sample: Callable[..., dict[str, Any]],
    cleanup: list[str],
    res: resources.Resource,
) -> None:
    name = "del-" + uuid.uuid4().hex[:8]
    ns = namespace if res.namespaced else ""
    status, created = api.json("POST", rest.resource_path(res, ns), sample(res, name, ns))
    assert status == 201, created.get("message")
    path = rest.resource_path(res, ns, name)
    cleanup.append(path)

    # What kubectl sends; RCs and Jobs would otherwise orphan (and wait for the
    # garbage collector), which test_jobs_and_rcs_orphan_by_default covers.
    resp = api.request("DELETE", path, {"propagationPolicy": "Background"})
    assert resp.status == 200
    assert resp.data.endswith(b"}\n")
    body = json.loads(resp.data)
    if UPSTREAM_DELETE_ANSWER[(res.group, res.plural)] == OBJECT:
        assert body["kind"] == res.kind and body["apiVersion"] == res.api_version
        assert body["metadata"]["name"] == name
        assert body["metadata"]["uid"] == created["metadata"]["uid"]
        assert list(body)[:3] == ["kind", "apiVersion", "metadata"]
    else:
        details: dict[str, Any] = {"name": name}
        if res.group:
            details["group"] = res.group
        details["kind"] = res.plural
        details["uid"] = created["metadata"]["uid"]
        expected = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": details,
        }
        assert body == expected
        assert resp.data == json.dumps(expected, separators=(",", ":")).encode() + b"\n"

    after, _ = api.json("GET", path)
    if res.plural == "namespaces" or body.get("metadata", {}).get("finalizers"):
        # Terminating: held by the kubernetes finalizer (namespaces) or a protection
        # finalizer (volumes and claims) until their controllers let go.
        assert after == 200
    else:
        assert after == 404


def test_a_deferred_deletion_answers_with_the_object(api: Any, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps/held"
    status, _ = api.json(
        "POST",
        f"/api/v1/namespaces/{namespace}/configmaps",
        {"metadata": {"name": "held", "finalizers": ["example.com/hold"]}},
    )
    assert status == 201
    status, body = api.json("DELETE", path)
    assert status == 200 and body["kind"] == "ConfigMap"
    md = body["metadata"]
    assert md["deletionTimestamp"] and md["deletionGracePeriodSeconds"] == 0
    # Again: still the object, unchanged.
    status, again = api.json("DELETE", path)
    assert status == 200 and again["metadata"]["resourceVersion"] == md["resourceVersion"]
    # The old way of asking for cascading deletion, on an object that stays: 202.
    status, accepted = api.json("DELETE", path, {"orphanDependents": False})
    assert status == 202 and accepted["kind"] == "ConfigMap"
    status, _ = api.json(
        "PATCH",
        path,
        {"metadata": {"finalizers": None}},
        content_type="application/merge-patch+json",
    )
    assert status == 200
    assert api.json("GET", path)[0] == 404


def test_jobs_and_rcs_orphan_by_default(api: Any, namespace: str, sample: Any) -> None:
    jobs = resources.DEFAULT.by_path("batch", "v1", "jobs")
    rcs = resources.DEFAULT.by_path("", "v1", "replicationcontrollers")
    assert jobs is not None and rcs is not None
    for res in (jobs, rcs):
        api.json("POST", rest.resource_path(res, namespace), sample(res, "keep", namespace))
        resp = api.request("DELETE", rest.resource_path(res, namespace, "keep"))
        body = json.loads(resp.data)
        assert resp.status == 200 and body["kind"] == res.kind
        assert body["metadata"]["finalizers"] == ["orphan"]
        warning = resp.headers.get("Warning", "")
        if res is jobs:
            assert warning == (
                '299 - "child pods are preserved by default when jobs are deleted; set '
                "propagationPolicy=Background to remove them or set "
                'propagationPolicy=Orphan to suppress this warning"'
            )
        else:
            assert warning == ""
        # Named policies override the default.
        api.json("POST", rest.resource_path(res, namespace), sample(res, "drop", namespace))
        status, gone = api.json(
            "DELETE",
            rest.resource_path(res, namespace, "drop"),
            {"propagationPolicy": "Background"},
        )
        assert status == 200 and gone["kind"] == "Status"


def test_a_terminating_namespace_refuses_another_delete(api: Any) -> None:
    name = "ns-" + uuid.uuid4().hex[:8]
    api.json("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    status, first = api.json("DELETE", f"/api/v1/namespaces/{name}")
    assert status == 200 and first["status"]["phase"] == "Terminating"
    assert "deletionGracePeriodSeconds" not in first["metadata"]
    resp = api.request("DELETE", f"/api/v1/namespaces/{name}")
    assert resp.status == 409
    assert resp.data == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        b'"message":"Operation cannot be fulfilled on namespaces \\"'
        + name.encode()
        + b'\\": The system is ensuring all content is removed from this namespace.  '
        b'Upon completion, this namespace will automatically be purged by the system.",'
        b'"reason":"Conflict","details":{"name":"'
        + name.encode()
        + b'","kind":"namespaces"},"code":409}\n'
    )


def test_preconditions_fail_as_upstreams_before_delete(api: Any, namespace: str) -> None:
    base = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    status, created = api.json(
        "POST",
        base,
        {
            "metadata": {"name": "d"},
            "spec": {
                "selector": {"matchLabels": {"app": "d"}},
                "template": {
                    "metadata": {"labels": {"app": "d"}},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}]},
                },
            },
        },
    )
    assert status == 201
    uid = created["metadata"]["uid"]
    status, body = api.json("DELETE", base + "/d", {"preconditions": {"uid": "nope"}})
    assert status == 409 and body["reason"] == "Conflict"
    assert body["message"] == (
        'Operation cannot be fulfilled on Deployment.apps "d": the UID in the precondition '
        f"(nope) does not match the UID in record ({uid}). "
        "The object might have been deleted and then recreated"
    )
    assert body["details"] == {"name": "d", "group": "apps", "kind": "Deployment"}
    rv = created["metadata"]["resourceVersion"]
    status, body = api.json("DELETE", base + "/d", {"preconditions": {"resourceVersion": "1"}})
    assert status == 409
    assert body["message"].endswith(
        f"the ResourceVersion in the precondition (1) does not match the ResourceVersion "
        f"in record ({rv}). The object might have been modified"
    )


def test_deletecollection_answers_with_the_list_as_it_was(api: Any, namespace: str) -> None:
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    for name in ("a", "b"):
        api.json("POST", base, {"metadata": {"name": name, "labels": {"x": "y"}}})
    status, body = api.json("DELETE", base + "?labelSelector=x%3Dy")
    assert status == 200 and body["kind"] == "ConfigMapList"
    assert [i["metadata"]["name"] for i in body["items"]] == ["a", "b"]
    assert all("deletionTimestamp" not in i["metadata"] for i in body["items"])
    assert api.json("GET", base + "?labelSelector=x%3Dy")[1]["items"] == []


@pytest.fixture
def created(
    api: Any, namespace: str, sample: Callable[..., dict[str, Any]]
) -> Iterator[Callable[[resources.Resource, str], None]]:
    made: list[str] = []

    def make(res: resources.Resource, name: str) -> None:
        ns = namespace if res.namespaced else ""
        body = sample(res, name, ns)
        body["metadata"]["labels"] = {"suite": namespace}
        status, answer = api.json("POST", rest.resource_path(res, ns), body)
        assert status == 201, answer.get("message")
        made.append(rest.resource_path(res, ns, name))

    yield make
    for path in made:
        api.request("DELETE", path + "?gracePeriodSeconds=0")


@pytest.mark.parametrize("res", DELETABLE, ids=lambda r: f"{r.group or 'core'}.{r.plural}")
def test_generated_delete_calls_decode(
    api_client: k8s.ApiClient,
    namespace: str,
    created: Callable[[resources.Resource, str], None],
    res: resources.Resource,
) -> None:
    api = client_api_class(res)(api_client)
    declared = declared_answer(res)
    name = "py-" + uuid.uuid4().hex[:8]
    created(res, name)
    args = (name, namespace) if res.namespaced else (name,)
    answer = getattr(api, delete_method(res))(*args, propagation_policy="Background")
    if declared == "object":
        assert isinstance(answer, dict)
        assert answer["kind"] in ("Status", res.kind)
    else:
        model = getattr(k8s, declared)
        assert isinstance(answer, model)
        assert answer.metadata.name == name

    if "deletecollection" not in res.verbs:
        return
    others = [f"{name}-{i}" for i in range(2)]
    for other in others:
        created(res, other)
    collection = getattr(api, delete_method(res, collection=True))
    kwargs = {"label_selector": f"suite={namespace}", "propagation_policy": "Background"}
    answer = collection(namespace, **kwargs) if res.namespaced else collection(**kwargs)
    # Declared a Status; upstream answers with the list it deleted, which the
    # client's model takes in without complaint.
    assert isinstance(answer, k8s.V1Status)
    assert answer.kind == res.list_kind
    lister = getattr(api, delete_method(res).replace("delete_", "list_", 1))
    kwargs = {"label_selector": f"suite={namespace}"}
    left = lister(namespace, **kwargs) if res.namespaced else lister(**kwargs)
    # Gone, or terminating where a protection finalizer holds them (volumes, claims).
    assert not [
        i for i in left.items if i.metadata.name in others and i.metadata.deletion_timestamp is None
    ]
