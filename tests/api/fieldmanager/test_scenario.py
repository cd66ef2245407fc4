"""A Deployment's life under ``kubectl apply --server-side``, with the exact answers.

Two teams apply the same Deployment; the second conflicts, then forces with
``--force-conflicts``; ``kubectl scale`` takes replicas through ``/scale``; and an
object first created with client-side ``kubectl apply`` conflicts with
``kubectl-client-side-apply`` until kubectl itself upgrades it.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from pilothouse.api import fieldmanager as fm

Obj = dict[str, Any]


class Cluster:
    """Just enough of an API server: one stored object, a clock, a uid."""

    def __init__(self) -> None:
        self.obj: Obj | None = None
        self.second = 0

    def now(self) -> str:
        self.second += 1
        return f"2024-05-01T12:00:{self.second:02d}Z"

    def _store(self, obj: Obj) -> Obj:
        stored = copy.deepcopy(obj)
        stored["metadata"].setdefault("uid", "0b8b4a4e-uid")
        self.obj = stored
        return stored

    def apply(self, config: Obj, manager: str, *, force: bool = False) -> Obj:
        return self._store(
            fm.apply(
                live=self.obj,
                config=config,
                manager=manager,
                api_version="apps/v1",
                force=force,
                now=self.now(),
            )
        )

    def write(self, new: Obj, manager: str, subresource: str = "") -> Obj:
        return self._store(
            fm.update_managed_fields(
                live=self.obj,
                new=new,
                manager=manager,
                api_version="apps/v1",
                subresource=subresource,
                now=self.now(),
            )
        )


def _manifest(*, replicas: int, image: str) -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": image}]},
            },
        },
    }


def _owners(obj: Obj) -> dict[str, set[str]]:
    """Manager → the leaf fields it owns under spec (for readable checks)."""
    out: dict[str, set[str]] = {}
    for entry in obj["metadata"].get("managedFields", []):
        fields = fm.fieldpath.Set.from_fields(entry["fieldsV1"])
        key = entry["manager"] + (f"/{entry['subresource']}" if entry.get("subresource") else "")
        out[key] = {fm.fieldpath.path_string(p) for p in fields.paths() if p[0] == "f:spec"}
    return out


IMAGE = '.spec.template.spec.containers[name="nginx"].image'


def test_two_appliers_conflict_then_force() -> None:
    cluster = Cluster()
    cluster.apply(_manifest(replicas=2, image="nginx:1.25"), "team-a")

    with pytest.raises(fm.ApplyConflict) as caught:
        cluster.apply(_manifest(replicas=4, image="nginx:1.26"), "team-b")
    assert caught.value.status(kind="Deployment", group="apps", name="web").status() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": (
            f'Apply failed with 2 conflicts: conflicts with "team-a":\n- .spec.replicas\n- {IMAGE}'
        ),
        "reason": "Conflict",
        "code": 409,
        "details": {
            "causes": [
                {
                    "reason": "FieldManagerConflict",
                    "message": 'conflict with "team-a"',
                    "field": ".spec.replicas",
                },
                {
                    "reason": "FieldManagerConflict",
                    "message": 'conflict with "team-a"',
                    "field": IMAGE,
                },
            ]
        },
    }
    assert cluster.obj is not None and cluster.obj["spec"]["replicas"] == 2  # untouched

    forced = cluster.apply(_manifest(replicas=4, image="nginx:1.26"), "team-b", force=True)
    assert forced["spec"]["replicas"] == 4
    assert forced["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.26"
    owners = _owners(forced)
    assert {".spec.replicas", IMAGE} <= owners["team-b"]
    assert ".spec.replicas" not in owners["team-a"] and IMAGE not in owners["team-a"]
    # Fields both apply with the same value stay shared.
    assert ".spec.selector" in owners["team-a"] and ".spec.selector" in owners["team-b"]

    # team-a re-applying its old manifest now conflicts with team-b.
    with pytest.raises(fm.ApplyConflict) as caught:
        cluster.apply(_manifest(replicas=2, image="nginx:1.25"), "team-a")
    assert str(caught.value) == (
        'Apply failed with 2 conflicts: conflicts with "team-b":\n- .spec.replicas\n- ' + IMAGE
    )

    # kubectl scale takes replicas through /scale: the next apply conflicts with it.
    scaled = copy.deepcopy(forced)
    scaled["spec"]["replicas"] = 6
    cluster.write(scaled, "kubectl-scale", subresource="scale")
    with pytest.raises(fm.ApplyConflict) as caught:
        cluster.apply(_manifest(replicas=4, image="nginx:1.26"), "team-b")
    assert caught.value.status().message == (
        'Apply failed with 1 conflict: conflict with "kubectl-scale" with subresource "scale" '
        "using apps/v1: .spec.replicas"
    )
    assert caught.value.status().details == {
        "causes": [
            {
                "reason": "FieldManagerConflict",
                "message": 'conflict with "kubectl-scale" with subresource "scale" using apps/v1',
                "field": ".spec.replicas",
            }
        ]
    }
    # team-b drops replicas from its manifest: no conflict, and the scaled value stays.
    relaxed = _manifest(replicas=0, image="nginx:1.26")
    del relaxed["spec"]["replicas"]
    after = cluster.apply(relaxed, "team-b")
    assert after["spec"]["replicas"] == 6
    assert _owners(after)["kubectl-scale/scale"] == {".spec.replicas"}


def test_client_side_apply_then_server_side() -> None:
    cluster = Cluster()
    created = _manifest(replicas=1, image="nginx:1.25")
    annotation = fm.lastapplied.encode_config(created)
    created["metadata"]["annotations"] = {
        "kubectl.kubernetes.io/last-applied-configuration": annotation
    }
    cluster.write(created, "kubectl-client-side-apply")

    # Another tool changing replicas conflicts with the client-side applier.
    with pytest.raises(fm.ApplyConflict) as caught:
        cluster.apply(_manifest(replicas=3, image="nginx:1.25"), "deployer")
    assert caught.value.status().status()["message"] == (
        'Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" '
        "using apps/v1: .spec.replicas"
    )

    # `kubectl apply --server-side` takes over without a conflict: what it changes
    # was client-side applied with the value still live.
    upgraded = cluster.apply(_manifest(replicas=3, image="nginx:1.25"), "kubectl")
    assert upgraded["spec"]["replicas"] == 3
    assert ".spec.replicas" in _owners(upgraded)["kubectl"]
    assert ".spec.replicas" not in _owners(upgraded)["kubectl-client-side-apply"]
    last = upgraded["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
    assert '"replicas":3' in last
