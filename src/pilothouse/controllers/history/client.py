"""An owner's ControllerRevisions through the API (upstream's ``history.Interface``).

Reads come from the shared ControllerRevision informer; writes go to the API. Each
call acts for one sync of one owner: the StatefulSet and DaemonSet controllers sync
an owner in one worker at a time, so no two calls race for the same owner's history.
"""

from __future__ import annotations

from pilothouse.api import errors, selectors
from pilothouse.api.meta import Obj
from pilothouse.api.resources import Resource
from pilothouse.client import informer, rest
from pilothouse.controllers import podcontrol, refmanager
from pilothouse.controllers.history import revisions

MAX_UPDATE_RETRIES = 5


class History:
    """Create, renumber, delete, adopt and release one namespace's revisions."""

    def __init__(
        self, client: rest.Client, resource: Resource, revisions_informer: informer.Informer
    ) -> None:
        self.client = client
        self.resource = resource
        self.informer = revisions_informer

    def list_for(self, owner: Obj, selector: selectors.LabelSelector) -> list[Obj]:
        """Revisions matching ``selector`` that ``owner`` controls or nobody does
        (``ListControllerRevisions``)."""
        uid = owner["metadata"].get("uid")
        out = []
        for rev in self.informer.indexer.list_namespace(owner["metadata"].get("namespace", "")):
            if not selector.matches(rev["metadata"].get("labels") or {}):
                continue
            ref = podcontrol.get_controller_of(rev)
            if ref is None or ref.get("uid") == uid:
                out.append(rev)
        return out

    async def claim_all(self, owner: Obj, manager: refmanager.ControllerRefManager) -> list[Obj]:
        """Every revision of the namespace claimed through ``manager``: adopted when
        orphaned and matching, released when owned and no longer matching
        (``ClaimControllerRevisions``, as DaemonSets list their history)."""
        namespace = owner["metadata"].get("namespace", "")
        return await manager.claim(self.informer.indexer.list_namespace(namespace))

    async def create(self, owner: Obj, revision: Obj, collision_count: int) -> tuple[Obj, int]:
        """Create ``revision`` for ``owner``; on a name taken by other data, count a
        collision and rename (``CreateControllerRevision``). Returns the revision (the
        existing one when it already holds the same data) and the collision count."""
        count = collision_count
        candidate = revision
        namespace = owner["metadata"].get("namespace", "")
        while True:
            try:
                created: Obj = await self.client.create(self.resource, candidate, namespace)
                return created, count
            except errors.StatusError as exc:
                if not errors.is_already_exists(exc):
                    raise
            name = candidate["metadata"]["name"]
            existing = await self.client.get(self.resource, name, namespace)
            if revisions.data_bytes(existing) == revisions.data_bytes(candidate):
                return existing, count
            count += 1
            candidate = revisions.rename_for_collisions(revision, owner["metadata"]["name"], count)

    async def update_revision(self, revision: Obj, new_revision: int) -> Obj:
        """Give ``revision`` the number ``new_revision``, retrying on conflicts."""
        current = revision
        for attempt in range(MAX_UPDATE_RETRIES + 1):
            if revisions.number(current) == new_revision:
                return current
            updated = dict(current)
            updated["revision"] = new_revision
            try:
                result: Obj = await self.client.update(self.resource, updated)
                return result
            except errors.StatusError as exc:
                if not errors.is_conflict(exc) or attempt == MAX_UPDATE_RETRIES:
                    raise
            md = current["metadata"]
            current = await self.client.get(self.resource, md["name"], md.get("namespace", ""))
        raise AssertionError("unreachable")  # pragma: no cover

    async def delete(self, revision: Obj) -> None:
        md = revision["metadata"]
        try:
            await self.client.delete(
                self.resource, md["name"], md.get("namespace", ""), uid=md.get("uid", "")
            )
        except errors.StatusError as exc:
            if not errors.is_not_found(exc):
                raise

    async def adopt(self, owner: Obj, revision: Obj) -> Obj:
        """Make ``owner`` the controller of an orphaned revision (``AdoptControllerRevision``)."""
        ref = podcontrol.get_controller_of(revision)
        if ref is not None:
            raise RuntimeError(f"attempt to adopt revision owned by {ref}")
        md = revision["metadata"]
        body = {
            "metadata": {
                "ownerReferences": [podcontrol.controller_ref(owner)],
                "uid": md["uid"],
            }
        }
        adopted: Obj = await self.client.patch(
            self.resource,
            md["name"],
            body,
            md.get("namespace", ""),
            patch_type=rest.STRATEGIC_PATCH,
        )
        return adopted
