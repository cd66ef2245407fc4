"""The calls the ``kubernetes`` Python client's own e2e suite makes
(``kubernetes/e2e_test/test_utils.py`` and ``test_client.py``), against pilothouse:
``utils.create_from_yaml`` with multi-document files, ``List`` files and lists
whose items leave their kind implicit, conflicts reported as ``FailToCreateError``
with upstream's exact text, and ReplicationControllers. (The generated
``delete_*`` calls of every kind are in ``test_delete_responses``.)
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes import config, utils

from pilothouse import testing


@pytest.fixture(scope="module")
def api_client(api_server: testing.ServerThread) -> Iterator[k8s.ApiClient]:
    c = config.new_client_from_config(config_file=str(api_server.kubeconfig))
    yield c
    c.close()


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


SERVICE_AND_RC = """\
    apiVersion: v1
    kind: Service
    metadata:
      name: mock
      labels:
        app: mock
    spec:
      ports:
      - port: 99
        protocol: TCP
        targetPort: 9949
      selector:
        app: mock
    ---
    apiVersion: v1
    kind: ReplicationController
    metadata:
      name: mock
    spec:
      replicas: 1
      selector:
        app: mock
      template:
        metadata:
          labels:
            app: mock
        spec:
          containers:
          - name: mock-container
            image: registry.k8s.io/pause:3.10
            ports:
            - containerPort: 9949
              protocol: TCP
    """


def test_multi_document_yaml_with_a_replication_controller(
    api_client: k8s.ApiClient, namespace: str, tmp_path: Path
) -> None:
    created = utils.create_from_yaml(
        api_client, write(tmp_path, "multi.yaml", SERVICE_AND_RC), namespace=namespace
    )
    assert [type(o[0]).__name__ for o in created] == ["V1Service", "V1ReplicationController"]
    core = k8s.CoreV1Api(api_client)
    svc = core.read_namespaced_service("mock", namespace)
    assert svc.spec.selector == {"app": "mock"} and svc.spec.ports[0].port == 99
    rc = core.read_namespaced_replication_controller("mock", namespace)
    assert rc.spec.selector == {"app": "mock"} and rc.spec.replicas == 1
    assert rc.spec.template.spec.containers[0].name == "mock-container"
    assert rc.spec.template.spec.containers[0].ports[0].container_port == 9949
    listed = core.list_namespaced_replication_controller(namespace)
    assert [i.metadata.name for i in listed.items] == ["mock"]
    # What the suite's cleanup does: both answers decode (an RC's is a Status,
    # a Service's the Service).
    gone = core.delete_namespaced_replication_controller(
        "mock", namespace, propagation_policy="Background"
    )
    assert gone["kind"] == "Status" and gone["details"]["kind"] == "replicationcontrollers"
    deleted_svc = core.delete_namespaced_service("mock", namespace, body={})
    assert isinstance(deleted_svc, k8s.V1Service) and deleted_svc.metadata.name == "mock"


def test_list_files_and_implicit_service_lists(
    api_client: k8s.ApiClient, namespace: str, tmp_path: Path
) -> None:
    list_file = write(
        tmp_path,
        "list.yaml",
        """\
        apiVersion: v1
        kind: List
        items:
        - apiVersion: v1
          kind: Service
          metadata:
            name: list-service-test
          spec:
            ports:
            - protocol: TCP
              port: 80
            selector:
              app: list-deployment-test
        - apiVersion: apps/v1
          kind: Deployment
          metadata:
            name: list-deployment-test
            labels:
              app: list-deployment-test
          spec:
            replicas: 1
            selector:
              matchLabels:
                app: list-deployment-test
            template:
              metadata:
                labels:
                  app: list-deployment-test
              spec:
                containers:
                - name: nginx
                  image: nginx
        """,
    )
    utils.create_from_yaml(api_client, list_file, namespace=namespace)
    core, apps = k8s.CoreV1Api(api_client), k8s.AppsV1Api(api_client)
    assert core.read_namespaced_service("list-service-test", namespace).spec.ports[0].port == 80
    assert apps.read_namespaced_deployment("list-deployment-test", namespace).spec.replicas == 1

    # A ServiceList whose items carry no kind: the client takes it from the list.
    # mock-3 and mock-4 are created; the second mock-3 conflicts.
    services = [
        {
            "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"ports": [{"port": 99, "protocol": "TCP"}], "selector": {"app": name}},
        }
        for name in ("mock-3", "mock-4", "mock-3")
    ]
    implicit = tmp_path / "implicit-svclist.json"
    implicit.write_text(json.dumps({"kind": "ServiceList", "apiVersion": "v1", "items": services}))
    with pytest.raises(utils.FailToCreateError) as failed:
        utils.create_from_yaml(api_client, str(implicit), namespace=namespace)
    assert str(failed.value) == (
        'Error from server (Conflict): {"kind":"Status","apiVersion":"v1","metadata":{},'
        '"status":"Failure","message":"services \\"mock-3\\" already exists",'
        '"reason":"AlreadyExists","details":{"name":"mock-3","kind":"services"},"code":409}\n'
    )
    for name in ("mock-3", "mock-4"):
        svc = core.read_namespaced_service(name, namespace)
        assert svc.metadata.labels == {"app": name}


def test_conflicts_are_reported_with_upstreams_exact_text(
    api_client: k8s.ApiClient, namespace: str, tmp_path: Path
) -> None:
    """The suite's test_create_from_multi_resource_yaml_with_conflict: the string
    it compares, byte for byte, including the trailing newline."""
    first = SERVICE_AND_RC.split("    ---\n")[0].replace("mock", "mock-2")
    utils.create_from_yaml(api_client, write(tmp_path, "first.yaml", first), namespace=namespace)
    both = SERVICE_AND_RC.replace("mock", "mock-2")
    with pytest.raises(utils.FailToCreateError) as failed:
        utils.create_from_yaml(api_client, write(tmp_path, "both.yaml", both), namespace=namespace)
    assert str(failed.value) == (
        'Error from server (Conflict): {"kind":"Status",'
        '"apiVersion":"v1","metadata":{},"status":"Failure",'
        '"message":"services \\"mock-2\\" already exists",'
        '"reason":"AlreadyExists","details":{"name":"mock-2",'
        '"kind":"services"},"code":409}\n'
    )
    # The document after the failed one was still created.
    core = k8s.CoreV1Api(api_client)
    assert core.read_namespaced_replication_controller("mock-2", namespace).metadata.name


def test_several_conflicts_concatenate(
    api_client: k8s.ApiClient, namespace: str, tmp_path: Path
) -> None:
    deployment = """\
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: triple-nginx
        spec:
          selector:
            matchLabels:
              app: nginx
          template:
            metadata:
              labels:
                app: nginx
            spec:
              containers:
              - name: nginx
                image: nginx:1.15.4
        """
    triple = "---\n".join([textwrap.dedent(deployment)] * 3)
    with pytest.raises(utils.FailToCreateError) as failed:
        utils.create_from_yaml(
            api_client, write(tmp_path, "triple.yaml", triple), namespace=namespace
        )
    one = (
        'Error from server (Conflict): {"kind":"Status",'
        '"apiVersion":"v1","metadata":{},"status":"Failure",'
        '"message":"deployments.apps \\"triple-nginx\\" '
        'already exists","reason":"AlreadyExists",'
        '"details":{"name":"triple-nginx","group":"apps",'
        '"kind":"deployments"},"code":409}\n'
    )
    assert str(failed.value) == one + one
