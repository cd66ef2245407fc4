"""The official ``kubernetes`` Python client against a real server."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from pilothouse import testing


@pytest.fixture(scope="module")
def core(api_server: testing.ServerThread) -> Iterator[client.CoreV1Api]:
    api_client = config.new_client_from_config(config_file=str(api_server.kubeconfig))
    yield client.CoreV1Api(api_client)
    api_client.close()


def _cm(name: str, labels: dict[str, str]) -> client.V1ConfigMap:
    return client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name=name, labels=labels), data={"k": name}
    )


def test_create_and_list_with_selectors(core: client.CoreV1Api, namespace: str) -> None:
    created = core.create_namespaced_config_map(
        namespace, _cm("one", {"env": "prod", "tier": "web"})
    )
    assert created.metadata.uid and created.metadata.resource_version
    core.create_namespaced_config_map(namespace, _cm("two", {"env": "dev", "tier": "web"}))
    core.create_namespaced_config_map(namespace, _cm("three", {"env": "prod"}))
    prod = core.list_namespaced_config_map(namespace, label_selector="env=prod")
    assert sorted(i.metadata.name for i in prod.items) == ["one", "three"]
    web_not_dev = core.list_namespaced_config_map(
        namespace, label_selector="tier in (web),env notin (dev)"
    )
    assert [i.metadata.name for i in web_not_dev.items] == ["one"]
    by_name = core.list_namespaced_config_map(namespace, field_selector="metadata.name=two")
    assert [i.metadata.name for i in by_name.items] == ["two"]
    # Pagination: limit + continue visits every object once.
    seen: list[str] = []
    token = None
    while True:
        page = core.list_namespaced_config_map(namespace, limit=2, _continue=token)
        seen += [i.metadata.name for i in page.items]
        token = page.metadata._continue
        if not token:
            break
    # Every namespace also holds kube-root-ca.crt (the root-ca-cert-publisher's).
    assert sorted(seen) == ["kube-root-ca.crt", "one", "three", "two"]


def test_watch_from_resource_version_sees_only_later_events(
    core: client.CoreV1Api, namespace: str
) -> None:
    core.create_namespaced_config_map(namespace, _cm("before", {}))
    rv = core.list_namespaced_config_map(namespace).metadata.resource_version
    events: list[tuple[str, str]] = []
    w = watch.Watch()
    done = threading.Event()

    def consume() -> None:
        for ev in w.stream(
            core.list_namespaced_config_map, namespace, resource_version=rv, timeout_seconds=10
        ):
            events.append((ev["type"], ev["object"].metadata.name))
            if ev["type"] == "DELETED":
                break
        done.set()

    t = threading.Thread(target=consume, daemon=True)
    t.start()
    core.create_namespaced_config_map(namespace, _cm("after", {}))
    patched = core.read_namespaced_config_map("after", namespace)
    patched.data = {"k": "changed"}
    core.replace_namespaced_config_map("after", namespace, patched)
    core.delete_namespaced_config_map("after", namespace)
    assert done.wait(15)
    w.stop()
    assert events == [("ADDED", "after"), ("MODIFIED", "after"), ("DELETED", "after")]


def test_replace_with_stale_resource_version_conflicts(
    core: client.CoreV1Api, namespace: str
) -> None:
    cm = core.create_namespaced_config_map(namespace, _cm("stale", {}))
    stale_rv = cm.metadata.resource_version
    cm.data = {"k": "v2"}
    fresh = core.replace_namespaced_config_map("stale", namespace, cm)
    assert int(fresh.metadata.resource_version) > int(stale_rv)
    cm.metadata.resource_version = stale_rv
    cm.data = {"k": "v3"}
    with pytest.raises(ApiException) as exc:
        core.replace_namespaced_config_map("stale", namespace, cm)
    assert exc.value.status == 409
    assert "the object has been modified" in exc.value.body
    assert core.read_namespaced_config_map("stale", namespace).data == {"k": "v2"}


def test_delete_then_read_is_not_found(core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_config_map(namespace, _cm("bye", {}))
    status = core.delete_namespaced_config_map("bye", namespace)
    assert status["status"] == "Success"  # this client version returns delete results as dicts
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_config_map("bye", namespace)
    assert exc.value.status == 404
