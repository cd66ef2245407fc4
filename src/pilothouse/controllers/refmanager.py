"""Claiming what a controller owns: upstream's ControllerRefManager, once for every controller.

A controller *claims* the objects of its namespace: it keeps those it controls
whose labels its selector still matches, adopts matching orphans, and releases
those it controls but no longer matches. Objects controlled by someone else are
left alone; a controller being deleted adopts and releases nothing (claiming
what it already owns needs no write, so that still happens).

Before its first adoption, a manager re-reads its controller from the API,
*uncached* (upstream's RecheckDeletionTimestamp): the informer may not show yet
that the controller was deleted — or deleted and created again under the same
name — and adopting then would hand the garbage collector objects it must not
take. The answer is kept for the rest of the claim.

Adoption and release are strategic-merge patches of ``metadata.ownerReferences``
(merge key ``uid``) that also carry the object's ``uid``: a patch can only land
on the very object the cache showed, never on a new one of the same name (the
API rejects the uid change as Invalid). The API rejects a second controller
reference too (Invalid), so two controllers racing for an orphan cannot both
win. A claim that could not adopt or release raises :class:`ClaimError` after
every object was tried, and the caller's sync fails and is retried, as
upstream's ClaimPods returns its aggregate error: acting on a partial claim
(creating pods for an adoption that failed) is what this prevents.

One manager serves one sync of one controller; it is not shared between tasks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from pilothouse.api import errors, resources, selectors
from pilothouse.client import rest
from pilothouse.controllers import podcontrol

Obj = dict[str, Any]
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
    """Upstream's RecheckDeletionTimestamp: the controller as the API has it now, and
    :class:`CannotAdopt` when it is gone, replaced or being deleted."""
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
        finalizers: tuple[str, ...] = (),
    ) -> None:
        self.client = client
        self.finalizers = finalizers  # added with the reference on adoption (the Job's)
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
            except (errors.StatusError, rest.TransportError, CannotAdopt) as exc:
                failures.append(exc)
                continue
            if mine is not None:
                claimed.append(mine)
        if failures:
            raise ClaimError(failures)
        return claimed

    def _matches(self, obj: Obj, filters: tuple[Filter, ...]) -> bool:
        # The selector first, so filters only run on objects that could match.
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
        # An orphan.
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
            except (errors.StatusError, rest.TransportError) as exc:
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
        patch: Obj = {
            "metadata": {
                "ownerReferences": [podcontrol.controller_ref(self.controller)],
                "uid": md["uid"],
            }
        }
        if self.finalizers:
            patch["metadata"]["finalizers"] = list(self.finalizers)  # merged, as upstream's
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
            # Gone; or a new object of that name (its uid differs: upstream answers 422
            # Invalid, this server's update loop 409 Conflict — the patch names no
            # resourceVersion, so a conflict can only be that); or no reference left to
            # remove: nothing of ours to release.
            if not (errors.is_not_found(exc) or errors.is_invalid(exc) or errors.is_conflict(exc)):
                raise
