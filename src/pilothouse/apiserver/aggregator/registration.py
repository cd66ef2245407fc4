"""Local APIServices: one per group-version this server serves, as upstream registers them.

kube-apiserver's autoregister controller writes ``<version>.<group>`` (``v1.`` for
the core group) for each group-version of its table of priorities, labelled
``kube-aggregator.kubernetes.io/automanaged: onstart``: created or reset when the
server starts, left alone afterwards (an administrator may delete one). A
group-version missing from the table gets no APIService upstream; the ones
pilothouse serves that upstream's kube-apiserver does not (``metrics.k8s.io``, which
metrics-server registers with priority 100/100) get metrics-server's values.
"""

from __future__ import annotations

import logging
from typing import Any

from pilothouse.api import errors, resources
from pilothouse.apiserver.registry.store import ResourceStore

log = logging.getLogger(__name__)

AUTOMANAGED = "kube-aggregator.kubernetes.io/automanaged"
ON_START = "onstart"
CONTINUOUSLY = "true"

# (group, version) -> (groupPriorityMinimum, versionPriority): kube-apiserver 1.32's
# table (controlplane's generic priorities merged with kube-apiserver's own).
PRIORITIES: dict[tuple[str, str], tuple[int, int]] = {
    ("", "v1"): (18000, 1),
    ("apps", "v1"): (17800, 15),
    ("events.k8s.io", "v1"): (17750, 15),
    ("events.k8s.io", "v1beta1"): (17750, 5),
    ("authentication.k8s.io", "v1"): (17700, 15),
    ("authentication.k8s.io", "v1beta1"): (17700, 9),
    ("authentication.k8s.io", "v1alpha1"): (17700, 1),
    ("authorization.k8s.io", "v1"): (17600, 15),
    ("autoscaling", "v1"): (17500, 15),
    ("autoscaling", "v2"): (17500, 30),
    ("autoscaling", "v2beta1"): (17500, 9),
    ("autoscaling", "v2beta2"): (17500, 1),
    ("batch", "v1"): (17400, 15),
    ("batch", "v1beta1"): (17400, 9),
    ("certificates.k8s.io", "v1"): (17300, 15),
    ("certificates.k8s.io", "v1beta1"): (17300, 9),
    ("certificates.k8s.io", "v1alpha1"): (17300, 1),
    ("networking.k8s.io", "v1"): (17200, 15),
    ("networking.k8s.io", "v1beta1"): (17200, 9),
    ("policy", "v1"): (17100, 15),
    ("policy", "v1beta1"): (17100, 9),
    ("rbac.authorization.k8s.io", "v1"): (17000, 15),
    ("storage.k8s.io", "v1"): (16800, 15),
    ("storage.k8s.io", "v1beta1"): (16800, 9),
    ("storage.k8s.io", "v1alpha1"): (16800, 1),
    ("apiextensions.k8s.io", "v1"): (16700, 15),
    ("admissionregistration.k8s.io", "v1"): (16700, 15),
    ("admissionregistration.k8s.io", "v1beta1"): (16700, 12),
    ("admissionregistration.k8s.io", "v1alpha1"): (16700, 9),
    ("scheduling.k8s.io", "v1"): (16600, 15),
    ("coordination.k8s.io", "v1"): (16500, 15),
    ("coordination.k8s.io", "v1beta1"): (16500, 13),
    ("node.k8s.io", "v1"): (16300, 15),
    ("discovery.k8s.io", "v1"): (16200, 15),
    ("flowcontrol.apiserver.k8s.io", "v1"): (16100, 21),
    ("resource.k8s.io", "v1alpha3"): (15900, 9),
    # Served here in-process; metrics-server's own APIService uses 100/100.
    ("metrics.k8s.io", "v1beta1"): (100, 100),
}

LOCAL_CONDITION_MESSAGE = "Local APIServices are always available"


def name_of(group: str, version: str) -> str:
    return f"{version}.{group}"


def local_api_service(group: str, version: str) -> dict[str, Any] | None:
    """The APIService upstream would register for a served group-version, or None."""
    priority = PRIORITIES.get((group, version))
    if priority is None:
        return None
    return {
        "apiVersion": "apiregistration.k8s.io/v1",
        "kind": "APIService",
        "metadata": {"name": name_of(group, version), "labels": {AUTOMANAGED: ON_START}},
        "spec": {
            "group": group,
            "version": version,
            "groupPriorityMinimum": priority[0],
            "versionPriority": priority[1],
        },
    }


def local_condition(now: str) -> dict[str, Any]:
    return {
        "type": "Available",
        "status": "True",
        "lastTransitionTime": now,
        "reason": "Local",
        "message": LOCAL_CONDITION_MESSAGE,
    }


async def register_local(store: ResourceStore, registry: resources.Registry) -> list[str]:
    """Create (or reset the spec of) the local APIServices; returns their names."""
    names: list[str] = []
    for group, version in registry.group_versions:
        wanted = local_api_service(group, version)
        if wanted is None:
            continue
        name = wanted["metadata"]["name"]
        names.append(name)
        current = await store.current("", name)
        if current is None:
            try:
                await store.create("", wanted)
            except errors.StatusError as exc:
                if not errors.is_already_exists(exc):
                    log.warning("APIService %s not registered: %s", name, exc.message)
            continue
        if current.obj.get("spec") == wanted["spec"]:
            continue

        async def reset(
            obj: dict[str, Any], spec: dict[str, Any] = wanted["spec"]
        ) -> dict[str, Any]:
            obj["spec"] = spec
            labels = obj["metadata"].setdefault("labels", {})
            labels[AUTOMANAGED] = ON_START
            return obj

        try:
            await store.guaranteed_update("", name, reset)
        except errors.StatusError as exc:
            log.warning("APIService %s not reset: %s", name, exc.message)
    return names
