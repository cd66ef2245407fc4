"""The webhook dispatchers against real HTTPS webhooks with a CA of their own.

Each test serves its webhooks with :class:`pilothouse.testing_https.HTTPSServer` and
admits hand-made requests through :class:`dispatch.Dispatcher`: what the webhook
receives, what its answer does to the request, and every failure worded as upstream.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

from pilothouse import testing_https
from pilothouse.api import defaults, errors, resources
from pilothouse.apiserver.admission.webhook import dispatch, hooks, matching
from pilothouse.apiserver.webhook import client, resolver

REGISTRY = resources.DEFAULT
PODS = REGISTRY.by_path("", "v1", "pods")
NAMESPACES = REGISTRY.by_path("", "v1", "namespaces")
HPA_V2 = REGISTRY.by_path("autoscaling", "v2", "horizontalpodautoscalers")
assert PODS is not None and NAMESPACES is not None and HPA_V2 is not None

NAMESPACE_LABELS = {"team-a": {"team": "a"}, "team-b": {"team": "b"}}


class FixedResolver(resolver.ServiceResolver):
    """Every Service resolves to the test server (its name is what TLS checks)."""

    def __init__(self, port: int) -> None:
        self.port = port

    def resolve(self, namespace: str, name: str, port: int) -> resolver.Address:
        if name == "missing":
            raise resolver.ResolveError(f'service "{name}" not found')
        return resolver.Address("127.0.0.1", self.port)


class Recorder:
    """Webhook handlers by path, each recording the requests it got."""

    def __init__(self) -> None:
        self.seen: dict[str, list[dict[str, Any]]] = {}
        self.peers: set[Any] = set()
        self.app = web.Application()

    def add(self, path: str, handle: testing_https.ReviewHandler) -> None:
        seen = self.seen.setdefault(path, [])
        inner = testing_https.admission_webhook(handle, seen=seen)

        async def serve(request: web.Request) -> web.StreamResponse:
            self.peers.add(
                request.transport.get_extra_info("peername") if request.transport else None
            )
            return await inner(request)

        self.app.router.add_post(path, serve)

    def raw(self, path: str, handler: Any) -> None:
        self.app.router.add_post(path, handler)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def server(recorder: Recorder) -> Iterator[testing_https.HTTPSServer]:
    # Routes are added by each test before the first request; aiohttp freezes the
    # router at start, so the server starts lazily in ``start``.
    srv = testing_https.HTTPSServer(
        recorder.app, hostnames=["localhost", "hooks.webhooks.svc"], ips=["127.0.0.1"]
    )
    yield srv
    srv.stop()


def make_dispatcher(srv: testing_https.HTTPSServer) -> dispatch.Dispatcher:
    return dispatch.Dispatcher(
        clients=client.ClientManager(FixedResolver(srv.port)),
        registry=REGISTRY,
        namespace_labels=NAMESPACE_LABELS.get,
    )


def webhook(
    name: str,
    srv: testing_https.HTTPSServer,
    path: str,
    *,
    rules: list[dict[str, Any]] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    hook: dict[str, Any] = {
        "name": name,
        "clientConfig": {"url": srv.url(path), "caBundle": srv.ca_bundle},
        "rules": rules
        or [
            {
                "operations": ["CREATE", "UPDATE"],
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "resources": ["pods"],
            }
        ],
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
    }
    hook.update(fields)
    return hook


def compile_config(
    *webhooks: dict[str, Any], mutating: bool, name: str = "config"
) -> list[hooks.Hook]:
    from pilothouse.apiserver.admission.webhook import plugins

    kind = "MutatingWebhookConfiguration" if mutating else "ValidatingWebhookConfiguration"
    config = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name},
        "webhooks": copy.deepcopy(list(webhooks)),
    }
    defaults.apply_defaults("admissionregistration.k8s.io", "v1", kind, config)
    return hooks.compile_hooks(config, mutating=mutating, conditions=plugins.compile_conditions)


def pod(name: str = "web", namespace: str = "team-a", **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }


def create(obj: dict[str, Any], resource: resources.Resource = PODS, **kw: Any) -> matching.Request:
    md = obj["metadata"]
    annotations: dict[str, str] = {}
    warnings: list[str] = []
    request = matching.Request(
        operation=kw.pop("operation", "CREATE"),
        resource=resource,
        subresource=kw.pop("subresource", ""),
        namespace=md.get("namespace", "") if resource.namespaced else "",
        name=md.get("name", ""),
        obj=obj,
        user={"username": "alice", "groups": ["dev", "system:authenticated"]},
        options=dispatch.options_for("CREATE", dry_run=kw.get("dry_run", False)),
        warn=warnings.append,
        annotate=annotations.__setitem__,
        **kw,
    )
    request.annotations = annotations  # type: ignore[attr-defined]
    request.warnings = warnings  # type: ignore[attr-defined]
    return request


# --- validating ---------------------------------------------------------------------


async def test_validating_webhook_denies_with_its_message(
    recorder: Recorder, server: testing_https.HTTPSServer
) -> None:
    def handle(req: dict[str, Any]) -> dict[str, Any]:
        labels = req["object"]["metadata"].get("labels") or {}
        if labels.get("forbidden") == "yes":
            return testing_https.deny(req, "pods labelled forbidden=yes are not allowed")
        return testing_https.allow(req)

    recorder.add("/validate", handle)
    server.start()
    hooks_ = compile_config(webhook("deny.example.com", server, "/validate"), mutating=False)
    d = make_dispatcher(server)

    await d.validate(create(pod()), hooks_)
    with pytest.raises(errors.StatusError) as caught:
        await d.validate(create(pod(forbidden="yes")), hooks_)
    assert caught.value.code == 403
    assert caught.value.message == (
        'admission webhook "deny.example.com" denied the request: '
        "pods labelled forbidden=yes are not allowed"
    )
    sent = recorder.seen["/validate"][0]
    assert sent["kind"] == {"group": "", "version": "v1", "kind": "Pod"}
    assert sent["resource"] == {"group": "", "version": "v1", "resource": "pods"}
    assert sent["requestKind"] == sent["kind"]
    assert (sent["operation"], sent["namespace"], sent["name"]) == ("CREATE", "team-a", "web")
    assert sent["userInfo"]["username"] == "alice"
    assert sent["oldObject"] is None and sent["dryRun"] is False
    assert sent["options"] == {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}
    assert sent["_query"] == {"timeout": "10s"}
    await d.clients.close()


async def test_denial_without_a_message_and_with_a_low_code(
    recorder: Recorder, server: testing_https.HTTPSServer
) -> None:
    recorder.add("/bare", lambda req: {"uid": req["uid"], "allowed": False})
    recorder.add(
        "/low",
        lambda req: {
            "uid": req["uid"],
            "allowed": False,
            "status": {"code": 200, "reason": "Nope"},
        },
    )
    server.start()
    d = make_dispatcher(server)
    with pytest.raises(errors.StatusError) as caught:
        await d.validate(
            create(pod()),
            compile_config(webhook("bare.example.com", server, "/bare"), mutating=False),
        )
    assert (caught.value.code, caught.value.message) == (
        400,
        'admission webhook "bare.example.com" denied the request without explanation',
    )
    with pytest.raises(errors.StatusError) as caught:
        await d.validate(
            create(pod()),
            compile_config(webhook("low.example.com", server, "/low"), mutating=False),
        )
    assert (caught.value.code, caught.value.reason, caught.value.message) == (
        400,
        "Nope",
        'admission webhook "low.example.com" denied the request: Nope',
    )
    await d.clients.close()


async def test_validating_webhooks_run_concurrently(
    recorder: Recorder, server: testing_https.HTTPSServer
) -> None:
    async def slow(req: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0.4)
        return testing_https.allow(req)

    for i in range(4):
        recorder.add(f"/slow{i}", slow)
    server.start()
    d = make_dispatcher(server)
    hooks_ = compile_config(
        *(webhook(f"slow{i}.example.com", server, f"/slow{i}") for i in range(4)), mutating=False
    )
    await d.validate(create(pod()), hooks_)  # warm the connections
    started = time.monotonic()
    await d.validate(create(pod()), hooks_)
    took = time.monotonic() - started
    assert took < 1.2, f"four 0.4 s webhooks took {took:.2f} s: not concurrent"
    await d.clients.close()


async def test_connections_are_reused(
    recorder: Recorder, server: testing_https.HTTPSServer
) -> None:
    recorder.add("/ok", testing_https.allow)
    server.start()
    d = make_dispatcher(server)
    hooks_ = compile_config(webhook("ok.example.com", server, "/ok"), mutating=False)
    for _ in range(20):
        await d.validate(create(pod()), hooks_)
    assert len(recorder.seen["/ok"]) == 20
    assert len(recorder.peers) == 1, recorder.peers
    await d.clients.close()


async def test_warnings_and_audit_annotations(
    recorder: Recorder, server: testing_https.HTTPSServer
) -> None:
    recorder.add(
        "/warn",
        lambda req: testing_https.allow(
            req, warnings=["be careful"], auditAnnotations={"decision": "fine"}
        ),
    )
    server.start()
    d = make_dispatcher(server)
    request = create(pod())
    await d.validate(
        request, compile_config(webhook("warn.example.com", server, "/warn"), mutating=False)
    )
    assert request.warnings == ["be careful"]  # type: ignore[attr-defined]
    assert request.annotations == {"warn.example.com/decision": "fine"}  # type: ignore[attr-defined]
    await d.clients.close()


# --- mutating ---------------------------------------------------------------------------


async def test_mutating_webhook_adds_a_label_with_a_json_patch(
    recorder: Recorder, server: testing_https.HTTPSServer
) -> None:
    recorder.add(
        "/label",
        lambda req: testing_https.json_patch(
            req, [{"op": "add", "path": "/metadata/labels/mutated", "value": "yes"}]
        ),
    )
    server.start()
    d = make_dispatcher(server)
    request = create(pod())
    await d.mutate(
        request,
        compile_config(webhook("label.example.com", server, "/label"), mutating=True),
        dispatch.Reinvocation(),
    )
    assert request.obj is not None
    assert request.obj["metadata"]["labels"] == {"mutated": "yes"}
    # The patched object is defaulted as upstream's decoder leaves it.
    assert request.obj["spec"]["restartPolicy"] == "Always"
    assert request.annotations["mutation.webhook.admission.k8s.io/round_0_index_0"] == (  # type: ignore[attr-defined]
        '{"configuration":"config","webhook":"label.example.com","mutated":true}'
    )
    assert "patch.webhook.admission.k8s.io/round_0_index_0" in request.annotations  # type: ignore[attr-defined]
    await d.clients.close()


async def test_mutating_webhooks_run_in_order_and_reinvoke_if_needed(
    recorder: Recorder, server: testing_https.HTTPSServer
) -> None:
    def first(req: dict[str, Any]) -> dict[str, Any]:
        labels = req["object"]["metadata"].get("labels") or {}
        return (
            testing_https.allow(req)
            if "first" in labels
            else testing_https.json_patch(
                req, [{"op": "add", "path": "/metadata/labels/first", "value": str(len(labels))}]
            )
        )

    def second(req: dict[str, Any]) -> dict[str, Any]:
        labels = req["object"]["metadata"]["labels"]
        assert labels.get("first") is not None, "the second webhook sees the first's change"
        return testing_https.json_patch(
            req, [{"op": "add", "path": "/metadata/labels/second", "value": "x"}]
        )

    recorder.add("/first", first)
    recorder.add("/second", second)
    server.start()
    d = make_dispatcher(server)
    found = compile_config(
        webhook("first.example.com", server, "/first", reinvocationPolicy="IfNeeded"),
        webhook("second.example.com", server, "/second"),
        mutating=True,
    )
    request = create(pod())
    state = dispatch.Reinvocation()
    await d.mutate(request, found, state)
    assert state.should_reinvoke and state.to_reinvoke == {"config/first.example.com/0"}
    await d.mutate(request, found, state, round_=1)
    assert len(recorder.seen["/first"]) == 2, "IfNeeded webhook runs again after a later change"
    assert len(recorder.seen["/second"]) == 1, "a Never webhook is not reinvoked"
    assert request.obj is not None
    assert request.obj["metadata"]["labels"] == {"first": "0", "second": "x"}
    await d.clients.close()


async def test_a_patch_for_a_delete_and_a_bad_patch_are_internal_errors(
    recorder: Recorder, server: testing_https.HTTPSServer
) -> None:
    recorder.add(
        "/bad",
        lambda req: testing_https.json_patch(
            req, [{"op": "replace", "path": "/nope/x", "value": 1}]
        ),
    )
    server.start()
    d = make_dispatcher(server)
    found = compile_config(
        webhook(
            "bad.example.com",
            server,
            "/bad",
            failurePolicy="Ignore",
            rules=[
                {
                    "operations": ["*"],
                    "apiGroups": [""],
                    "apiVersions": ["v1"],
                    "resources": ["pods"],
                }
            ],
        ),
        mutating=True,
    )
    with pytest.raises(errors.StatusError) as caught:
        await d.mutate(create(pod()), found, dispatch.Reinvocation())
    # Not a call failure: failurePolicy Ignore does not apply.
    assert caught.value.code == 500 and caught.value.message.startswith("Internal error occurred: ")
    delete = create(pod(), operation="DELETE")
    delete.old, delete.obj = delete.obj, None
    with pytest.raises(errors.StatusError) as caught:
        await d.mutate(delete, found, dispatch.Reinvocation())
    assert caught.value.message == (
        'Internal error occurred: admission webhook "bad.example.com" attempted to modify the '
        "object, which is not supported for this operation"
    )
    await d.clients.close()


# --- failures ---------------------------------------------------------------------------


async def test_unreachable_webhook_fails_closed_or_open(server: testing_https.HTTPSServer) -> None:
    server.start()
    d = make_dispatcher(server)
    dead = {"url": "https://127.0.0.1:1/validate", "caBundle": server.ca_bundle}
    closed = compile_config(
        webhook("dead.example.com", server, "/x", clientConfig=dead), mutating=False
    )
    with pytest.raises(errors.StatusError) as caught:
        await d.validate(create(pod()), closed)
    assert caught.value.code == 500
    assert caught.value.message == (
        'Internal error occurred: failed calling webhook "dead.example.com": failed to call '
        'webhook: Post "https://127.0.0.1:1/validate?timeout=10s": dial tcp 127.0.0.1:1: '
        "connect: connection refused"
    )
    ignored = compile_config(
        webhook("dead.example.com", server, "/x", clientConfig=dead, failurePolicy="Ignore"),
        mutating=False,
    )
    request = create(pod())
    await d.validate(request, ignored)
    assert request.annotations == {  # type: ignore[attr-defined]
        "failed-open.validating.webhook.admission.k8s.io/round_0_index_0": "dead.example.com"
    }
    mutating = compile_config(
        webhook("dead.example.com", server, "/x", clientConfig=dead, failurePolicy="Ignore"),
        mutating=True,
    )
    await d.mutate(request, mutating, dispatch.Reinvocation())
    assert (
        request.annotations[  # type: ignore[attr-defined]
            "failed-open.mutation.webhook.admission.k8s.io/round_0_index_0"
        ]
        == "dead.example.com"
    )
    await d.clients.close()


async def test_timeout(recorder: Recorder, server: testing_https.HTTPSServer) -> None:
    async def slow(req: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(3)
        return testing_https.allow(req)

    recorder.add("/slow", slow)
    server.start()
    d = make_dispatcher(server)
    found = compile_config(
        webhook("slow.example.com", server, "/slow", timeoutSeconds=1), mutating=False
    )
    started = time.monotonic()
    with pytest.raises(errors.StatusError) as caught:
        await d.validate(create(pod()), found)
    assert time.monotonic() - started < 2.5
    assert caught.value.message == (
        'Internal error occurred: failed calling webhook "slow.example.com": failed to call '
        f'webhook: Post "{server.url("/slow")}?timeout=1s": context deadline exceeded'
    )
    ignored = compile_config(
        webhook("slow.example.com", server, "/slow", timeoutSeconds=1, failurePolicy="Ignore"),
        mutating=False,
    )
    await d.validate(create(pod()), ignored)
    await d.clients.close()


async def test_garbage_answers(recorder: Recorder, server: testing_https.HTTPSServer) -> None:
    async def text(request: web.Request) -> web.Response:
        return web.Response(text="garbage")

    async def boom(request: web.Request) -> web.Response:
        return web.Response(status=500, text="it broke")

    recorder.raw("/text", text)
    recorder.raw("/boom", boom)
    recorder.add("/uid", lambda req: {"uid": "not-the-uid", "allowed": True})
    recorder.add("/patch", lambda req: {**testing_https.allow(req), "patch": "W10="})
    server.start()
    d = make_dispatcher(server)

    async def failure(path: str, *, mutating: bool = False) -> str:
        found = compile_config(webhook("x.example.com", server, path), mutating=mutating)
        with pytest.raises(errors.StatusError) as caught:
            if mutating:
                await d.mutate(create(pod()), found, dispatch.Reinvocation())
            else:
                await d.validate(create(pod()), found)
        assert caught.value.code == 500
        return caught.value.message

    prefix = 'Internal error occurred: failed calling webhook "x.example.com": '
    assert await failure("/text") == (
        prefix + "failed to call webhook: couldn't get version/kind; json parse error: invalid "
        "character 'g' looking for beginning of value"
    )
    assert await failure("/boom") == (
        prefix + 'failed to call webhook: an error on the server ("it broke") has prevented the '
        "request from succeeding"
    )
    assert (await failure("/uid")).startswith(
        prefix + 'received invalid webhook response: expected response.uid="'
    )
    assert await failure("/patch") == (
        prefix
        + "received invalid webhook response: validating webhook may not return response.patch"
    )
    assert await failure("/patch", mutating=True) == (
        prefix + "received invalid webhook response: webhook returned response.patch but not "
        "response.patchType"
    )
    await d.clients.close()


async def test_untrusted_certificate(recorder: Recorder, server: testing_https.HTTPSServer) -> None:
    recorder.add("/ok", testing_https.allow)
    server.start()
    d = make_dispatcher(server)
    other = testing_https.HTTPSServer(web.Application())  # a CA that did not sign the server
    config = {"url": server.url("/ok"), "caBundle": other.ca_bundle}
    found = compile_config(
        webhook("tls.example.com", server, "/ok", clientConfig=config), mutating=False
    )
    with pytest.raises(errors.StatusError) as caught:
        await d.validate(create(pod()), found)
    assert caught.value.message.endswith(
        "tls: failed to verify certificate: x509: certificate signed by unknown authority"
    )
    other.stop()
    await d.clients.close()


async def test_service_reference_checks_the_service_name(
    recorder: Recorder, server: testing_https.HTTPSServer
) -> None:
    recorder.add("/svc", testing_https.allow)
    server.start()
    d = make_dispatcher(server)
    config = {
        "service": {"namespace": "webhooks", "name": "hooks", "path": "/svc", "port": 443},
        "caBundle": server.ca_bundle,
    }
    await d.validate(
        create(pod()),
        compile_config(
            webhook("svc.example.com", server, "/svc", clientConfig=config), mutating=False
        ),
    )
    assert len(recorder.seen["/svc"]) == 1
    missing = {**config, "service": {**config["service"], "name": "missing"}}
    with pytest.raises(errors.StatusError) as caught:
        await d.validate(
            create(pod()),
            compile_config(
                webhook("svc.example.com", server, "/svc", clientConfig=missing), mutating=False
            ),
        )
    assert caught.value.message == (
        'Internal error occurred: failed calling webhook "svc.example.com": failed to call '
        'webhook: Post "https://missing.webhooks.svc:443/svc?timeout=10s": service "missing" not found'
    )
    await d.clients.close()


async def test_dry_run_and_side_effects(
    recorder: Recorder, server: testing_https.HTTPSServer
) -> None:
    recorder.add("/ok", testing_https.allow)
    server.start()
    d = make_dispatcher(server)
    some = compile_config(
        webhook("some.example.com", server, "/ok", sideEffects="Some"), mutating=False
    )
    with pytest.raises(errors.StatusError) as caught:
        await d.validate(create(pod(), dry_run=True), some)
    assert (caught.value.code, caught.value.message) == (
        400,
        'admission webhook "some.example.com" does not support dry run',
    )
    # A webhook with side effects is not called for a dry run even with Ignore.
    none = compile_config(webhook("none.example.com", server, "/ok"), mutating=False)
    await d.validate(create(pod(), dry_run=True), none)
    assert recorder.seen["/ok"][-1]["dryRun"] is True
    assert recorder.seen["/ok"][-1]["options"]["dryRun"] == ["All"]
    await d.clients.close()


# --- matching ---------------------------------------------------------------------------


async def test_selectors_and_rules(recorder: Recorder, server: testing_https.HTTPSServer) -> None:
    recorder.add("/ok", testing_https.allow)
    server.start()
    d = make_dispatcher(server)

    def called(hook: dict[str, Any], request: matching.Request) -> bool:
        return bool(d.invocations(request, compile_config(hook, mutating=False)))

    team_a = webhook(
        "ns.example.com", server, "/ok", namespaceSelector={"matchLabels": {"team": "a"}}
    )
    assert called(team_a, create(pod(namespace="team-a")))
    assert not called(team_a, create(pod(namespace="team-b")))
    with pytest.raises(errors.StatusError) as caught:
        called(team_a, create(pod(namespace="gone")))
    assert (caught.value.code, caught.value.message) == (404, 'namespaces "gone" not found')
    # A Namespace's own labels decide for the Namespace itself.
    ns_rules = [
        {
            "operations": ["CREATE"],
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "resources": ["namespaces"],
        }
    ]
    ns_hook = {**team_a, "rules": ns_rules}
    new_ns = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "fresh", "labels": {"team": "a"}},
    }
    assert called(ns_hook, create(new_ns, NAMESPACES))

    labelled = webhook(
        "obj.example.com", server, "/ok", objectSelector={"matchLabels": {"check": "me"}}
    )
    assert called(labelled, create(pod(check="me")))
    assert not called(labelled, create(pod()))
    update = create(pod(), operation="UPDATE")
    update.old = pod(check="me")
    assert called(labelled, update), "the old object's labels count too"

    status_only = webhook(
        "status.example.com",
        server,
        "/ok",
        rules=[
            {
                "operations": ["UPDATE"],
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "resources": ["pods/status"],
            }
        ],
    )
    assert called(status_only, create(pod(), operation="UPDATE", subresource="status"))
    assert not called(status_only, create(pod(), operation="UPDATE"))

    cluster_only = webhook(
        "cluster.example.com",
        server,
        "/ok",
        rules=[
            {
                "operations": ["*"],
                "apiGroups": ["*"],
                "apiVersions": ["*"],
                "resources": ["*"],
                "scope": "Cluster",
            }
        ],
    )
    assert not called(cluster_only, create(pod()))
    assert called(cluster_only, create(new_ns, NAMESPACES))
    await d.clients.close()


async def test_match_policy_equivalent_sends_the_rule_s_version(
    recorder: Recorder, server: testing_https.HTTPSServer
) -> None:
    recorder.add("/hpa", testing_https.allow)
    server.start()
    d = make_dispatcher(server)
    v1_rule = [
        {
            "operations": ["CREATE"],
            "apiGroups": ["autoscaling"],
            "apiVersions": ["v1"],
            "resources": ["horizontalpodautoscalers"],
        }
    ]
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "h", "namespace": "team-a"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 1,
            "maxReplicas": 3,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 50},
                    },
                }
            ],
        },
    }
    exact = compile_config(
        webhook("exact.example.com", server, "/hpa", rules=v1_rule, matchPolicy="Exact"),
        mutating=False,
    )
    assert not d.invocations(create(hpa, HPA_V2), exact)
    equivalent = compile_config(
        webhook("eq.example.com", server, "/hpa", rules=v1_rule), mutating=False
    )
    await d.validate(create(hpa, HPA_V2), equivalent)
    sent = recorder.seen["/hpa"][0]
    assert sent["kind"] == {
        "group": "autoscaling",
        "version": "v1",
        "kind": "HorizontalPodAutoscaler",
    }
    assert sent["requestKind"]["version"] == "v2"
    assert sent["object"]["apiVersion"] == "autoscaling/v1"
    assert sent["object"]["spec"]["targetCPUUtilizationPercentage"] == 50
    await d.clients.close()


def test_exempt_kinds() -> None:
    vwc = REGISTRY.by_path("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations")
    assert vwc is not None
    request = matching.Request("CREATE", vwc, "", "", "x", {"metadata": {"name": "x"}})
    assert request.is_exempt()
    assert not create(pod()).is_exempt()


async def test_match_conditions(recorder: Recorder, server: testing_https.HTTPSServer) -> None:
    recorder.add("/ok", testing_https.allow)
    server.start()
    d = make_dispatcher(server)
    conditions = [
        {"name": "checked-only", "expression": "object.metadata.name.startsWith('check-')"},
        {"name": "not-alice", "expression": "request.userInfo.username != 'bob'"},
    ]
    found = compile_config(
        webhook("cond.example.com", server, "/ok", matchConditions=conditions), mutating=False
    )
    assert d.invocations(create(pod("check-me")), found)
    assert not d.invocations(create(pod("other")), found)
    broken = [{"name": "broken", "expression": "object.spec.nothing.here == 1"}]
    failing = compile_config(
        webhook("broken.example.com", server, "/ok", matchConditions=broken), mutating=False
    )
    with pytest.raises(errors.StatusError) as caught:
        d.invocations(create(pod("x")), failing)
    assert (caught.value.code, caught.value.message) == (
        403,
        "pods \"x\" is forbidden: expression 'object.spec.nothing.here == 1' resulted in error: "
        "no such key: nothing",
    )
    ignoring = compile_config(
        webhook(
            "broken.example.com", server, "/ok", matchConditions=broken, failurePolicy="Ignore"
        ),
        mutating=False,
    )
    assert not d.invocations(create(pod("x")), ignoring)
    await d.clients.close()


async def test_match_conditions_ask_the_authorizer(
    recorder: Recorder, server: testing_https.HTTPSServer
) -> None:
    from pilothouse.apiserver.admission.webhook import plugins

    class OnlyAdmins:
        """Allows the group ``admins`` to delete pods, and nothing else."""

        def authorize(self, a: Any) -> tuple[bool, str]:
            return "admins" in a.user.groups and a.verb == "delete", ""

    recorder.add("/ok", testing_https.allow)
    server.start()
    d = make_dispatcher(server)
    config = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "config"},
        "webhooks": [
            webhook(
                "non-admins.example.com",
                server,
                "/ok",
                matchConditions=[
                    {
                        "name": "not-admins",
                        "expression": "!authorizer.group('').resource('pods')"
                        ".namespace(request.namespace).check('delete').allowed()",
                    }
                ],
            )
        ],
    }
    defaults.apply_defaults(
        "admissionregistration.k8s.io", "v1", "ValidatingWebhookConfiguration", config
    )
    found = hooks.compile_hooks(
        config,
        mutating=False,
        conditions=lambda c: plugins.compile_conditions(c, authorizer=OnlyAdmins()),  # type: ignore[arg-type]
    )
    admin = create(pod("a"))
    admin.user = {"username": "root", "groups": ["admins"]}
    assert not d.invocations(admin, found), "admins are not the webhook's business"
    someone = create(pod("b"))
    someone.user = {"username": "bob", "groups": ["dev"]}
    assert d.invocations(someone, found)
    await d.clients.close()
