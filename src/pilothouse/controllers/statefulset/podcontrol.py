"""Creating, updating and deleting a StatefulSet's pods and claims (upstream's
``stateful_pod_control.go``).

A pod's claims are created before the pod; a claim that is being deleted blocks the
pod. Claim owner references follow ``persistentVolumeClaimRetentionPolicy`` (see
:func:`.utils.is_claim_owner_up_to_date`). Every action is recorded as an Event on the
StatefulSet with upstream's reasons and wording (``SuccessfulCreate``, ``create Pod
web-0 in StatefulSet web successful``). Claims and pods are read from the informers'
caches. Called from one StatefulSet's sync; Parallel sets call it for several pods
at once, which is safe because each call touches only its own pod and claims.
"""

from __future__ import annotations

from pilothouse.api import errors, meta
from pilothouse.api.meta import Obj
from pilothouse.api.resources import Resource
from pilothouse.client import events, lister, rest
from pilothouse.controllers.statefulset import utils

MAX_UPDATE_RETRIES = 5


class StatefulPodControl:
    def __init__(
        self,
        client: rest.Client,
        *,
        pods: Resource,
        claims: Resource,
        pod_lister: lister.Indexer,
        claim_lister: lister.Indexer,
        recorder: events.EventRecorder,
    ) -> None:
        self.client = client
        self.pods = pods
        self.claims = claims
        self.pod_lister = pod_lister
        self.claim_lister = claim_lister
        self.recorder = recorder

    # --- pods -------------------------------------------------------------------------
    async def create_pod(self, sts: Obj, pod: Obj) -> None:
        """Create the pod's claims, then the pod; AlreadyExists is raised, not recorded."""
        try:
            await self._create_claims(sts, pod)
        except errors.StatusError as exc:
            self._pod_event("create", sts, pod, exc)
            raise
        except VolumeClaimError as exc:
            self._pod_event("create", sts, pod, exc)
            raise
        try:
            created = await self.client.create(self.pods, pod, utils.namespace(sts))
        except errors.StatusError as exc:
            if errors.is_already_exists(exc):
                raise
            self._pod_event("create", sts, pod, exc)
            raise
        try:
            # Set the claims' owners as far as possible now that the pod has a uid.
            await self.update_claims_for_retention(sts, created)
        except (errors.StatusError, VolumeClaimError) as exc:
            self._pod_event("update", sts, pod, exc)
            raise
        self._pod_event("create", sts, pod, None)

    async def update_pod(self, sts: Obj, pod: Obj) -> None:
        """Bring the pod's identity, storage and claim owners in line with ``sts``
        (``UpdateStatefulPod``), retrying on conflicts."""
        attempted = False
        error: BaseException | None = None
        current = meta.deep_copy(pod)
        for attempt in range(MAX_UPDATE_RETRIES + 1):
            consistent = True
            if not utils.identity_matches(sts, current):
                utils.update_identity(sts, current)
                consistent = False
            try:
                if not utils.storage_matches(sts, current):
                    utils.update_storage(sts, current)
                    consistent = False
                    await self._create_claims(sts, current)
                if not await self.claims_match_retention(sts, current):
                    await self.update_claims_for_retention(sts, current)
                    consistent = False
            except (errors.StatusError, VolumeClaimError) as exc:
                self._pod_event("update", sts, current, exc)
                raise
            if consistent:
                return
            attempted = True
            try:
                await self.client.update(self.pods, current)
                error = None
                break
            except errors.StatusError as exc:
                error = exc
                if not errors.is_conflict(exc) or attempt == MAX_UPDATE_RETRIES:
                    break
            fresh = self.pod_lister.get_by(utils.namespace(sts), utils.name(current))
            if fresh is not None:
                current = meta.deep_copy(fresh)
        if attempted:
            self._pod_event("update", sts, current, error)
        if error is not None:
            raise error

    async def delete_pod(self, sts: Obj, pod: Obj) -> None:
        md = pod["metadata"]
        try:
            await self.client.delete(self.pods, md["name"], utils.namespace(sts))
        except errors.StatusError as exc:
            self._pod_event("delete", sts, pod, exc)
            raise
        self._pod_event("delete", sts, pod, None)

    # --- claims -----------------------------------------------------------------------
    def _claim(self, sts: Obj, claim_name: str) -> Obj | None:
        return self.claim_lister.get_by(utils.namespace(sts), claim_name)

    async def _create_claims(self, sts: Obj, pod: Obj) -> None:
        """Create the pod's missing claims (``createPersistentVolumeClaims``)."""
        problems: list[str] = []
        for claim in utils.claims_for(sts, pod).values():
            claim_name = claim["metadata"]["name"]
            existing = self._claim(sts, claim_name)
            if existing is None:
                try:
                    await self.client.create(self.claims, claim, utils.namespace(sts))
                except errors.StatusError as exc:
                    problems.append(f"failed to create PVC {claim_name}: {exc.message}")
                    if not errors.is_already_exists(exc):
                        self._claim_event("create", sts, pod, claim_name, exc)
                    continue
                self._claim_event("create", sts, pod, claim_name, None)
            elif existing["metadata"].get("deletionTimestamp"):
                problems.append(f"pvc {claim_name} is being deleted")
        if problems:
            raise VolumeClaimError(
                "[" + ", ".join(problems) + "]" if len(problems) > 1 else problems[0]
            )

    async def create_missing_claims(self, sts: Obj, pod: Obj) -> None:
        """For a pending pod: create claims that went missing and set their owners."""
        await self._create_claims(sts, pod)
        try:
            await self.update_claims_for_retention(sts, pod)
        except (errors.StatusError, VolumeClaimError) as exc:
            self._pod_event("update", sts, pod, exc)
            raise

    async def claims_match_retention(self, sts: Obj, pod: Obj) -> bool:
        ordinal = utils.ordinal_of(pod)
        for template in utils.claim_templates(sts):
            claim = self._claim(sts, utils.claim_name(sts, template, ordinal))
            if claim is not None and not utils.is_claim_owner_up_to_date(claim, sts, pod):
                return False
        return True

    async def update_claims_for_retention(self, sts: Obj, pod: Obj) -> None:
        """Set the owner references of the pod's claims as the retention policy asks."""
        ordinal = utils.ordinal_of(pod)
        for template in utils.claim_templates(sts):
            claim_name = utils.claim_name(sts, template, ordinal)
            claim = self._claim(sts, claim_name)
            if claim is None:
                continue  # picked up by a later sync
            if utils.has_unexpected_controller(claim, sts, pod):
                self.recorder.event(
                    sts,
                    events.WARNING,
                    "ConflictingController",
                    f"PersistentVolumeClaim {claim_name} has a conflicting OwnerReference that "
                    "acts as a manging controller, the retention policy is ignored for this claim",
                )
            if utils.is_claim_owner_up_to_date(claim, sts, pod):
                continue
            updated = meta.deep_copy(claim)
            utils.update_claim_owner_refs(updated, sts, pod)
            try:
                await self.client.update(self.claims, updated)
            except errors.StatusError as exc:
                raise VolumeClaimError(
                    f"could not update claim {claim_name} for delete policy ownerRefs: "
                    f"{exc.message}"
                ) from exc

    def claim_is_stale(self, sts: Obj, pod: Obj) -> bool:
        """A claim left owned by an earlier pod of this ordinal blocks the new pod while
        whenScaled is Delete (the garbage collector is about to remove it)."""
        if utils.retention_policy(sts)[1] == utils.RETAIN:
            return False
        for claim in utils.claims_for(sts, pod).values():
            existing = self._claim(sts, claim["metadata"]["name"])
            if existing is not None and utils.has_stale_owner_ref(existing, pod, "v1", "Pod"):
                return True
        return False

    # --- events -----------------------------------------------------------------------
    def _pod_event(self, verb: str, sts: Obj, pod: Obj, err: BaseException | None) -> None:
        pod_name = pod["metadata"].get("name", "")
        if err is None:
            self.recorder.event(
                sts,
                events.NORMAL,
                f"Successful{verb.title()}",
                f"{verb} Pod {pod_name} in StatefulSet {utils.name(sts)} successful",
            )
        else:
            self.recorder.event(
                sts,
                events.WARNING,
                f"Failed{verb.title()}",
                f"{verb} Pod {pod_name} in StatefulSet {utils.name(sts)} failed error: "
                f"{_describe(err)}",
            )

    def _claim_event(
        self, verb: str, sts: Obj, pod: Obj, claim_name: str, err: BaseException | None
    ) -> None:
        pod_name = pod["metadata"].get("name", "")
        if err is None:
            self.recorder.event(
                sts,
                events.NORMAL,
                f"Successful{verb.title()}",
                f"{verb} Claim {claim_name} Pod {pod_name} in StatefulSet {utils.name(sts)} success",
            )
        else:
            self.recorder.event(
                sts,
                events.WARNING,
                f"Failed{verb.title()}",
                f"{verb} Claim {claim_name} for Pod {pod_name} in StatefulSet {utils.name(sts)} "
                f"failed error: {_describe(err)}",
            )


class VolumeClaimError(Exception):
    """A pod's claims are not as they must be yet (missing, being deleted, unwritable)."""


def _describe(err: BaseException) -> str:
    if isinstance(err, errors.StatusError):
        return err.message
    return str(err)
