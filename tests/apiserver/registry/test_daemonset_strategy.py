"""A DaemonSet's template generation lives in its annotation, as apps/v1 serves it."""

from __future__ import annotations

from typing import Any

ANNOTATION = "deprecated.daemonset.template.generation"


def daemon_set(image: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "agent"},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {
                "metadata": {"labels": {"app": "agent"}},
                "spec": {"containers": [{"name": "c", "image": image}]},
            },
        },
    }


def test_template_generation_counts_template_changes_only(api: Any, namespace: str) -> None:
    path = f"/apis/apps/v1/namespaces/{namespace}/daemonsets"
    status, ds = api.json("POST", path, daemon_set("v1"))
    assert status == 201, ds
    assert ds["metadata"]["annotations"] == {ANNOTATION: "1"}
    assert "templateGeneration" not in ds["spec"]  # not an apps/v1 field

    ds["spec"]["template"]["spec"]["containers"][0]["image"] = "v2"
    ds["metadata"]["annotations"][ANNOTATION] = "99"  # not the client's to set
    status, ds = api.json("PUT", f"{path}/agent", ds)
    assert status == 200, ds
    assert ds["metadata"]["annotations"][ANNOTATION] == "2" and ds["metadata"]["generation"] == 2

    ds["spec"]["minReadySeconds"] = 5  # a spec change outside the template
    status, ds = api.json("PUT", f"{path}/agent", ds)
    assert status == 200, ds
    assert ds["metadata"]["annotations"][ANNOTATION] == "2" and ds["metadata"]["generation"] == 3
