"""An in-memory stand-in for :class:`~pilothouse.client.rest.Client`, for controller tests.

:class:`FakeClient` answers the verbs controllers use — get, list, create, update,
update_status, patch, delete — from a dict, with the API's bookkeeping where
controllers rely on it: uids, one increasing resourceVersion, ``generateName``,
``generation`` that counts spec changes, optimistic concurrency (409 on a stale
resourceVersion or a uid precondition), AlreadyExists and NotFound as the server
words them, strategic and merge patches through :mod:`pilothouse.api.patch`, and a
new pod's ``status.phase: Pending``. Every write is recorded in ``writes``.

Informers are not fed by it: tests fill a controller's caches themselves
(``informer.indexer.upsert``, or :meth:`FakeClient.objects_of`), which is what makes
each sync step observable. Single-threaded, one event loop; not for concurrent use
from several threads.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from pilothouse.api import errors, meta, patch
from pilothouse.api.meta import Obj
from pilothouse.api.resources import Resource
from pilothouse.client import rest
from pilothouse.client.clock import DEFAULT as DEFAULT_CLOCK
from pilothouse.client.clock import Clock

Key = tuple[str, str, str, str]  # group, plural, namespace, name


class FakeClient:
    """The API as a dict (see the module docstring)."""

    def __init__(self, *, clock: Clock = DEFAULT_CLOCK) -> None:
        self.clock = clock
        self.objects: dict[Key, Obj] = {}
        self.writes: list[tuple[str, str, Obj]] = []
        self.requests = 0
        self._rv = itertools.count(1)
        self._uid = itertools.count(1)
        self.fail: Callable[[str, Resource, Obj], errors.StatusError | None] | None = None
        """A hook to make a write fail: given (verb, resource, body), return the error."""

    # --- helpers for tests ------------------------------------------------------------
    def objects_of(self, resource: Resource, namespace: str | None = None) -> list[Obj]:
        return [
            obj
            for (group, plural, ns, _name), obj in self.objects.items()
            if group == resource.group
            and plural == resource.plural
            and (namespace is None or ns == namespace)
        ]

    def put(self, resource: Resource, obj: Obj) -> Obj:
        """Store ``obj`` as it is (with a new resourceVersion), bypassing every check."""
        stored = meta.deep_copy(obj)
        md = stored.setdefault("metadata", {})
        md.setdefault("uid", f"uid-{next(self._uid)}")
        md["resourceVersion"] = str(next(self._rv))
        self.objects[_key(resource, md.get("namespace", ""), md["name"])] = stored
        return meta.deep_copy(stored)

    def verbs(self, verb: str, plural: str) -> list[Obj]:
        return [o for v, p, o in self.writes if v == verb and p == plural]

    # --- the client's verbs -----------------------------------------------------------
    def _check_fail(self, verb: str, resource: Resource, body: Obj) -> None:
        if self.fail is not None:
            error = self.fail(verb, resource, body)
            if error is not None:
                raise error

    def _get(self, resource: Resource, name: str, namespace: str) -> Obj:
        obj = self.objects.get(_key(resource, namespace, name))
        if obj is None:
            raise errors.not_found(resource.plural, resource.group, name)
        return obj

    async def get(self, resource: Resource, name: str, namespace: str = "") -> Obj:
        self.requests += 1
        return meta.deep_copy(self._get(resource, name, namespace))

    async def list(self, resource: Resource, namespace: str = "", **_: Any) -> Obj:
        self.requests += 1
        items = [meta.deep_copy(o) for o in self.objects_of(resource, namespace or None)]
        return {"items": items, "metadata": {"resourceVersion": str(next(self._rv))}}

    async def create(self, resource: Resource, obj: Obj, namespace: str = "", **_: Any) -> Obj:
        self.requests += 1
        body = meta.deep_copy(obj)
        md = body.setdefault("metadata", {})
        ns = namespace or md.get("namespace", "")
        if resource.namespaced:
            md["namespace"] = ns
        if not md.get("name") and md.get("generateName"):
            md["name"] = meta.generate_name(md["generateName"])
        self._check_fail("create", resource, body)
        key = _key(resource, ns, md["name"])
        if key in self.objects:
            raise errors.already_exists(resource.plural, resource.group, md["name"])
        md["uid"] = f"uid-{next(self._uid)}"
        md["resourceVersion"] = str(next(self._rv))
        md["creationTimestamp"] = meta.format_time(self.clock.now())
        if "spec" in body:
            md["generation"] = 1
        if resource.kind == "Pod":
            body.setdefault("status", {}).setdefault("phase", "Pending")
        body.setdefault("apiVersion", resource.api_version)
        body.setdefault("kind", resource.kind)
        self.objects[key] = body
        self.writes.append(("create", resource.plural, meta.deep_copy(body)))
        return meta.deep_copy(body)

    def _check_version(self, resource: Resource, current: Obj, body: Obj) -> None:
        md, cur = body.get("metadata") or {}, current["metadata"]
        rv = md.get("resourceVersion")
        if rv and rv != cur.get("resourceVersion"):
            raise errors.stale_update(resource.plural, resource.group, cur["name"])
        uid = md.get("uid")
        if uid and uid != cur.get("uid"):
            raise errors.conflict(
                resource.plural,
                resource.group,
                cur["name"],
                f"Precondition failed: UID in precondition: {uid}, UID in object meta: "
                f"{cur.get('uid')}",
            )

    def _store_update(self, resource: Resource, current: Obj, new: Obj, verb: str | None) -> Obj:
        md = new["metadata"]
        cur = current["metadata"]
        for field in ("uid", "creationTimestamp", "namespace", "name"):
            if field in cur:
                md[field] = cur[field]
        if "generation" in cur:
            changed = new.get("spec") != current.get("spec")
            md["generation"] = int(cur["generation"]) + (1 if changed else 0)
        md["resourceVersion"] = str(next(self._rv))
        self.objects[_key(resource, md.get("namespace", ""), md["name"])] = new
        if verb is not None:
            self.writes.append((verb, resource.plural, meta.deep_copy(new)))
        return meta.deep_copy(new)

    async def update(self, resource: Resource, obj: Obj, *, subresource: str = "", **_: Any) -> Obj:
        self.requests += 1
        if subresource == "status":
            return await self.update_status(resource, obj)
        body = meta.deep_copy(obj)
        md = body["metadata"]
        current = self._get(resource, md["name"], md.get("namespace", ""))
        self._check_fail("update", resource, body)
        self._check_version(resource, current, body)
        if "status" in current:
            body["status"] = meta.deep_copy(current["status"])
        return self._store_update(resource, current, body, "update")

    async def update_status(self, resource: Resource, obj: Obj) -> Obj:
        self.requests += 1
        body = meta.deep_copy(obj)
        md = body["metadata"]
        current = self._get(resource, md["name"], md.get("namespace", ""))
        self._check_fail("status", resource, body)
        self._check_version(resource, current, body)
        new = meta.deep_copy(current)
        new["status"] = body.get("status") or {}
        return self._store_update(resource, current, new, "status")

    async def patch(
        self,
        resource: Resource,
        name: str,
        body: Any,
        namespace: str = "",
        *,
        patch_type: str = rest.MERGE_PATCH,
        **_: Any,
    ) -> Obj:
        self.requests += 1
        current = self._get(resource, name, namespace)
        self._check_fail("patch", resource, body)
        self._check_version(resource, current, {"metadata": (body or {}).get("metadata") or {}})
        group, _sep, version = resource.api_version.rpartition("/")
        if patch_type == rest.STRATEGIC_PATCH:
            new = patch.apply_strategic_merge_patch(
                current, body, group=group, version=version, kind=resource.kind
            )
        else:
            new = patch.apply_merge_patch(current, body)
        new["metadata"].pop("resourceVersion", None)
        self.writes.append(("patch", resource.plural, meta.deep_copy(body)))
        return self._store_update(resource, current, new, None)

    async def delete(
        self, resource: Resource, name: str, namespace: str = "", *, uid: str = "", **_: Any
    ) -> Obj:
        self.requests += 1
        current = self._get(resource, name, namespace)
        self._check_fail("delete", resource, {"metadata": {"name": name, "uid": uid}})
        if uid and uid != current["metadata"].get("uid"):
            raise errors.conflict(
                resource.plural,
                resource.group,
                name,
                f"Precondition failed: UID in precondition: {uid}, UID in object meta: "
                f"{current['metadata'].get('uid')}",
            )
        del self.objects[_key(resource, namespace, name)]
        self.writes.append(("delete", resource.plural, {"metadata": {"name": name}}))
        return meta.deep_copy(current)


def _key(resource: Resource, namespace: str, name: str) -> Key:
    return (resource.group, resource.plural, namespace if resource.namespaced else "", name)
