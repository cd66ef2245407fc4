"""Adopting and releasing a controller's objects (upstream's ``ControllerRefManager``).

An owner *claims* objects in its namespace: those it controls and its selector (and
any extra filters) still match stay its own; those it controls but no longer matches
are released (its reference is removed); orphans it matches are adopted (a controller
reference to it is added). Nothing is adopted while the owner is being deleted, and
before the first adoption the owner is read fresh from the API — the cache may not
show a deletion yet (``RecheckDeletionTimestamp``).

Adoption and release are strategic merge patches carrying the object's uid, so a
deleted-and-recreated object of the same name is never touched. One manager serves
one sync of one owner; it is not shared between tasks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from pilothouse.api import errors, selectors
from pilothouse.api.meta import Obj
from pilothouse.api.resources import Resource
from pilothouse.client import rest
from pilothouse.controllers import podcontrol

Filter = Callable[[Obj], bool]


def recheck_deletion(
    client: rest.Client, resource: Resource, owner: Obj
) -> Callable[[], Awaitable[None]]:
    """A check that ``owner`` still exists, is the same object and is not being
    deleted, read from the API rather than a cache; raises otherwise."""
    md = owner["metadata"]

    async def check() -> None:
        fresh = await client.get(resource, md["name"], md.get("namespace", ""))
        if fresh["metadata"].get("uid") != md.get("uid"):
            raise RuntimeError(
                f"original {owner['kind']} {md.get('namespace')}/{md['name']} is gone: "
                f"got uid {fresh['metadata'].get('uid')}, wanted {md.get('uid')}"
            )
        if fresh["metadata"].get("deletionTimestamp"):
            raise RuntimeError(
                f"{md.get('namespace')}/{md['name']} has just been deleted at "
                f"{fresh['metadata']['deletionTimestamp']}"
            )

    return check


class ControllerRefManager:
    """Claims objects of ``resource`` for ``owner`` (see the module docstring)."""

    def __init__(
        self,
        client: rest.Client,
        resource: Resource,
        owner: Obj,
        selector: selectors.LabelSelector,
        *,
        can_adopt: Callable[[], Awaitable[None]],
    ) -> None:
        self.client = client
        self.resource = resource
        self.owner = owner
        self.selector = selector
        self._can_adopt = can_adopt
        self._adopt_error: BaseException | None = None
        self._checked = False

    @property
    def owner_uid(self) -> str:
        return str(self.owner["metadata"].get("uid", ""))

    def _deleting(self) -> bool:
        return bool(self.owner["metadata"].get("deletionTimestamp"))

    async def claim(self, objs: Iterable[Obj], *, filters: Iterable[Filter] = ()) -> list[Obj]:
        """The objects the owner controls after adopting and releasing; the first
        error (after trying every object) is raised."""
        checks = tuple(filters)

        def match(obj: Obj) -> bool:
            labels = (obj.get("metadata") or {}).get("labels") or {}
            return self.selector.matches(labels) and all(f(obj) for f in checks)

        claimed: list[Obj] = []
        failures: list[BaseException] = []
        for obj in objs:
            try:
                taken = await self._claim_one(obj, match)
            except errors.StatusError as exc:
                failures.append(exc)
                continue
            except RuntimeError as exc:  # the owner cannot adopt (recheck failed)
                failures.append(exc)
                continue
            if taken is not None:
                claimed.append(taken)
        if failures:
            raise failures[0]
        return claimed

    async def _claim_one(self, obj: Obj, match: Filter) -> Obj | None:
        md = obj["metadata"]
        ref = podcontrol.get_controller_of(obj)
        if ref is not None:
            if ref.get("uid") != self.owner_uid:
                return None  # someone else's
            if match(obj):
                return obj
            if self._deleting():
                return None
            await self._release(obj)
            return None
        if self._deleting() or not match(obj) or md.get("deletionTimestamp"):
            return None
        if md.get("namespace", "") != self.owner["metadata"].get("namespace", ""):
            return None
        return await self._adopt(obj)

    async def _check_can_adopt(self) -> None:
        if not self._checked:
            self._checked = True
            try:
                await self._can_adopt()
            except (errors.StatusError, RuntimeError) as exc:
                self._adopt_error = exc
        if self._adopt_error is not None:
            raise self._adopt_error

    async def _adopt(self, obj: Obj) -> Obj | None:
        await self._check_can_adopt()
        md = obj["metadata"]
        body = {
            "metadata": {
                "ownerReferences": [podcontrol.controller_ref(self.owner)],
                "uid": md["uid"],
            }
        }
        try:
            adopted: Obj = await self.client.patch(
                self.resource,
                md["name"],
                body,
                md.get("namespace", ""),
                patch_type=rest.STRATEGIC_PATCH,
            )
        except errors.StatusError as exc:
            if errors.is_not_found(exc):
                return None
            raise
        return adopted

    async def _release(self, obj: Obj) -> None:
        md = obj["metadata"]
        body = {
            "metadata": {
                "ownerReferences": [{"$patch": "delete", "uid": self.owner_uid}],
                "uid": md["uid"],
            }
        }
        try:
            await self.client.patch(
                self.resource,
                md["name"],
                body,
                md.get("namespace", ""),
                patch_type=rest.STRATEGIC_PATCH,
            )
        except errors.StatusError as exc:
            # Gone, or no longer ours (someone else released it): nothing to do.
            if errors.is_not_found(exc) or errors.is_invalid(exc):
                return
            raise
