"""The ValidatingAdmissionPolicy plugin in the admission chain: policies written through
the registry and read back from the watch cache, warnings and audit annotations on the
request's context, exempt kinds, and the store running the chain."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from pilothouse.api import errors, resources
from pilothouse.apiserver import requestcontext, watchcache
from pilothouse.apiserver.admission import chain, plugins
from pilothouse.apiserver.admission.interface import CREATE
from pilothouse.apiserver.admission.policy import evaluate
from pilothouse.apiserver.admission.policy import plugin as policy_plugin
from pilothouse.apiserver.registry import strategies
from pilothouse.apiserver.registry.store import ResourceStore
from pilothouse.storage import memory

REGISTRY = resources.DEFAULT


@pytest.fixture
async def cache() -> AsyncIterator[watchcache.WatchCache]:
    store = memory.MemoryStore()
    await store.start()
    prefixes = [r.storage_prefix for r in REGISTRY.resources if r.stored]
    wc = watchcache.WatchCache(store, prefixes)
    await wc.start()
    # The namespace the tests write in (policies look it up, as upstream's do).
    await _store(wc, "", "namespaces").create("", {"metadata": {"name": "ns"}})
    await wc.consistent()
    yield wc
    await wc.stop()
    await store.close()


def _store(
    wc: watchcache.WatchCache, group: str, plural: str, admission: chain.Chain | None = None
) -> ResourceStore:
    r = REGISTRY.by_path(group, "v1", plural)
    assert r is not None
    return ResourceStore(
        resource=r,
        strategy=strategies.for_resource(r, REGISTRY),
        store=wc.store,
        cache=wc,
        admission=admission,
    )


async def _apply(wc: watchcache.WatchCache, plural: str, obj: dict[str, Any]) -> None:
    store = _store(wc, "admissionregistration.k8s.io", plural)
    name = obj["metadata"]["name"]
    try:
        await store.create("", copy.deepcopy(obj))
    except errors.StatusError as exc:
        if not errors.is_already_exists(exc):
            raise
        current = await store.get("", name)
        body = copy.deepcopy(obj)
        body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        await store.update("", name, body)
    # The server answers a write once its cache holds it; here the test waits itself.
    await wc.consistent()


def _policy(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": "small-maps"},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["configmaps"],
                    }
                ]
            },
            "validations": [{"expression": "size(object.data) <= 1", "message": "one key at most"}],
            **spec,
        },
    }


def _binding(*actions: str) -> dict[str, Any]:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": "small-maps-binding"},
        "spec": {"policyName": "small-maps", "validationActions": list(actions)},
    }


def _chain(wc: watchcache.WatchCache) -> chain.Chain:
    deps = chain.Deps(registry=REGISTRY, cache=wc, store_for=lambda g, p: _store(wc, g, p))
    return chain.build(deps, plugins.factories(), enable=[], disable=[])


async def test_registered_under_its_upstream_name(cache: watchcache.WatchCache) -> None:
    built = _chain(cache)
    assert "ValidatingAdmissionPolicy" in built.names
    found = built.plugins[built.names.index("ValidatingAdmissionPolicy")]
    assert isinstance(found, policy_plugin.ValidatingAdmissionPolicy)
    policies = REGISTRY.by_path("admissionregistration.k8s.io", "v1", "validatingadmissionpolicies")
    configmaps = REGISTRY.by_path("", "v1", "configmaps")
    assert policies is not None and configmaps is not None
    assert not found.handles(policies, "", CREATE), "policies never judge their own kind"
    assert found.handles(configmaps, "", "DELETE") and found.handles(configmaps, "", "CONNECT")


async def test_deny_warn_and_audit_through_the_store(cache: watchcache.WatchCache) -> None:
    only = policy_plugin.ValidatingAdmissionPolicy(cache=cache, registry=REGISTRY)
    configmaps = _store(cache, "", "configmaps", chain.Chain([only]))
    two_keys = {"metadata": {"name": "two"}, "data": {"a": "1", "b": "2"}}

    await _apply(cache, "validatingadmissionpolicies", _policy())
    await configmaps.create("ns", dict(two_keys))  # a policy without a binding does nothing

    await _apply(cache, "validatingadmissionpolicybindings", _binding("Deny"))
    with pytest.raises(errors.StatusError) as exc:
        await configmaps.create("ns", {"metadata": {"name": "three"}, "data": {"a": "", "b": ""}})
    assert (exc.value.code, exc.value.reason) == (422, "Invalid")
    assert exc.value.message == (
        "configmaps \"three\" is forbidden: ValidatingAdmissionPolicy 'small-maps' with binding "
        "'small-maps-binding' denied request: one key at most"
    )

    await _apply(cache, "validatingadmissionpolicybindings", _binding("Warn", "Audit"))
    ctx = requestcontext.RequestContext()
    token = requestcontext.enter(ctx)
    try:
        await configmaps.create("ns", {"metadata": {"name": "four"}, "data": {"a": "", "b": ""}})
    finally:
        requestcontext.leave(token)
    assert ctx.warnings.texts == [
        "Validation failed for ValidatingAdmissionPolicy 'small-maps' with binding "
        "'small-maps-binding': one key at most"
    ]
    assert json.loads(ctx.annotations[evaluate.VALIDATION_FAILURE]) == [
        {
            "message": "one key at most",
            "policy": "small-maps",
            "binding": "small-maps-binding",
            "expressionIndex": 0,
            "validationActions": ["Warn", "Audit"],
        }
    ]


async def test_policy_changes_apply_to_the_next_request(cache: watchcache.WatchCache) -> None:
    only = policy_plugin.ValidatingAdmissionPolicy(cache=cache, registry=REGISTRY)
    configmaps = _store(cache, "", "configmaps", chain.Chain([only]))
    await _apply(cache, "validatingadmissionpolicies", _policy())
    await _apply(cache, "validatingadmissionpolicybindings", _binding("Deny"))
    first = only.source.policies()
    assert only.source.policies() is first, "nothing changed: nothing compiled again"
    with pytest.raises(errors.StatusError):
        await configmaps.create("ns", {"metadata": {"name": "a"}, "data": {"a": "", "b": ""}})
    await _apply(
        cache,
        "validatingadmissionpolicies",
        _policy(validations=[{"expression": "size(object.data) <= 2"}]),
    )
    await configmaps.create("ns", {"metadata": {"name": "a"}, "data": {"a": "", "b": ""}})
    assert only.source.policies() is not first
