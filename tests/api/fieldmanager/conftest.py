"""Objects shared by the field manager tests, shaped as the API serves them."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

Obj = dict[str, Any]


def _deployment(name: str = "nginx", *, replicas: int = 1, image: str = "nginx:1.25") -> Obj:
    """A Deployment as ``kubectl create`` sends it after upstream's defaulting."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {
                            "name": "nginx",
                            "image": image,
                            "imagePullPolicy": "IfNotPresent",
                            "resources": {},
                            "terminationMessagePath": "/dev/termination-log",
                            "terminationMessagePolicy": "File",
                        }
                    ],
                    "restartPolicy": "Always",
                    "terminationGracePeriodSeconds": 30,
                    "dnsPolicy": "ClusterFirst",
                    "securityContext": {},
                    "schedulerName": "default-scheduler",
                },
            },
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
            },
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
        },
        "status": {},
    }


@pytest.fixture
def deployment() -> Callable[..., Obj]:
    """Build a defaulted Deployment."""
    return _deployment


@pytest.fixture
def stored() -> Callable[[Obj], Obj]:
    """What the store would hand back: a deep copy with a uid (so not a create)."""

    def store(obj: Obj) -> Obj:
        out = copy.deepcopy(obj)
        out["metadata"].setdefault("uid", "6a1c6f5e-0d2e-4b43-9e55-5d1d5ed6e0a1")
        out["metadata"].setdefault("resourceVersion", "1")
        return out

    return store
