"""The generic registry: one implementation of create, read, update and delete
for every kind (upstream's ``registry/generic/registry/store.go``).

It owns what all kinds share — keys, uids, timestamps, generateName,
optimistic concurrency, generation, dry-run, finalizers — and asks the kind's
:class:`~pilothouse.apiserver.registry.strategy.Strategy` for the rest.

Reads come from the watch cache after it has caught up with the store, so a
client always reads its own writes (a LIST's rules are
:func:`.listing.list_page`'s). Writes go to the store with the revision
they were based on; a concurrent writer makes the store refuse, and the
request either fails with 409 (the client named a resourceVersion) or is
retried on the fresh object (it did not). Many requests run concurrently on
the event loop; the store serialises the writes.

Objects read are the cache's, with their managedFields put back
(:meth:`~pilothouse.apiserver.cacheentry.Entry.whole`), and the cache keeps the
written object rather than decoding what was stored (its top level and metadata
copied, to hold the managedFields apart): callers read them and never change them.
How a write reaches the store and that cache is :mod:`.storewrite`.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Awaitable, Callable

from pilothouse.api import errors, fieldmanager, meta, resources
from pilothouse.api.meta import Obj
from pilothouse.apiserver import cacheentry, requestcontext, watchcache
from pilothouse.apiserver.admission import chain as admission_chain
from pilothouse.apiserver.admission import interface as admission
from pilothouse.apiserver.registry import conversion, deletion, listing, storewrite
from pilothouse.apiserver.registry.listing import (
    ListOptions,
    ListPage,
    parse_rv,
)
from pilothouse.apiserver.registry.strategy import Strategy
from pilothouse.storage import interface as storage

GENERATE_NAME_ATTEMPTS = 8

# Registry work a kind needs just before its objects are written, after admission
# accepted them (a Service's cluster IP and node ports): ``(store, "create"|"update", obj)``.
Admission = Callable[["ResourceStore", str, Obj], Awaitable[None]]
# Runs after a create or update was stored (not for dry runs), before the request is
# answered: what must follow a write at once (serving a new CRD's resource).
AfterWrite = Callable[[Obj], Awaitable[None]]


class ResourceStore:
    """CRUD for one resource, over the store and its watch cache."""

    def __init__(
        self,
        *,
        resource: resources.Resource,
        strategy: Strategy,
        store: storage.Store,
        cache: watchcache.WatchCache,
        admission: admission_chain.Chain | None = None,
        before_write: list[Admission] | None = None,
        converter: conversion.Converter | None = None,
        remote: conversion.RemoteConverter | None = None,
    ) -> None:
        self.resource = resource
        self.strategy = strategy
        self.store = store
        self.watch_cache = cache
        self.cache = cache.resource(resource.storage_prefix)
        self.convert = converter if converter is not None else conversion.for_resource(resource)
        self.admission = admission
        self.before_write = before_write or []
        self.after_write: list[AfterWrite] = []
        # Conversion that needs I/O (a CRD's conversion webhook), after ``convert``.
        self.remote = remote

    # --- helpers ------------------------------------------------------------
    def key(self, namespace: str, name: str) -> str:
        return self.resource.key(namespace, name)

    def _not_found(self, name: str) -> errors.StatusError:
        r = self.resource
        return errors.not_found(r.plural, r.group, name)

    async def current(self, namespace: str, name: str) -> cacheentry.Entry | None:
        """The object as of the store's latest acknowledged write."""
        await self.watch_cache.consistent()
        return self.cache.objects.get(self.key(namespace, name))

    def output(self, obj: Obj) -> Obj:
        """The object in this resource's version (storage form → API form)."""
        return self.convert.to_api(obj) if self.convert else obj

    async def _out(self, obj: Obj) -> Obj:
        """:meth:`output`, then the remote conversion if the resource has one."""
        out = self.output(obj)
        if self.remote is not None:
            (out,) = await self.remote.to_api([out])
        return out

    async def _in(self, obj: Obj) -> Obj:
        """A request's object in storage form."""
        obj = self.convert.to_storage(obj) if self.convert else obj
        if self.remote is not None:
            obj = await self.remote.to_storage(obj)
        return obj

    async def api_entries(
        self, entries: builtins.list[cacheentry.Entry]
    ) -> builtins.list[cacheentry.Entry]:
        """Cached entries converted through the remote conversion (one call for all)."""
        if self.remote is None or not entries:
            return entries
        converted = await self.remote.to_api([self.output(e.whole()) for e in entries])
        return [
            cacheentry.Entry(e.key, obj, e.revision)
            for e, obj in zip(entries, converted, strict=True)
        ]

    # --- read -----------------------------------------------------------------
    async def get(self, namespace: str, name: str) -> Obj:
        await self.watch_cache.consistent(linearizable=True)
        entry = self.cache.objects.get(self.key(namespace, name))
        if entry is None:
            raise self._not_found(name)
        return await self._out(entry.whole())

    async def list(self, namespace: str, opts: ListOptions) -> ListPage:
        return await listing.list_page(
            store=self.store,
            watch_cache=self.watch_cache,
            cache=self.cache,
            prefix=self.resource.prefix(namespace),
            opts=opts,
        )

    # --- create ---------------------------------------------------------------
    async def create(
        self, namespace: str, obj: Obj, *, dry_run: bool = False, manager: str | None = None
    ) -> Obj:
        self.strategy.check_create()
        obj = await self._in(obj)
        md = obj.get("metadata")
        if md is None:
            md = obj["metadata"] = {}
        if self.resource.namespaced:
            body_ns = md.get("namespace") or ""
            if body_ns and namespace and body_ns != namespace:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            md["namespace"] = namespace or body_ns
        else:
            md.pop("namespace", None)
        if md.get("resourceVersion"):
            raise errors.bad_request("resourceVersion should not be set on objects to be created")
        generate = not md.get("name") and bool(md.get("generateName"))

        md["uid"] = meta.new_uid()
        md["creationTimestamp"] = meta.now()
        self.strategy.prepare_for_create(obj)
        self.strategy.default(obj)
        for field in ("deletionTimestamp", "deletionGracePeriodSeconds"):
            md.pop(field, None)
        if self.strategy.tracks_generation:
            md["generation"] = 1
        else:
            md.pop("generation", None)
        if manager is not None:
            obj = self._track_fields(None, obj, manager, "")
            md = obj["metadata"]
        attrs = self._attributes(
            admission.CREATE, md.get("namespace", ""), md.get("name", ""), obj, None, "", dry_run
        )
        if attrs is not None:
            await self._admit(attrs)
            md = obj["metadata"]
        if generate:
            # After mutating admission, as upstream: plugins refuse with the generateName.
            md["name"] = meta.generate_name(str(md["generateName"]))
        self._validate(obj, self.strategy.validate(obj))
        if attrs is not None:
            attrs.name = md.get("name", "")
            await self._admission_validate(attrs)
        for hook in self.before_write:
            await hook(self, "create", obj)

        ns = md.get("namespace", "")
        for attempt in range(GENERATE_NAME_ATTEMPTS):
            key = self.key(ns, md["name"])
            if dry_run:
                await self.watch_cache.consistent()
                if key in self.cache.objects:
                    raise errors.already_exists(
                        self.resource.plural, self.resource.group, md["name"]
                    )
                return await self._out(obj)
            try:
                rev = await storewrite.write(self.store, self.watch_cache, key, obj, None, old=None)
            except storage.KeyExistsError:
                if generate and attempt + 1 < GENERATE_NAME_ATTEMPTS:
                    md["name"] = meta.generate_name(str(md["generateName"]))
                    continue
                raise errors.already_exists(
                    self.resource.plural, self.resource.group, md["name"]
                ) from None
            md["resourceVersion"] = str(rev)
            for after in self.after_write:
                await after(obj)
            return await self._out(obj)
        raise AssertionError("unreachable")

    # --- admission -------------------------------------------------------------
    async def connect(self, namespace: str, name: str, subresource: str, options: Obj) -> None:
        """Admission of a CONNECT request (exec, attach, port-forward, proxy): the plugins
        see the options object; the object itself must exist."""
        attrs = self._attributes(
            admission.CONNECT, namespace, name, options, None, subresource, False
        )
        if attrs is not None:
            await self._admit(attrs)
            await self._admission_validate(attrs)

    def _attributes(
        self,
        operation: str,
        namespace: str,
        name: str,
        obj: Obj | None,
        old: Obj | None,
        subresource: str,
        dry_run: bool,
    ) -> admission.Attributes | None:
        """The request as admission sees it, or None when no plugin wants it."""
        if self.admission is None:
            return None
        attrs = admission.Attributes(
            operation=operation,
            resource=self.resource,
            namespace=namespace if self.resource.namespaced else "",
            name=name,
            obj=obj,
            old=old,
            subresource=subresource,
            dry_run=dry_run,
            store=self,
            user=requestcontext.user(),
        )
        return attrs if self.admission.wants(attrs) else None

    async def _admit(self, attrs: admission.Attributes) -> None:
        assert self.admission is not None
        await self.admission.admit(attrs)

    async def _admission_validate(self, attrs: admission.Attributes) -> None:
        assert self.admission is not None
        await self.admission.validate(attrs)

    def _validate(self, obj: Obj, errs: builtins.list[errors.FieldError]) -> None:
        if errs:
            name = (obj.get("metadata") or {}).get("name") or ""
            raise errors.invalid(self.resource.kind, self.resource.group, name, errs)

    # --- update ---------------------------------------------------------------
    async def update(
        self,
        namespace: str,
        name: str,
        obj: Obj,
        *,
        dry_run: bool = False,
        subresource: str = "",
        manager: str | None = None,
    ) -> tuple[Obj, bool]:
        """PUT: replace the object. Returns (object, created)."""
        obj = await self._in(obj)
        md = obj.get("metadata")
        if md is None:
            md = obj["metadata"] = {}
        body_name = md.get("name") or ""
        if body_name and body_name != name:
            raise errors.bad_request(
                f"the name of the object ({body_name}) does not match the name on the URL ({name})"
            )
        md["name"] = name
        if self.resource.namespaced:
            body_ns = md.get("namespace") or ""
            if body_ns and body_ns != namespace:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            md["namespace"] = namespace
        requested_rv = parse_rv(str(md.get("resourceVersion") or ""), "resourceVersion")

        async def mutate(old: Obj) -> Obj:
            return meta.deep_copy(obj) if requested_rv == 0 else obj

        return await self._update(
            namespace,
            name,
            mutate,
            requested_rv=requested_rv,
            dry_run=dry_run,
            subresource=subresource,
            manager=manager,
            create_body=obj if self.strategy.allow_create_on_update and not subresource else None,
        )

    async def guaranteed_update(
        self,
        namespace: str,
        name: str,
        mutate: Callable[[Obj], Awaitable[Obj]],
        *,
        dry_run: bool = False,
        subresource: str = "",
        manager: str | None = None,
        in_place: bool = True,
    ) -> Obj:
        """Apply ``mutate`` to the current object, retrying on concurrent writes.

        ``mutate`` receives a private copy of the current object (in API form)
        and returns the desired object (patches, scale, internal updates). With
        ``in_place=False`` the caller promises that ``mutate`` changes nothing it is
        given, at any depth, and returns a new object that shares what it did not
        change: then it is given the cached object itself, not a deep copy (a
        binding's copy of the whole pod was the largest single cost of a binding)."""
        shares = not in_place and self.convert is None and self.remote is None

        async def wrapped(old: Obj) -> Obj:
            desired = await mutate(old if shares else await self._out(meta.deep_copy(old)))
            return await self._in(desired)

        obj, _ = await self._update(
            namespace,
            name,
            wrapped,
            requested_rv=-1,
            dry_run=dry_run,
            subresource=subresource,
            manager=manager,
        )
        return obj

    async def _update(
        self,
        namespace: str,
        name: str,
        mutate: Callable[[Obj], Awaitable[Obj]],
        *,
        requested_rv: int,
        dry_run: bool,
        subresource: str,
        manager: str | None = None,
        create_body: Obj | None = None,
    ) -> tuple[Obj, bool]:
        """The update loop. ``requested_rv``: >0 a precondition from the client,
        0 unconditional, -1 whatever the mutate function's object says."""
        key = self.key(namespace, name)
        while True:
            entry = await self.current(namespace, name)
            if entry is None:
                if create_body is not None:
                    create_body["metadata"].pop("resourceVersion", None)
                    created = await self.create(
                        namespace, create_body, dry_run=dry_run, manager=manager
                    )
                    return created, True
                raise self._not_found(name)
            old = entry.whole()
            new = await mutate(old)
            md = new.setdefault("metadata", {})
            rv = requested_rv
            if rv == -1:
                rv = parse_rv(str(md.get("resourceVersion") or ""))
                if rv and rv != entry.revision:
                    # The mutation carried a precondition (e.g. a patch naming one).
                    raise errors.stale_update(self.resource.plural, self.resource.group, name)
            elif rv and rv != entry.revision:
                raise errors.stale_update(self.resource.plural, self.resource.group, name)
            self._check_uid(new, old, name)
            if subresource == "status":
                self.strategy.prepare_for_status_update(new, old)
            elif not subresource:
                self.strategy.prepare_for_update(new, old)
                self.strategy.default(new)
            # Other subresources (scale, binding, finalize) change exactly the
            # fields they own; their handlers build the new object.
            self._keep_system_metadata(new, old)
            if manager is not None:
                new = self._track_fields(old, new, manager, subresource)
                md = new["metadata"]
            attrs = self._attributes(
                admission.UPDATE, namespace, name, new, old, subresource, dry_run
            )
            if attrs is not None:
                await self._admit(attrs)
                md = new.setdefault("metadata", {})
            if subresource == "status":
                self._validate(new, self.strategy.validate_status_update(new, old))
            elif subresource in ("", "scale"):
                self._validate(new, self._validate_update(new, old))
            if attrs is not None:
                await self._admission_validate(attrs)
            for hook in self.before_write:
                await hook(self, "update", new)

            old_md = old["metadata"]
            md["resourceVersion"] = old_md.get("resourceVersion")
            if (
                md.get("deletionTimestamp")
                and not md.get("finalizers")
                and not self.strategy.has_other_finalizers(new)
                and not int(md.get("deletionGracePeriodSeconds") or 0)
            ):
                # The last finalizer is gone from an object being deleted: delete it.
                if dry_run:
                    return await self._out(new), False
                try:
                    kv = await storewrite.delete(self.store, key, entry.revision, old=old)
                except storage.RevisionMismatchError:
                    if requested_rv > 0:
                        raise errors.stale_update(
                            self.resource.plural, self.resource.group, name
                        ) from None
                    continue
                except storage.KeyNotFoundError:
                    raise self._not_found(name) from None
                md["resourceVersion"] = str(kv.mod_revision)
                return await self._out(new), False
            if new == old and not storewrite.stale(self.store, key, entry.revision):
                return await self._out(old), False  # nothing changed: no write, no event
            if (
                subresource != "status"  # a status write never bumps the generation
                and self.strategy.tracks_generation
                and self.strategy.spec_changed(new, old)
            ):
                md["generation"] = int(old_md.get("generation") or 1) + 1
            if dry_run:
                return await self._out(new), False
            try:
                rev = await storewrite.write(
                    self.store, self.watch_cache, key, new, entry.revision, old=old
                )
            except storage.RevisionMismatchError:
                if requested_rv > 0:
                    raise errors.stale_update(
                        self.resource.plural, self.resource.group, name
                    ) from None
                continue
            except storage.KeyNotFoundError:
                raise self._not_found(name) from None
            md["resourceVersion"] = str(rev)
            for after in self.after_write:
                await after(new)
            return await self._out(new), False

    def _track_fields(self, old: Obj | None, new: Obj, manager: str, subresource: str) -> Obj:
        """Record in managedFields which fields ``manager`` set (an Update operation)."""
        live = self.output(old) if old is not None else None
        tracked = fieldmanager.update_managed_fields(
            live=live,
            new=self.output(new),
            manager=manager,
            api_version=self.resource.api_version,
            subresource=subresource,
            now=meta.now(),
            status_subresource=self.strategy.status_subresource(),
            typ=self.strategy.field_type(),
        )
        return self.convert.to_storage(tracked) if self.convert else tracked

    def _check_uid(self, new: Obj, old: Obj, name: str) -> None:
        uid = (new.get("metadata") or {}).get("uid")
        old_uid = old["metadata"].get("uid")
        if uid and uid != old_uid:
            raise errors.conflict(
                self.resource.plural,
                self.resource.group,
                name,
                f"Precondition failed: UID in precondition: {uid}, UID in object meta: {old_uid}",
            )

    def _keep_system_metadata(self, new: Obj, old: Obj) -> None:
        """Fields users cannot change through an update."""
        md, old_md = new["metadata"], old["metadata"]
        for field in (
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ):
            if field in old_md:
                md[field] = old_md[field]
            else:
                md.pop(field, None)
        if "generation" in old_md:
            md["generation"] = old_md["generation"]
        else:
            md.pop("generation", None)
        if not self.resource.namespaced:
            md.pop("namespace", None)

    def _validate_update(self, new: Obj, old: Obj) -> builtins.list[errors.FieldError]:
        # Includes upstream's metadata rules (immutable names, no new finalizers
        # once deletion has started).
        return self.strategy.validate_update(new, old)

    # --- delete ---------------------------------------------------------------
    async def delete(
        self, namespace: str, name: str, options: deletion.Options | None = None
    ) -> tuple[Obj, bool]:
        """Delete now, or mark as being deleted (grace period, finalizers).

        Returns (object, gone): the removed object, or the marked one."""
        options = options or deletion.Options()
        key = self.key(namespace, name)
        while True:
            entry = await self.current(namespace, name)
            if entry is None:
                raise self._not_found(name)
            old = entry.whole()
            deletion.check_preconditions(self.resource, old, name, options)
            self.strategy.before_delete(old)
            attrs = self._attributes(
                admission.DELETE, namespace, name, None, old, "", options.dry_run
            )
            if attrs is not None:
                await self._admit(attrs)
                await self._admission_validate(attrs)
            for hook in self.before_write:  # the Service allocator frees what it held
                await hook(self, "delete", old)
            prepared = self.strategy.prepare_for_delete(old)
            if prepared is not None:
                old = prepared
            decision = deletion.plan(
                old,
                options,
                grace=self.strategy.grace_period(old, options.grace_period_seconds),
                now=time.time(),
                other_finalizers=self.strategy.has_other_finalizers(old),
                default_policy=self.strategy.default_gc_policy,
            )
            if not decision.remove:
                new = decision.obj
                if new is None:
                    return await self._out(old), False
                self.strategy.mark_deleting(new)
                if options.dry_run:
                    return await self._out(new), False
                try:
                    rev = await storewrite.write(
                        self.store, self.watch_cache, key, new, entry.revision, old=old
                    )
                except (storage.RevisionMismatchError, storage.KeyNotFoundError):
                    continue
                new["metadata"]["resourceVersion"] = str(rev)
                return await self._out(new), False
            if options.dry_run:
                return await self._out(old), True
            try:
                kv = await storewrite.delete(self.store, key, entry.revision, old=old)
            except storage.RevisionMismatchError:
                continue
            except storage.KeyNotFoundError:
                raise self._not_found(name) from None
            # Read-only like ``old``, so only what changes is copied.
            gone = dict(old)
            gone["metadata"] = {**old["metadata"], "resourceVersion": str(kv.mod_revision)}
            return await self._out(gone), True
