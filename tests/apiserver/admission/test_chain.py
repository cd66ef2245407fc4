"""The admission chain: upstream's order whatever the flags say, the flags' errors, the two
phases, and what a plugin sees of a create (the store runs the chain)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from pilothouse.api import errors, resources
from pilothouse.apiserver import watchcache
from pilothouse.apiserver.admission import chain, plugins
from pilothouse.apiserver.admission.interface import CREATE, Attributes, Plugin
from pilothouse.apiserver.registry import strategies
from pilothouse.apiserver.registry.store import ResourceStore
from pilothouse.storage import memory

AVAILABLE = plugins.factories()


def test_default_plugins_run_in_upstreams_order() -> None:
    names = chain.plugin_names(available=AVAILABLE)
    assert names == [
        "NamespaceLifecycle",
        "LimitRanger",
        "ServiceAccount",
        "NodeRestriction",  # on by default in k3s
        "PodSecurity",
        "Priority",
        "DefaultTolerationSeconds",
        "DefaultStorageClass",
        "StorageObjectInUseProtection",
        "PersistentVolumeClaimResize",
        "CertificateApproval",
        "CertificateSigning",
        "CertificateSubjectRestriction",
        "MutatingAdmissionWebhook",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionWebhook",
        "ResourceQuota",
    ]


def test_enabled_plugins_take_their_place_in_the_order() -> None:
    names = chain.plugin_names(
        ["AlwaysDeny", "DenyServiceExternalIPs", "AlwaysPullImages"],
        ["PodSecurity", "NodeRestriction", "CertificateSigning"],
        available=AVAILABLE,
    )
    assert names == [
        "NamespaceLifecycle",
        "LimitRanger",
        "ServiceAccount",
        "AlwaysPullImages",
        "Priority",
        "DefaultTolerationSeconds",
        "DefaultStorageClass",
        "StorageObjectInUseProtection",
        "PersistentVolumeClaimResize",
        "CertificateApproval",
        "CertificateSubjectRestriction",
        "DenyServiceExternalIPs",
        "MutatingAdmissionWebhook",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionWebhook",
        "ResourceQuota",
        "AlwaysDeny",
    ]


def test_flag_errors_as_kube_apiserver_words_them() -> None:
    with pytest.raises(chain.ChainError) as exc:
        chain.plugin_names(["Nope"], ["AlsoNope"], available=AVAILABLE)
    assert str(exc.value) == (
        'enable-admission-plugins plugin "Nope" is unknown; '
        'disable-admission-plugins plugin "AlsoNope" is unknown'
    )
    with pytest.raises(chain.ChainError) as exc:
        chain.plugin_names(["Priority", "LimitRanger"], ["LimitRanger"], available=AVAILABLE)
    assert str(exc.value) == (
        "[LimitRanger] in enable-admission-plugins and disable-admission-plugins overlapped"
    )
    with pytest.raises(chain.ChainError) as exc:
        chain.plugin_names(["ImagePolicyWebhook"], available=AVAILABLE)
    assert "ImagePolicyWebhook are not available in pilothouse" in str(exc.value)


class Recorder(Plugin):
    def __init__(self, name: str, calls: list[str], *, refuse: str = "") -> None:
        self.name = name
        self.calls = calls
        self.refuse = refuse
        self.asked = 0

    def handles(self, resource: resources.Resource, subresource: str, operation: str) -> bool:
        self.asked += 1
        return resource.plural == "configmaps"

    async def admit(self, a: Attributes) -> None:
        self.calls.append(
            f"admit {self.name} {a.operation} name={a.name!r} shown={a.object_name()!r}"
        )
        assert a.obj is not None
        a.obj.setdefault("data", {})[self.name] = "x"

    async def validate(self, a: Attributes) -> None:
        self.calls.append(f"validate {self.name} name={a.name!r}")
        if self.refuse:
            raise a.forbidden(self.refuse)


@pytest.fixture
async def cache() -> AsyncIterator[watchcache.WatchCache]:
    store = memory.MemoryStore()
    await store.start()
    prefixes = [r.storage_prefix for r in resources.DEFAULT.resources if r.stored]
    wc = watchcache.WatchCache(store, prefixes)
    await wc.start()
    yield wc
    await wc.stop()
    await store.close()


def _store(wc: watchcache.WatchCache, plural: str, admission: chain.Chain) -> ResourceStore:
    r = resources.DEFAULT.by_path("", "v1", plural)
    assert r is not None
    return ResourceStore(
        resource=r,
        strategy=strategies.for_resource(r, resources.DEFAULT),
        store=wc.store,
        cache=wc,
        admission=admission,
    )


async def test_mutating_phase_then_validation_then_validating_phase(
    cache: watchcache.WatchCache,
) -> None:
    calls: list[str] = []
    a, b = Recorder("a", calls), Recorder("b", calls, refuse="no thanks")
    store = _store(cache, "configmaps", chain.Chain([a, b]))
    with pytest.raises(errors.StatusError) as exc:
        await store.create("ns", {"metadata": {"generateName": "cm-"}})
    # Mutation sees the generateName (no name yet); validation sees the generated name.
    assert calls[0] == "admit a CREATE name='' shown='cm-'"
    assert calls[1] == "admit b CREATE name='' shown='cm-'"
    assert calls[2].startswith("validate a name='cm-") and len(calls[2]) > len(
        "validate a name='cm-'"
    )
    assert calls[3].startswith("validate b name='cm-")
    assert exc.value.code == 403
    assert exc.value.message.startswith('configmaps "cm-') and exc.value.message.endswith(
        '" is forbidden: no thanks'
    )
    # Each plugin was asked once about creating configmaps, not once per request.
    b.refuse = ""
    created = await store.create("ns", {"metadata": {"name": "x"}})
    assert created["data"] == {"a": "x", "b": "x"}
    assert a.asked == 1


async def test_validation_errors_come_before_validating_plugins(
    cache: watchcache.WatchCache,
) -> None:
    calls: list[str] = []
    store = _store(cache, "configmaps", chain.Chain([Recorder("a", calls)]))
    with pytest.raises(errors.StatusError) as exc:
        await store.create("ns", {"metadata": {"name": "Bad_Name"}})
    assert exc.value.code == 422
    assert [c.split()[0] for c in calls] == ["admit"]


async def test_no_plugin_that_cares_means_no_attributes(cache: watchcache.WatchCache) -> None:
    calls: list[str] = []
    store = _store(cache, "secrets", chain.Chain([Recorder("a", calls)]))
    await store.create("ns", {"metadata": {"name": "s"}})
    assert calls == []


def test_attributes_name_an_object_as_upstream() -> None:
    r = resources.DEFAULT.by_path("", "v1", "pods")
    assert r is not None
    a = Attributes(CREATE, r, "ns", "", {"metadata": {"generateName": "web-"}})
    assert a.forbidden("x").message == 'pods "web-" is forbidden: x'
    assert Attributes(CREATE, r, "ns", "", {"metadata": {}}).object_name() == "Unknown"
    details: Any = a.forbidden("x").details
    assert details["kind"] == "pods" and details["name"] == "web-"


def test_admission_config_file(tmp_path: Path) -> None:
    from pilothouse.apiserver.admission import config

    (tmp_path / "rq.yaml").write_text(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: ResourceQuotaConfiguration\n"
        "limitedResources: [{resource: pods, matchContains: [requests.cpu]}]\n"
    )
    f = tmp_path / "admission.yaml"
    f.write_text(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: AdmissionConfiguration\nplugins:\n"
        "- name: ResourceQuota\n  path: rq.yaml\n"
        "- name: PodSecurity\n  configuration:\n"
        "    apiVersion: pod-security.admission.config.k8s.io/v1\n"
        "    kind: PodSecurityConfiguration\n    defaults: {enforce: baseline}\n"
    )
    loaded = config.load(f)
    rq = loaded.plugin("ResourceQuota")
    assert rq is not None and rq["limitedResources"][0]["resource"] == "pods"
    ps = loaded.plugin("PodSecurity")
    assert ps is not None and ps["defaults"] == {"enforce": "baseline"}
    f.write_text("apiVersion: v1\nkind: ConfigMap\n")
    with pytest.raises(config.ConfigError, match="expected kind AdmissionConfiguration"):
        config.load(f)


def test_always_deny_refuses_writes_and_connections(tmp_path: Path) -> None:
    from pilothouse import testing

    from ...conftest import API

    with testing.server_thread(tmp_path / "d") as srv:
        pass  # the system namespaces are made (AlwaysDeny would refuse even those)
    with testing.server_thread(tmp_path / "d", enable_admission_plugins=["AlwaysDeny"]) as srv:
        api = API(srv)
        status, body = api.json(
            "POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "x"}}
        )
        assert (status, body["message"]) == (
            403,
            'configmaps "x" is forbidden: admission control is denying all modifications',
        )
        # Reads are not admission's business.
        assert api.json("GET", "/api/v1/namespaces/default/configmaps")[0] == 200
        # exec is a CONNECT: refused before any stream is opened.
        store = srv.server.resource_store("", "v1", "pods")
        srv.call(
            store.store.create(
                "/registry/pods/default/p",
                b'{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"default"},'
                b'"spec":{"containers":[{"name":"c","image":"busybox"}]}}',
            )
        )
        status, body = api.json(
            "GET", "/api/v1/namespaces/default/pods/p/exec?command=ls&stdout=true"
        )
        assert (status, body["message"]) == (
            403,
            'pods "p" is forbidden: admission control is denying all modifications',
        )


async def test_connect_requests_carry_their_options(cache: watchcache.WatchCache) -> None:
    from multidict import MultiDict

    from pilothouse.apiserver import request as request_info
    from pilothouse.apiserver.handlers import rest

    seen: list[Attributes] = []

    class Watcher(Plugin):
        name = "Watcher"
        operations = frozenset({"CONNECT"})

        async def validate(self, a: Attributes) -> None:
            seen.append(a)

    store = _store(cache, "pods", chain.Chain([Watcher()]))
    pods = resources.DEFAULT.by_path("", "v1", "pods")
    assert pods is not None
    info = request_info.RequestInfo(pods, "ns", "p", "exec")
    query = MultiDict([("command", "sh"), ("command", "-c"), ("stdin", "true"), ("container", "c")])
    await store.connect("ns", "p", "exec", rest.connect_options(info, query))
    (a,) = seen
    assert (a.operation, a.subresource, a.name, a.kind) == (
        "CONNECT",
        "exec",
        "p",
        "PodExecOptions",
    )
    assert a.obj == {
        "kind": "PodExecOptions",
        "apiVersion": "v1",
        "stdin": True,
        "container": "c",
        "command": ["sh", "-c"],
    }


async def test_function_plugins_run_in_their_phase(cache: watchcache.WatchCache) -> None:
    from pilothouse.apiserver.admission.interface import FunctionPlugin

    calls: list[str] = []

    async def stamp(store: ResourceStore, op: str, obj: dict[str, Any]) -> None:
        calls.append(f"stamp {op}")
        obj.setdefault("data", {})["stamped"] = "yes"

    async def refuse_big(store: ResourceStore, op: str, obj: dict[str, Any]) -> None:
        calls.append(f"refuse {op}")
        if len(obj.get("data") or {}) > 1:
            raise errors.forbidden("configmaps", "", obj["metadata"]["name"], "too big")

    admission = chain.Chain(
        [
            FunctionPlugin("Refuse", refuse_big, mutating=False),
            FunctionPlugin("Stamp", stamp, mutating=True),
        ]
    )
    store = _store(cache, "configmaps", admission)
    created = await store.create("ns", {"metadata": {"name": "a"}})
    assert created["data"] == {"stamped": "yes"}
    assert calls == ["stamp create", "refuse create"]  # mutating first, whatever the order
    with pytest.raises(errors.StatusError, match="too big"):
        await store.create("ns", {"metadata": {"name": "b"}, "data": {"x": "1"}})
    await store.delete("ns", "a")
    assert calls[-2:] == ["stamp delete", "refuse delete"]
