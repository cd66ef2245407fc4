"""Reads of the watch cache that admission plugins share (upstream's plugins read
informer listers the same way: the server's own writes are in them before the write
returns, so a LimitRange just created applies to the next pod)."""

from __future__ import annotations

from typing import Any

from pilothouse.apiserver import watchcache

Obj = dict[str, Any]

NAMESPACES = "/registry/namespaces/"
LIMIT_RANGES = "/registry/limitranges/"
RESOURCE_QUOTAS = "/registry/resourcequotas/"
PRIORITY_CLASSES = "/registry/scheduling.k8s.io/priorityclasses/"
PODS = "/registry/pods/"


def in_namespace(cache: watchcache.WatchCache, prefix: str, namespace: str) -> list[Obj]:
    resource = cache.caches.get(prefix)
    if resource is None:
        return []
    return [e.obj for e in resource.snapshot(f"{prefix}{namespace}/")]


def all_of(cache: watchcache.WatchCache, prefix: str) -> list[Obj]:
    resource = cache.caches.get(prefix)
    if resource is None:
        return []
    return [e.obj for e in resource.objects.values()]


def get(cache: watchcache.WatchCache, prefix: str, key: str) -> Obj | None:
    resource = cache.caches.get(prefix)
    if resource is None:
        return None
    entry = resource.objects.get(prefix + key)
    return entry.obj if entry is not None else None


def namespace(cache: watchcache.WatchCache, name: str) -> Obj | None:
    return get(cache, NAMESPACES, name)
