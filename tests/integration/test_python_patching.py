"""Patches from the official `kubernetes` client and server-side apply from lightkube."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from lightkube import Client as LightClient
from lightkube import KubeConfig
from lightkube.core.exceptions import ApiError
from lightkube.models.apps_v1 import DeploymentSpec
from lightkube.models.core_v1 import Container, PodSpec, PodTemplateSpec
from lightkube.models.meta_v1 import LabelSelector, ObjectMeta
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import ConfigMap

from pilothouse import testing


@pytest.fixture(scope="module")
def apps(api_server: testing.ServerThread) -> Iterator[client.AppsV1Api]:
    api_client = config.new_client_from_config(config_file=str(api_server.kubeconfig))
    yield client.AppsV1Api(api_client)
    api_client.close()


@pytest.fixture(scope="module")
def light(api_server: testing.ServerThread) -> LightClient:
    return LightClient(
        KubeConfig.from_file(str(api_server.kubeconfig)), field_manager="lightkube-test"
    )


def _deployment(name: str) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": "busybox:1.36",
                            "env": [{"name": "A", "value": "1"}],
                        }
                    ]
                },
            },
        },
    }


def test_kubernetes_client_patches_every_type(apps: client.AppsV1Api, namespace: str) -> None:
    apps.create_namespaced_deployment(namespace, _deployment("p"))
    # Strategic merge (the client's default for dicts): containers merge by name.
    apps.patch_namespaced_deployment(
        "p",
        namespace,
        {
            "spec": {
                "template": {
                    "spec": {"containers": [{"name": "web", "env": [{"name": "B", "value": "2"}]}]}
                }
            }
        },
    )
    env = apps.read_namespaced_deployment("p", namespace).spec.template.spec.containers[0].env
    assert [(e.name, e.value) for e in env] == [("B", "2"), ("A", "1")]
    # JSON patch: a list body is sent as application/json-patch+json.
    apps.patch_namespaced_deployment(
        "p", namespace, [{"op": "replace", "path": "/spec/replicas", "value": 3}]
    )
    assert apps.read_namespaced_deployment("p", namespace).spec.replicas == 3
    # Merge patch, chosen explicitly.
    apps.api_client.set_default_header("Content-Type", "application/merge-patch+json")
    try:
        apps.patch_namespaced_deployment("p", namespace, {"metadata": {"labels": {"extra": "yes"}}})
    finally:
        apps.api_client.default_headers.pop("Content-Type", None)
    assert apps.read_namespaced_deployment("p", namespace).metadata.labels == {
        "app": "p",
        "extra": "yes",
    }
    # Scale through the subresource.
    apps.patch_namespaced_deployment_scale("p", namespace, {"spec": {"replicas": 5}})
    assert apps.read_namespaced_deployment_scale("p", namespace).spec.replicas == 5
    # Immutable selector: refused, nothing changes.
    with pytest.raises(ApiException) as exc:
        apps.patch_namespaced_deployment(
            "p", namespace, {"spec": {"selector": {"matchLabels": {"app": "other"}}}}
        )
    assert exc.value.status == 422 and "field is immutable" in exc.value.body
    with pytest.raises(ApiException) as exc:
        apps.patch_namespaced_deployment("missing", namespace, {"spec": {"replicas": 1}})
    assert exc.value.status == 404


def test_lightkube_patches_and_server_side_apply(light: LightClient, namespace: str) -> None:
    light.create(ConfigMap(metadata=ObjectMeta(name="lk"), data={"a": "1"}), namespace=namespace)
    light.patch(ConfigMap, "lk", {"data": {"b": "2"}}, namespace=namespace)  # strategic by default
    from lightkube.types import PatchType

    light.patch(
        ConfigMap, "lk", {"data": {"a": None}}, namespace=namespace, patch_type=PatchType.MERGE
    )
    light.patch(
        ConfigMap,
        "lk",
        [{"op": "add", "path": "/data/c", "value": "3"}],
        namespace=namespace,
        patch_type=PatchType.JSON,
    )
    assert light.get(ConfigMap, "lk", namespace=namespace).data == {"b": "2", "c": "3"}

    deployment = Deployment(
        metadata=ObjectMeta(name="applied", namespace=namespace),
        spec=DeploymentSpec(
            replicas=2,
            selector=LabelSelector(matchLabels={"app": "applied"}),
            template=PodTemplateSpec(
                metadata=ObjectMeta(labels={"app": "applied"}),
                spec=PodSpec(containers=[Container(name="web", image="busybox:1.36")]),
            ),
        ),
    )
    created = light.apply(deployment)
    assert created.spec.replicas == 2
    managers = {m.manager: m.operation for m in created.metadata.managedFields}
    assert managers.get("lightkube-test") == "Apply"
    deployment.spec.replicas = 4
    assert light.apply(deployment).spec.replicas == 4
    # Another manager owning replicas makes a conflicting apply fail unless forced.
    other = LightClient(light.config, field_manager="someone-else")
    deployment.spec.replicas = 1
    with pytest.raises(ApiError) as exc:
        other.apply(deployment)
    assert exc.value.status.code == 409
    assert "lightkube-test" in exc.value.status.message
    assert other.apply(deployment, force=True).spec.replicas == 1
