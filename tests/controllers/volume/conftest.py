"""Volume controller tests: a real API server, the controllers on the test's loop.

PersistentVolumes are cluster-wide and the server is shared by the session, so every
test uses a StorageClass name of its own (``cls``) and unique volume names: a test's
volumes can never bind another test's claims. With ``--import-mode=importlib`` test
modules cannot import each other: the helpers reach tests through the ``vh`` fixture.
"""

from __future__ import annotations

import sys
import types
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from pilothouse.api import resources
from pilothouse.client import rest
from pilothouse.controllers.volume import ephemeral, persistentvolume, pvcprotection, pvprotection
from pilothouse.testing import running_controllers

Obj = dict[str, Any]


def r(group: str, plural: str) -> resources.Resource:
    res = resources.DEFAULT.by_path(group, "v1", plural)
    assert res is not None
    return res


PV = r("", "persistentvolumes")
PVC = r("", "persistentvolumeclaims")
PODS = r("", "pods")
SC = r("storage.k8s.io", "storageclasses")
EVENTS = r("", "events")


@pytest.fixture
def vh() -> types.ModuleType:
    """These helpers."""
    return sys.modules[__name__]


@pytest.fixture
def cls() -> str:
    return "c-" + uuid.uuid4().hex[:8]


@pytest.fixture
async def binder(client: rest.Client) -> AsyncIterator[None]:
    async with running_controllers(
        client,
        {
            "persistentvolume-binder": persistentvolume.PersistentVolumeController,
            "pvc-protection": pvcprotection.PVCProtectionController,
            "pv-protection": pvprotection.PVProtectionController,
            "ephemeral-volume": ephemeral.EphemeralVolumeController,
        },
    ):
        yield


def volume(
    name: str,
    size: str,
    cls: str,
    *,
    modes: tuple[str, ...] = ("ReadWriteOnce",),
    policy: str = "Retain",
    **spec: Any,
) -> Obj:
    labels = spec.pop("labels", None)
    md: Obj = {"name": name}
    if labels:
        md["labels"] = labels
    return {
        "metadata": md,
        "spec": {
            "capacity": {"storage": size},
            "accessModes": list(modes),
            "storageClassName": cls,
            "persistentVolumeReclaimPolicy": policy,
            "hostPath": {"path": f"/srv/{name}"},
            **spec,
        },
    }


def claim(
    name: str,
    size: str,
    cls: str | None,
    *,
    modes: tuple[str, ...] = ("ReadWriteOnce",),
    **spec: Any,
) -> Obj:
    body: Obj = {
        "accessModes": list(modes),
        "resources": {"requests": {"storage": size}},
        **spec,
    }
    if cls is not None:
        body["storageClassName"] = cls
    return {"metadata": {"name": name}, "spec": body}


async def events_of(client: rest.Client, ns: str, name: str) -> list[tuple[str, str, str]]:
    listing = await client.list(EVENTS, ns, field_selector=f"involvedObject.name={name}")
    return [(e["type"], e["reason"], e["message"]) for e in listing.get("items") or []]
