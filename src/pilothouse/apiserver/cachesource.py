"""The watch cache as the informers' source for the components in the server's process.

The all-in-one server's controller manager and scheduler read through one informer
factory (:mod:`pilothouse.cli.allinone`). Over HTTP every object would be held twice
in the process — the watch cache's decoded object and the informer's copy, decoded
again from a watch on the private socket. Given a :class:`CacheSource`, an informer
lists the resource cache and follows its events instead
(:class:`pilothouse.client.informer.ListWatch`): the list is the cache's objects at
its current revision, the watch a :class:`~pilothouse.apiserver.resourcecache.Watcher`
registered after that revision, so an event is neither skipped nor repeated, with
the label and field selectors and the namespace an HTTP watch would apply. The
objects are the cache's own, shared and read-only, without ``managedFields`` (the
cache keeps them apart). A metadata-only informer (the garbage collector's) is handed
the whole objects too: its consumers read their metadata, and a shared object costs
nothing where a PartialObjectMetadata would be a copy.

Authorization: over HTTP every list and watch of the factory's identity passes RBAC;
reading the cache does not pass through a request. So the source serves a resource
only if the authorizer allows that identity both ``list`` and ``watch`` on it (in the
informer's namespace, cluster-wide for most), asked once each time an informer starts
— what a SubjectAccessReview would answer. A refused resource, and one served in a
version other than its stored shape (converted: ``events.k8s.io`` Events, autoscaling
``v1``, custom resources), is declined: that informer lists and watches over HTTP as
before, with whatever answer the API gives it.

Everything runs on the server's event loop: the cache's feeder fills a watcher's
backlog synchronously, and the informer's task drains it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping

from pilothouse.api import errors, resources
from pilothouse.api.meta import Obj
from pilothouse.apiserver import cacheentry
from pilothouse.apiserver.authn import user as user_module
from pilothouse.apiserver.authz import attributes
from pilothouse.apiserver.authz import authorizer as authz
from pilothouse.apiserver.handlers import rest
from pilothouse.apiserver.registry.store import ResourceStore

log = logging.getLogger(__name__)

# How many events an informer applies before the event loop runs others.
WATCH_SLICE = 200


class CacheListWatch:
    """One resource's list and watch on the watch cache (with a namespace and selectors)."""

    def __init__(self, store: ResourceStore, prefix: str, match: cacheentry.Filter | None) -> None:
        self.store = store
        self.prefix = prefix
        self.match = match

    async def listing(self) -> tuple[list[Obj], str]:
        cache = self.store.watch_cache
        # As a LIST without a resourceVersion: everything acknowledged is in it.
        await cache.consistent(linearizable=True)
        # No await from here: the objects are the contents at exactly this revision.
        revision = cache.revision
        match = self.match
        items = [
            e.obj for e in self.store.cache.snapshot(self.prefix) if match is None or match(e.obj)
        ]
        return items, str(revision)

    async def watch(self, resource_version: str) -> AsyncIterator[list[tuple[str, Obj]]]:
        cache = self.store.watch_cache
        rv = int(resource_version)
        if rv > cache.revision:
            await cache.wait_for(rv)
        resource_cache = self.store.cache
        watcher = resource_cache.watch(self.prefix, self.match, rv)
        if watcher is None:
            # Older than the cache's window: list again (no store-log replay here, which
            # would decode copies of the objects).
            raise errors.too_old_resource_version(rv, resource_cache.floor)
        try:
            while True:
                batch = await watcher.next_batch(None)
                if batch:
                    # In slices, letting the loop run between them: a backlog is every
                    # event since the informer last ran, and its handlers run inline.
                    for i in range(0, len(batch), WATCH_SLICE):
                        if i:
                            await asyncio.sleep(0)
                        yield [(kind, entry.obj) for kind, entry in batch[i : i + WATCH_SLICE]]
                elif watcher.closed:
                    # The cache rebuilt itself or the informer fell too far behind: the
                    # informer resumes from the last version it got.
                    return
        finally:
            resource_cache.unwatch(watcher)
            watcher.close()
            watcher.backlog.clear()


class CacheSource:
    """The watch cache's resources, for the informers of one identity (see the module).

    ``stores`` are the server's built-in resource stores; ``authorizer`` None means the
    server authorizes nothing (every request is allowed), so neither does the source.
    """

    def __init__(
        self,
        *,
        registry: resources.Registry,
        stores: Mapping[resources.Resource, ResourceStore],
        authorizer: authz.Authorizer | None,
        user: user_module.UserInfo,
    ) -> None:
        self.registry = registry
        self.stores = stores
        self.authorizer = authorizer
        # As the authenticator would present the component's token.
        self.user = user_module.with_authenticated(user)

    def list_watch(
        self,
        resource: resources.Resource,
        *,
        namespace: str,
        label_selector: str,
        field_selector: str,
    ) -> CacheListWatch | None:
        served = self.registry.by_path(resource.group, resource.version, resource.plural)
        store = self.stores.get(served) if served is not None else None
        if store is None or store.convert is not None or store.remote is not None:
            return None
        if not self.allowed(resource, namespace):
            log.info(
                "%s may not list and watch %s: its informer reads through the API",
                self.user.name,
                resource.qualified,
            )
            return None
        try:
            match = rest.build_filter(store, label_selector, field_selector)
        except errors.StatusError:
            return None  # the API answers a bad selector the way it always has
        return CacheListWatch(store, store.resource.prefix(namespace), match)

    def allowed(self, resource: resources.Resource, namespace: str) -> bool:
        """Whether the identity may list and watch ``resource`` in ``namespace`` (every
        namespace if "") — as a SubjectAccessReview would answer."""
        if self.authorizer is None:
            return True
        return all(
            self.authorizer.allowed(
                attributes.resource(
                    self.user,
                    verb=verb,
                    group=resource.group,
                    resource=resource.plural,
                    namespace=namespace,
                    version=resource.version,
                )
            )
            for verb in ("list", "watch")
        )
