"""ServiceAccount admission (upstream's plugin of the same name), for new pods.

A pod runs as ``spec.serviceAccountName`` (``default`` when it names none), which
must exist — the ``default`` account is waited for a little, as upstream does,
since the service-account controller creates it right after its namespace. The
pod gets the account's ``imagePullSecrets`` when it has none, and, unless
``automountServiceAccountToken`` is false on the pod or else on the account, the
projected ``kube-api-access-xxxxx`` volume (a bound token asked for 3607 s, the
cluster CA from ``kube-root-ca.crt`` and the namespace) mounted read-only at
``/var/run/secrets/kubernetes.io/serviceaccount`` in every container that has
nothing mounted there. Mirror pods are left alone.
"""

from __future__ import annotations

import asyncio
import random
from typing import TYPE_CHECKING, Any

from pilothouse.api import errors, meta
from pilothouse.api.meta import Obj

if TYPE_CHECKING:
    from pilothouse.apiserver.registry.store import ResourceStore

SERVICE_ACCOUNTS = "/registry/serviceaccounts/"
DEFAULT_ACCOUNT = "default"
VOLUME_PREFIX = "kube-api-access-"
MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
TOKEN_EXPIRATION = 60 * 60 + 7
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
DEFAULT_ATTEMPTS = 10


def token_volume(name: str) -> Obj:
    return {
        "name": name,
        "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION, "path": "token"}},
                {
                    "configMap": {
                        "name": ROOT_CA_CONFIGMAP,
                        "items": [{"key": "ca.crt", "path": "ca.crt"}],
                    }
                },
                {
                    "downwardAPI": {
                        "items": [
                            {
                                "path": "namespace",
                                "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                            }
                        ]
                    }
                },
            ],
        },
    }


async def _account(store: ResourceStore, namespace: str, name: str) -> Obj | None:
    cache = store.watch_cache.caches.get(SERVICE_ACCOUNTS)
    if cache is None:
        return None
    key = f"{SERVICE_ACCOUNTS}{namespace}/{name}"
    attempts = DEFAULT_ATTEMPTS if name == DEFAULT_ACCOUNT else 1
    # Upstream retries the default account for about a second: its controller makes it
    # right after the namespace.
    interval = (100 + random.randrange(100)) / 1000
    # The cache first, as upstream reads its lister; a miss is looked at again once the
    # cache has caught up with the store (upstream's live lookup).
    for attempt in range(attempts + 1):
        if attempt:
            await store.watch_cache.consistent()
        entry = cache.objects.get(key)
        if entry is not None:
            return entry.obj
        if attempt and attempt < attempts:
            await asyncio.sleep(interval)
    return None


def _should_automount(account: Obj, pod: Obj) -> bool:
    spec = pod.get("spec") or {}
    if spec.get("automountServiceAccountToken") is not None:
        return bool(spec["automountServiceAccountToken"])
    if account.get("automountServiceAccountToken") is not None:
        return bool(account["automountServiceAccountToken"])
    return True


def _mount_token(pod: Obj) -> None:
    spec = pod["spec"]
    volumes: list[Obj] = list(spec.get("volumes") or [])
    name = next(
        (v.get("name") for v in volumes if str(v.get("name", "")).startswith(VOLUME_PREFIX)), ""
    )
    has_volume = bool(name)
    if not name:
        name = meta.generate_name(VOLUME_PREFIX)
    needed = False
    for group in ("initContainers", "containers"):
        for container in spec.get(group) or []:
            mounts = container.get("volumeMounts") or []
            if any(m.get("mountPath") == MOUNT_PATH for m in mounts):
                continue
            mounts.append({"name": name, "readOnly": True, "mountPath": MOUNT_PATH})
            container["volumeMounts"] = mounts
            needed = True
    if needed and not has_volume:
        spec["volumes"] = [*volumes, token_volume(name)]


async def service_account_admission(store: ResourceStore, op: str, obj: Obj) -> None:
    r = store.resource
    if op != "create" or r.group != "" or r.plural != "pods":
        return
    md = obj.get("metadata") or {}
    spec: dict[str, Any] = obj.setdefault("spec", {})
    if MIRROR_ANNOTATION in (md.get("annotations") or {}):
        return
    name = spec.get("serviceAccountName") or spec.get("serviceAccount") or DEFAULT_ACCOUNT
    spec["serviceAccountName"] = name
    spec["serviceAccount"] = name
    namespace = md.get("namespace", "")
    account = await _account(store, namespace, name)
    if account is None:
        raise errors.forbidden(
            "pods",
            "",
            md.get("name", ""),
            f'error looking up service account {namespace}/{name}: serviceaccount "{name}" not found',
        )
    if _should_automount(account, obj):
        _mount_token(obj)
    if not spec.get("imagePullSecrets") and account.get("imagePullSecrets"):
        spec["imagePullSecrets"] = [
            {"name": s.get("name", "")} for s in account["imagePullSecrets"]
        ]
