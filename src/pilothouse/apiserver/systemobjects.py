"""The objects every cluster has, made by the API server at start when missing: the
system namespaces, the kube-dns Service (when the nodes serve cluster DNS), the system
PriorityClasses and, in a new cluster, the default local-path StorageClass. What a user
deleted or changed is left alone, except that a missing one is made again."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

from pilothouse.api import errors, pvhelpers
from pilothouse.apiserver.admission import priority
from pilothouse.apiserver.registry.store import ResourceStore

log = logging.getLogger(__name__)

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


async def ensure(
    store_for: Callable[[str, str, str], ResourceStore],
    *,
    cluster_dns: str,
    default_storage_class: bool,
) -> None:
    """Make what is missing; ``store_for(group, version, plural)`` finds each store."""
    namespaces = store_for("", "v1", "namespaces")
    first_start = await namespaces.current("", "default") is None
    for name in SYSTEM_NAMESPACES:
        await _ensure(
            namespaces,
            "",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
        )
    if cluster_dns:
        await _ensure_kube_dns(store_for("", "v1", "services"), cluster_dns)
    priorities = store_for("scheduling.k8s.io", "v1", "priorityclasses")
    for priority_class in priority.system_priority_classes():
        await _ensure(priorities, "", priority_class)
    if first_start and default_storage_class:
        # Only a new cluster gets it: a class the user deleted stays deleted.
        classes = store_for("storage.k8s.io", "v1", "storageclasses")
        await _ensure(classes, "", pvhelpers.local_path_storage_class())


async def _ensure(store: ResourceStore, namespace: str, obj: dict[str, Any]) -> None:
    name = obj["metadata"]["name"]
    if await store.current(namespace, name) is None:
        with contextlib.suppress(errors.StatusError):
            await store.create(namespace, obj)


def kube_dns_service(cluster_ip: str) -> dict[str, Any]:
    """The kube-dns Service as the DNS add-on ships it, for discovery of the cluster DNS
    that every node agent serves on ``cluster_ip`` (no selector: no pods back it). Its
    proxy-name label keeps kube-proxies away: the address is local on every node."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "kube-dns",
            "labels": {
                "k8s-app": "kube-dns",
                "kubernetes.io/cluster-service": "true",
                "kubernetes.io/name": "KubeDNS",
                "service.kubernetes.io/service-proxy-name": "pilothouse-dns",
            },
            "annotations": {"prometheus.io/port": "9153", "prometheus.io/scrape": "true"},
        },
        "spec": {
            "clusterIP": cluster_ip,
            "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153},
            ],
            "type": "ClusterIP",
            "sessionAffinity": "None",
        },
    }


async def _ensure_kube_dns(services: ResourceStore, cluster_ip: str) -> None:
    current = await services.current("kube-system", "kube-dns")
    if current is None:
        try:
            await services.create("kube-system", kube_dns_service(cluster_ip))
        except errors.StatusError as exc:
            log.warning(
                "kube-dns Service not created: %s (is %s taken by another Service? pods still "
                "use it as their nameserver)",
                exc.message,
                cluster_ip,
            )
        return
    ip = (current.obj.get("spec") or {}).get("clusterIP") or ""
    if ip != cluster_ip:
        log.warning(
            "kube-system/kube-dns has cluster IP %s, but cluster DNS is served on %s; delete the "
            "Service and restart the server to recreate it",
            ip,
            cluster_ip,
        )
