"""The audit log of a running server: one create recorded at each level, the stages of short
and long requests, refusals, failed authentication, patches, and the annotations admission
adds."""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3

from pilothouse import testing
from pilothouse.apiserver.audit import auditor, backend, event, policy

from ...conftest import API

POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
rules:
- level: None
  namespaces: ["lvl-none"]
- level: Metadata
  namespaces: ["lvl-metadata"]
- level: Request
  namespaces: ["lvl-request"]
- level: RequestResponse
  namespaces: ["lvl-rr"]
- level: Metadata
  namespaces: ["quiet"]
  omitStages: ["RequestReceived"]
- level: RequestResponse
  namespaces: ["lean"]
  omitManagedFields: true
- level: Metadata
  nonResourceURLs: ["/version"]
- level: None
  resources: [{group: "", resources: ["events"]}]
- level: Metadata
  userGroups: ["system:unauthenticated"]
- level: None
"""
# The test's own requests (the server's controllers write into new namespaces too).
ADMIN = {"user.username": "admin"}
LEVEL_NAMESPACES = ("lvl-none", "lvl-metadata", "lvl-request", "lvl-rr", "quiet", "lean")


class Audited:
    def __init__(self, server: testing.ServerThread, log: Path) -> None:
        self.server = server
        self.log = log
        self.api = API(server)

    def events(self, **match: Any) -> list[dict[str, Any]]:
        """The events so far whose fields (objectRef.* with a dot) equal ``match``."""
        out = []
        for line in self.log.read_text().splitlines():
            e = json.loads(line)
            ok = True
            for key, want in match.items():
                value: Any = e
                for part in key.split("."):
                    value = value.get(part) if isinstance(value, dict) else None
                ok = ok and value == want
            if ok:
                out.append(e)
        return out


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Audited]:
    tmp = tmp_path_factory.mktemp("audit")
    (tmp / "policy.yaml").write_text(POLICY)
    log = tmp / "log" / "audit.log"
    with testing.server_thread(
        tmp / "data",
        audit_policy_file=tmp / "policy.yaml",
        audit_log=backend.Options(path=str(log)),
    ) as srv:
        a = Audited(srv, log)
        for ns in LEVEL_NAMESPACES:
            status, body = a.api.json("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
            assert status == 201, body
        yield a


def create_configmap(a: Audited, ns: str, name: str) -> tuple[Any, dict[str, Any]]:
    resp = a.api.request(
        "POST",
        f"/api/v1/namespaces/{ns}/configmaps?fieldManager=test",
        {"metadata": {"name": name}, "data": {"k": "v"}},
        headers={"User-Agent": "audit-test/1.0"},
    )
    assert resp.status == 201, resp.data
    return resp, json.loads(resp.data)


def test_a_create_at_each_level(audited: Audited) -> None:
    seen: dict[str, list[dict[str, Any]]] = {}
    ids: dict[str, str] = {}
    bodies: dict[str, dict[str, Any]] = {}
    for ns in ("lvl-none", "lvl-metadata", "lvl-request", "lvl-rr"):
        resp, body = create_configmap(audited, ns, "cm")
        ids[ns] = resp.headers["Audit-Id"]
        bodies[ns] = body
        seen[ns] = audited.events(verb="create", **{"objectRef.namespace": ns, **ADMIN})
    assert seen["lvl-none"] == []
    for ns, level in (
        ("lvl-metadata", "Metadata"),
        ("lvl-request", "Request"),
        ("lvl-rr", "RequestResponse"),
    ):
        events = seen[ns]
        assert [e["stage"] for e in events] == ["RequestReceived", "ResponseComplete"]
        received, complete = events
        assert {e["auditID"] for e in events} == {ids[ns]}
        for e in events:
            assert e["kind"] == "Event" and e["apiVersion"] == "audit.k8s.io/v1"
            assert e["level"] == level
            assert e["requestURI"] == f"/api/v1/namespaces/{ns}/configmaps?fieldManager=test"
            assert e["user"] == {
                "username": "admin",
                "groups": ["system:masters", "system:authenticated"],
            }
            assert e["sourceIPs"] == ["127.0.0.1"]
            assert e["userAgent"] == "audit-test/1.0"
            assert list(e)[:4] == ["kind", "apiVersion", "level", "auditID"]
        # The name is learnt from the body, after the first event (as upstream's).
        ref = {"resource": "configmaps", "namespace": ns, "apiVersion": "v1"}
        assert received["objectRef"] == ref
        assert complete["objectRef"] == {**ref, "name": "cm"}
        assert "responseStatus" not in received
        assert complete["responseStatus"] == {"metadata": {}, "code": 201}
        assert received["requestReceivedTimestamp"] == complete["requestReceivedTimestamp"]
        assert received["stageTimestamp"] == received["requestReceivedTimestamp"]
        assert complete["stageTimestamp"] >= complete["requestReceivedTimestamp"]
    assert "requestObject" not in seen["lvl-metadata"][1]
    request_object = seen["lvl-request"][1]["requestObject"]
    assert request_object == {
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": {"name": "cm"},
        "data": {"k": "v"},
    }
    assert "responseObject" not in seen["lvl-request"][1]
    rr = seen["lvl-rr"][1]
    assert rr["requestObject"] == request_object
    assert rr["responseObject"] == bodies["lvl-rr"]
    assert "responseObject" not in seen["lvl-rr"][0]


def test_managed_fields_can_be_left_out(audited: Audited) -> None:
    _, body = create_configmap(audited, "lean", "cm")
    assert body["metadata"]["managedFields"][0]["manager"] == "test"
    complete = audited.events(
        verb="create", stage="ResponseComplete", **{"objectRef.namespace": "lean", **ADMIN}
    )
    (e,) = complete
    assert "managedFields" not in e["responseObject"]["metadata"]
    assert e["responseObject"]["metadata"]["name"] == "cm"
    create_configmap(audited, "lvl-rr", "with-fields")
    (rr,) = audited.events(
        verb="create",
        stage="ResponseComplete",
        **{"objectRef.namespace": "lvl-rr", "objectRef.name": "with-fields"},
    )
    assert rr["responseObject"]["metadata"]["managedFields"]  # kept where the rule keeps them


def test_omitted_stages_are_not_written(audited: Audited) -> None:
    create_configmap(audited, "quiet", "cm")
    events = audited.events(verb="create", **{"objectRef.namespace": "quiet", **ADMIN})
    assert [e["stage"] for e in events] == ["ResponseComplete"]


def test_a_watch_is_recorded_when_it_starts_and_when_it_ends(audited: Audited) -> None:
    resp = audited.api.request(
        "GET",
        "/api/v1/namespaces/lvl-metadata/configmaps?watch=true&timeoutSeconds=1",
        preload=False,
    )
    assert resp.status == 200
    audit_id = resp.headers["Audit-Id"]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and [
        e["stage"] for e in audited.events(auditID=audit_id)
    ] != [
        "RequestReceived",
        "ResponseStarted",
    ]:
        time.sleep(0.02)
    started = audited.events(auditID=audit_id)
    assert [e["stage"] for e in started] == ["RequestReceived", "ResponseStarted"]
    assert started[1]["responseStatus"] == {"metadata": {}, "code": 200}
    resp.read()  # the watch ends after its timeout
    resp.release_conn()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len(audited.events(auditID=audit_id)) < 3:
        time.sleep(0.02)
    events = audited.events(auditID=audit_id)
    assert [e["stage"] for e in events] == [
        "RequestReceived",
        "ResponseStarted",
        "ResponseComplete",
    ]
    assert events[0]["verb"] == "watch"


def test_refusals_carry_the_status(audited: Audited) -> None:
    status, body = audited.api.json(
        "POST", "/api/v1/namespaces/lvl-metadata/configmaps", {"metadata": {"name": "Bad_Name"}}
    )
    assert status == 422
    (complete,) = audited.events(
        verb="create", stage="ResponseComplete", **{"objectRef.name": "Bad_Name"}
    )
    assert complete["responseStatus"] == {
        "metadata": {},
        "status": "Failure",
        "message": body["message"],
        "reason": "Invalid",
        "details": body["details"],
        "code": 422,
    }


def test_failed_authentication_is_recorded_without_a_user(audited: Audited) -> None:
    pki = audited.server.server.pki
    assert pki is not None
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    pool = urllib3.PoolManager(ssl_context=ctx, retries=False)
    resp = pool.request(
        "GET",
        audited.api.base + "/api/v1/namespaces/lvl-metadata/secrets?who=nobody",
        headers={"Authorization": "Bearer not-a-token"},
    )
    assert resp.status == 401
    events = audited.events(requestURI="/api/v1/namespaces/lvl-metadata/secrets?who=nobody")
    assert len(events) == 1
    (e,) = events
    assert e["stage"] == "ResponseStarted"
    assert e["user"] == {}
    assert e["responseStatus"] == {
        "metadata": {},
        "message": "Authentication failed, attempted: bearer",
        "code": 401,
    }
    # A public path is served to anyone, recorded as the anonymous user.
    assert pool.request("GET", audited.api.base + "/version").status == 200
    anonymous = [
        e
        for e in audited.events(requestURI="/version")
        if e["user"].get("username") == "system:anonymous"
    ]
    assert anonymous and anonymous[-1]["user"]["groups"] == ["system:unauthenticated"]
    assert anonymous[-1]["verb"] == "get" and "objectRef" not in anonymous[-1]


def test_a_patch_is_recorded_as_sent(audited: Audited) -> None:
    create_configmap(audited, "lvl-request", "patched")
    status, _ = audited.api.json(
        "PATCH",
        "/api/v1/namespaces/lvl-request/configmaps/patched",
        {"data": {"k": "w"}},
        content_type="application/merge-patch+json",
    )
    assert status == 200
    (e,) = audited.events(verb="patch", stage="ResponseComplete", **{"objectRef.name": "patched"})
    assert e["requestObject"] == {"data": {"k": "w"}}


def test_admission_annotations_reach_the_log(audited: Audited) -> None:
    api = audited.api
    status, _ = api.json(
        "PATCH",
        "/api/v1/namespaces/lvl-metadata",
        {"metadata": {"labels": {"pod-security.kubernetes.io/audit": "restricted"}}},
        content_type="application/merge-patch+json",
    )
    assert status == 200
    pod = {
        "metadata": {"name": "audited"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }
    assert api.json("POST", "/api/v1/namespaces/lvl-metadata/pods", pod)[0] == 201
    (e,) = audited.events(verb="create", stage="ResponseComplete", **{"objectRef.name": "audited"})
    annotations = e["annotations"]
    assert annotations["pod-security.kubernetes.io/enforce-policy"] == "privileged:latest"
    assert annotations["pod-security.kubernetes.io/audit-violations"].startswith(
        'would violate PodSecurity "restricted:latest": allowPrivilegeEscalation != false'
    )
    # The authorizer's decision is recorded beside admission's (system:masters is let
    # through before RBAC is asked, with no reason, as upstream's privileged-group step).
    assert annotations["authorization.k8s.io/decision"] == "allow"
    assert annotations["authorization.k8s.io/reason"] == ""


def test_concurrent_requests_write_whole_lines(audited: Audited) -> None:
    def work(i: int) -> None:
        create_configmap(audited, "lvl-rr", f"many-{i}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for line in audited.log.read_text().splitlines():
        json.loads(line)  # every line is one whole event
    assert (
        len(
            [
                e
                for e in audited.events(verb="create", stage="ResponseComplete")
                if e["objectRef"]["name"].startswith("many-")
            ]
        )
        == 8
    )


def test_legacy_format_line() -> None:
    record = event.Record(
        audit_id="id-1",
        decision=policy.Decision("Metadata"),
        received=1_700_000_000.25,
        verb="create",
        request_uri="/api/v1/namespaces/ns/pods",
        user={"username": "alice", "groups": ["dev", "system:authenticated"]},
        source_ips=["10.0.0.1"],
        user_agent="kubectl",
        object_ref={"namespace": "ns"},
        annotations={},
    )
    assert auditor.legacy_line(record, "RequestReceived").decode() == (
        '2023-11-14T22:13:20.25Z AUDIT: id="id-1" stage="RequestReceived" ip="10.0.0.1" '
        'method="create" user="alice" groups="[\\"dev\\",\\"system:authenticated\\"]" as="<self>" '
        'asgroups="<lookup>" user-agent="kubectl" namespace="ns" uri="/api/v1/namespaces/ns/pods" '
        'response="<deferred>"'
    )
    record.response_status = {"metadata": {}, "code": 201}
    assert auditor.legacy_line(record, "ResponseComplete").decode().endswith('response="201"')


def test_an_unexpected_failure_is_recorded_as_a_panic(
    audited: Audited, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = audited.server.server.resource_store("", "v1", "configmaps")

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(store, "create", broken)
    status, body = audited.api.json(
        "POST", "/api/v1/namespaces/lvl-metadata/configmaps", {"metadata": {"name": "doomed"}}
    )
    assert status == 500 and "boom" not in body["message"]  # the client never sees the cause
    events = audited.events(verb="create", **{"objectRef.namespace": "lvl-metadata", **ADMIN})
    panic = events[-1]
    assert panic["stage"] == "Panic"
    assert panic["responseStatus"] == {
        "metadata": {},
        "status": "Failure",
        "message": "APIServer panic'd: boom",
        "reason": "InternalError",
        "code": 500,
    }
