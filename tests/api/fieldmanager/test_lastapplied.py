"""Moving from client-side to server-side ``kubectl apply`` (the last-applied annotation)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from pilothouse.api import fieldmanager as fm
from pilothouse.api.fieldmanager import lastapplied

Obj = dict[str, Any]
T0 = "2024-05-01T12:00:00Z"
T1 = "2024-05-01T12:00:01Z"
T2 = "2024-05-01T12:00:02Z"
ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"


def _created_client_side(annotation: str, replicas: int) -> Obj:
    # test/integration/apiserver/apply TestUpgradeClientSideToServerSideApply.
    obj = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "my-deployment",
            "annotations": {ANNOTATION: annotation},
            "labels": {"app": "my-app"},
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "my-app"}},
            "template": {
                "metadata": {"labels": {"app": "my-app"}},
                "spec": {"containers": [{"name": "my-c", "image": "my-image"}]},
            },
        },
    }
    out = fm.update_managed_fields(
        live=None, new=obj, manager="kubectl-client-side-apply", api_version="apps/v1", now=T0
    )
    out = copy.deepcopy(out)
    out["metadata"]["uid"] = "uid-1"
    return out


LAST_APPLIED = (
    '{"kind":"Deployment","apiVersion":"apps/v1","metadata":{"name":"my-deployment",'
    '"labels":{"app":"my-app"}},"spec":{"replicas": 3,"template":{"metadata":{"labels":'
    '{"app":"my-app"}},"spec":{"containers":[{"name":"my-c","image":"my-image"}]}}}}\n'
)


def _server_side(labels: dict[str, str], **spec: Any) -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "my-deployment", "labels": labels},
        "spec": spec,
    }


def _apply(
    live: Obj, config: Obj, manager: str = "kubectl", *, force: bool = False, now: str = T1
) -> Obj:
    return fm.apply(
        live=live, config=config, manager=manager, api_version="apps/v1", force=force, now=now
    )


TEMPLATE = {
    "metadata": {"labels": {"app": "my-app"}},
    "spec": {"containers": [{"name": "my-c", "image": "my-image"}]},
}


def test_conflicts_with_client_side_values_still_live_are_forgiven() -> None:
    live = _created_client_side(LAST_APPLIED, replicas=100000)
    # replicas differs from what was client-side applied (3): a real conflict.
    with pytest.raises(fm.ApplyConflict) as caught:
        _apply(live, _server_side({"app": "my-new-label"}, replicas=3, template=TEMPLATE))
    assert caught.value.conflicts == [("kubectl-client-side-apply", ".spec.replicas")]
    assert str(caught.value) == (
        'Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" '
        "using apps/v1: .spec.replicas"
    )
    # Without replicas, every conflict is a field client-side applied as it is now.
    template = copy.deepcopy(TEMPLATE)
    template["spec"]["containers"][0]["image"] = "my-image-new"
    config = _server_side({"app": "my-new-label"}, template=template)
    upgraded = _apply(live, config)
    assert upgraded["spec"]["replicas"] == 100000
    assert upgraded["spec"]["template"]["spec"]["containers"][0]["image"] == "my-image-new"
    assert upgraded["metadata"]["labels"] == {"app": "my-new-label"}
    # The annotation now records this apply, as kubectl would write it.
    assert upgraded["metadata"]["annotations"][ANNOTATION] == lastapplied.encode_config(config)
    assert json.loads(upgraded["metadata"]["annotations"][ANNOTATION]) == config


def test_only_kubectl_is_forgiven() -> None:
    live = _created_client_side(LAST_APPLIED, replicas=3)
    config = _server_side({"app": "my-new-label"}, template=TEMPLATE)
    with pytest.raises(fm.ApplyConflict) as caught:
        _apply(live, config, "my-tool")
    assert caught.value.conflicts == [("kubectl-client-side-apply", ".metadata.labels.app")]
    assert "annotations" in _apply(live, config, "kubectl")["metadata"]


def test_an_invalid_annotation_forgives_nothing_until_forced() -> None:
    live = _created_client_side("invalid-object", replicas=1)
    config = _server_side({"app": "my-app-v2"}, replicas=100)
    with pytest.raises(fm.ApplyConflict):
        _apply(live, config)
    forced = _apply(live, config, force=True)
    annotation = forced["metadata"]["annotations"][ANNOTATION]
    assert annotation != "invalid-object" and "my-app-v2" in annotation


def test_the_annotation_is_only_kept_in_sync_when_present() -> None:
    plain = fm.apply(
        live=None,
        config=_server_side({"app": "x"}, replicas=1),
        manager="kubectl",
        api_version="apps/v1",
        force=False,
        now=T0,
    )
    assert "annotations" not in plain["metadata"]


def test_encoded_configuration_looks_like_go_json() -> None:
    config = {
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": {"name": "c", "annotations": {ANNOTATION: "old", "note": "<b>&"}},
        "data": {"z": "1", "a": "\b"},
    }
    assert lastapplied.encode_config(config) == (
        '{"apiVersion":"v1","data":{"a":"\\b","z":"1"},"kind":"ConfigMap",'
        '"metadata":{"annotations":{"note":"\\u003cb\\u003e\\u0026"},"name":"c"}}\n'
    )
    assert config["metadata"]["annotations"][ANNOTATION] == "old"  # type: ignore[index]


def test_an_annotation_too_large_is_dropped() -> None:
    live = _created_client_side(LAST_APPLIED, replicas=3)
    big = _server_side({"app": "my-app", "blob": "x" * 63})
    big["metadata"]["annotations"] = {"huge": "y" * (256 * 1024)}
    forced = _apply(live, big, force=True, now=T2)
    assert ANNOTATION not in forced["metadata"]["annotations"]
