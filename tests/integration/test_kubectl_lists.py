"""The real kubectl with ``kind: List`` manifests, which it validates against ``/openapi/v2``.

No PATCH operation names ``v1 List``, so kubectl 1.32 cannot leave validation to the
server for a List and validates its items client-side, from the OpenAPI v2
protobuf — custom resources included, whose schemas (nullable fields, preserved
unknown fields, int-or-string) must come out in a shape kubectl's parser accepts.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.kubectl

CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.{group}
spec:
  group: {group}
  scope: Namespaced
  names: {{plural: widgets, singular: widget, kind: Widget}}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {{type: integer}}
              port: {{x-kubernetes-int-or-string: true}}
              note: {{type: string, nullable: true}}
              extra: {{type: object, x-kubernetes-preserve-unknown-fields: true}}
              tags:
                type: array
                items: {{type: string}}
"""

CONFIG_MAP = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}}
DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web"},
    "spec": {
        "replicas": 1,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "busybox"}]},
        },
    },
}


def _list(*items: dict[str, Any]) -> str:
    return yaml.safe_dump(
        {"apiVersion": "v1", "kind": "List", "metadata": {}, "items": list(items)}
    )


@pytest.fixture
def widgets(kubectl) -> Iterator[str]:  # type: ignore[no-untyped-def]
    group = f"lists{int(time.time() * 1000) % 1000000}.example.com"
    kubectl("apply", "-f", "-", input=CRD.format(group=group))
    kubectl("wait", "--for=condition=Established", f"crd/widgets.{group}", "--timeout=30s")
    yield group
    kubectl("delete", "crd", f"widgets.{group}", "--ignore-not-found", "--timeout=30s", check=False)


def test_create_and_apply_a_list(kubectl, namespace: str) -> None:  # type: ignore[no-untyped-def]
    done = kubectl("create", "-n", namespace, "-f", "-", input=_list(CONFIG_MAP, DEPLOYMENT))
    assert done.stdout.split("\n")[:2] == [
        "configmap/settings created",
        "deployment.apps/web created",
    ]
    changed = {**CONFIG_MAP, "data": {"mode": "fast"}}
    done = kubectl("apply", "-n", namespace, "-f", "-", input=_list(changed, DEPLOYMENT))
    assert "configmap/settings configured" in done.stdout
    assert kubectl.json("get", "-n", namespace, "configmap", "settings")["data"] == {"mode": "fast"}


def test_a_misspelt_field_in_a_list_fails_client_side(  # type: ignore[no-untyped-def]
    kubectl, namespace: str
) -> None:
    bad = {**DEPLOYMENT, "spec": {**DEPLOYMENT["spec"], "replicaz": 2}}
    done = kubectl("create", "-n", namespace, "-f", "-", input=_list(CONFIG_MAP, bad), check=False)
    assert done.returncode == 1
    assert (
        'error validating data: ValidationError(Deployment.spec): unknown field "replicaz" in '
        "io.k8s.api.apps.v1.DeploymentSpec; if you choose to ignore these errors, turn "
        "validation off with --validate=false"
    ) in done.stderr
    missing = kubectl("get", "-n", namespace, "configmap", "settings", check=False)
    assert missing.returncode == 1  # nothing was created


def test_a_list_of_custom_resources(kubectl, namespace: str, widgets: str) -> None:  # type: ignore[no-untyped-def]
    widget = {
        "apiVersion": f"{widgets}/v1",
        "kind": "Widget",
        "metadata": {"name": "w"},
        "spec": {"size": 3, "port": "http", "note": None, "extra": {"any": {"thing": 1}}},
    }
    done = kubectl("apply", "-n", namespace, "-f", "-", input=_list(CONFIG_MAP, widget))
    assert f"widget.{widgets}/w created" in done.stdout
    bad = {**widget, "metadata": {"name": "x"}, "spec": {"size": 1, "colour": "red"}}
    done = kubectl("create", "-n", namespace, "-f", "-", input=_list(bad), check=False)
    assert done.returncode == 1
    definition = ".".join(reversed(widgets.split("."))) + ".v1.Widget"
    assert (
        f'ValidationError(Widget.spec): unknown field "colour" in {definition}.spec' in done.stderr
    )
    explained = kubectl("explain", f"widgets.{widgets}.spec", "--output=plaintext-openapiv2")
    assert "size\t<integer> -required-" in explained.stdout


def test_explain_plaintext_openapiv2(kubectl) -> None:  # type: ignore[no-untyped-def]
    done = kubectl("explain", "deployment.spec", "--output=plaintext-openapiv2")
    assert done.stdout.startswith(
        "KIND:     Deployment\nVERSION:  apps/v1\n\nRESOURCE: spec <Object>"
    )
    assert "   replicas\t<integer>" in done.stdout.splitlines()
