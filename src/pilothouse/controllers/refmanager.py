"""Adopting and releasing a controller's objects (upstream's ``ControllerRefManager``).

A controller *claims* objects in its namespace: those it controls and its selector (and
any extra filters) still match stay its own; those it controls but no longer matches
are released (its reference is removed); orphans it matches are adopted (a controller
reference to it is added). Nothing is adopted or released while the controller is
being deleted, and before the first adoption the controller is read fresh from the API —
the cache may not show a deletion yet (``RecheckDeletionTimestamp``).

Adoption and release are strategic merge patches carrying the object's uid, so a
deleted-and-recreated object of the same name is never touched. A claim that could not
adopt or release raises :class:`ClaimError` after every object was tried, so the
caller's sync fails and is retried instead of acting on a partial claim. One manager
serves one sync of one controller; it is not shared between tasks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from pilothouse.api import errors, resources, selectors
from pilothouse.api.meta import Obj
from pilothouse.client import rest
from pilothouse.controllers import podcontrol

Fetch = Callable[[], Awaitable[Obj]]
Filter = Callable[[Obj], bool]


class CannotAdopt(Exception):
    """The controller may not adopt now (it is being deleted, or is gone)."""


class ClaimError(Exception):
    """Some adoptions or releases failed; the claim must be tried again."""

    def __init__(self, failures: list[BaseException]) -> None:
        self.failures = failures
        text = "; ".join(str(f) for f in failures[:5])
        more = f" (and {len(failures) - 5} more)" if len(failures) > 5 else ""
        super().__init__(f"{text}{more}")


def recheck_deletion(client: rest.Client, resource: resources.Resource, controller: Obj) -> Fetch:
    """The controller as the API has it now; :class:`CannotAdopt` when it is gone,
    replaced by another of the same name, or being deleted."""
    md = controller["metadata"]

    async def fetch() -> Obj:
        fresh = await client.get(resource, md["name"], md.get("namespace", ""))
        fmd = fresh["metadata"]
        if fmd.get("uid") != md.get("uid"):
            raise CannotAdopt(
                f"original {controller.get('kind')} {md.get('namespace')}/{md['name']} is gone: "
                f"got uid {fmd.get('uid')}, wanted {md.get('uid')}"
            )
        if fmd.get("deletionTimestamp"):
            raise CannotAdopt(
                f"{md.get('namespace')}/{md['name']} has just been deleted at "
                f"{fmd['deletionTimestamp']}"
            )
        return fresh

    return fetch


class ControllerRefManager:
    """Claims objects of ``resource`` for ``controller`` (see the module docstring)."""

    def __init__(
        self,
        client: rest.Client,
        *,
        controller: Obj,
        selector: selectors.LabelSelector,
        resource: resources.Resource,
        recheck: Fetch,
    ) -> None:
        self.client = client
        self.controller = controller
        self.selector = selector
        self.resource = resource
        self._recheck = recheck
        self._rechecked = False
        self._refusal: CannotAdopt | None = None
        md = controller["metadata"]
        self._uid = md["uid"]
        self._namespace = md.get("namespace", "")
        self._deleting = bool(md.get("deletionTimestamp"))

    async def claim(self, objects: Iterable[Obj], *filters: Filter) -> list[Obj]:
        """The objects the controller owns once the claim is done (an adopted object as
        the API returned it). Raises :class:`ClaimError` if an adoption or release
        failed, after trying every object."""
        claimed: list[Obj] = []
        failures: list[BaseException] = []
        for obj in objects:
            try:
                mine = await self._claim_one(obj, filters)
            except (errors.StatusError, CannotAdopt) as exc:
                failures.append(exc)
                continue
            if mine is not None:
                claimed.append(mine)
        if failures:
            raise ClaimError(failures)
        return claimed

    def _matches(self, obj: Obj, filters: tuple[Filter, ...]) -> bool:
        if not self.selector.matches((obj.get("metadata") or {}).get("labels") or {}):
            return False
        return all(f(obj) for f in filters)

    async def _claim_one(self, obj: Obj, filters: tuple[Filter, ...]) -> Obj | None:
        md = obj["metadata"]
        ref = podcontrol.get_controller_of(obj)
        if ref is not None:
            if ref.get("uid") != self._uid:
                return None  # someone else's
            if self._matches(obj, filters):
                return obj  # ours and still selected (even while we are being deleted)
            if self._deleting:
                return None
            await self.release(obj)
            return None
        if self._deleting or not self._matches(obj, filters) or md.get("deletionTimestamp"):
            return None
        if self._namespace and md.get("namespace", "") != self._namespace:
            return None
        try:
            return await self.adopt(obj)
        except errors.StatusError as exc:
            if errors.is_not_found(exc):
                return None  # gone meanwhile
            raise

    async def can_adopt(self) -> None:
        """Raise :class:`CannotAdopt` unless the controller, read afresh, may adopt
        (asked once per manager)."""
        if not self._rechecked:
            self._rechecked = True
            try:
                await self._recheck()
            except CannotAdopt as exc:
                self._refusal = exc
            except errors.StatusError as exc:
                self._refusal = CannotAdopt(f"can't recheck DeletionTimestamp: {exc}")
        if self._refusal is not None:
            raise self._refusal

    async def adopt(self, obj: Obj) -> Obj:
        md = obj["metadata"]
        try:
            await self.can_adopt()
        except CannotAdopt as exc:
            raise CannotAdopt(
                f"can't adopt {self.resource.kind} {md.get('namespace')}/{md['name']} "
                f"({md.get('uid')}): {exc}"
            ) from None
        patch = {
            "metadata": {
                "ownerReferences": [podcontrol.controller_ref(self.controller)],
                "uid": md["uid"],
            }
        }
        adopted: Obj = await self.client.patch(
            self.resource,
            md["name"],
            patch,
            md.get("namespace", ""),
            patch_type=rest.STRATEGIC_PATCH,
        )
        return adopted

    async def release(self, obj: Obj) -> None:
        md = obj["metadata"]
        patch = {
            "metadata": {
                "ownerReferences": [{"$patch": "delete", "uid": self._uid}],
                "uid": md["uid"],
            }
        }
        try:
            await self.client.patch(
                self.resource,
                md["name"],
                patch,
                md.get("namespace", ""),
                patch_type=rest.STRATEGIC_PATCH,
            )
        except errors.StatusError as exc:
            # Gone, or no longer ours (someone else released it): nothing to do.
            if errors.is_not_found(exc) or errors.is_invalid(exc):
                return
            raise
