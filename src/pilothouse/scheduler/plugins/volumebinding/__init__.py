"""VolumeBinding: pods with claims go where their volumes can be (upstream's plugin of
that name).

* **PreFilter** refuses pods whose claims are missing, lost, being deleted, not their
  own (ephemeral), or unbound with an Immediate class (the binder has yet to bind
  them), and sorts the rest into bound and WaitForFirstConsumer claims.
* **Filter** answers for every node at once: a bound claim's volume must accept the
  node (its node affinity, as a mask); a WaitForFirstConsumer claim needs a matching
  Available volume the node can reach, or a class that provisions there
  (``allowedTopologies``). Several claims competing for the same volumes are
  checked node by node, exactly.
* **Reserve** works out the bindings for the chosen node and *assumes* them (see
  :mod:`.assume`), so the next pods do not count on the same volumes.
* **PreBind** writes them — a volume's ``claimRef``, or the claim's
  ``volume.kubernetes.io/selected-node`` for its provisioner — and waits until the
  binder reports every claim bound (``bindTimeoutSeconds``, 600 by default).
* **Unreserve** drops the assumptions.

Everything but PreBind runs inside the scheduling loop and never awaits; PreBind
runs in the pod's binding task and wakes on claim and volume events.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from pilothouse.api import errors, meta, pvhelpers, resources
from pilothouse.client import informer
from pilothouse.scheduler import types
from pilothouse.scheduler.framework import interface as fw
from pilothouse.scheduler.framework import runtime
from pilothouse.scheduler.plugins import nodeaffinity
from pilothouse.scheduler.plugins.volumebinding import claims as vclaims
from pilothouse.scheduler.plugins.volumebinding.assume import AssumeCache

NAME = "VolumeBinding"
STATE_KEY = "PreFilter" + NAME
DEFAULT_BIND_TIMEOUT_S = 600.0

PVC = resources.Resource("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", True)
PV = resources.Resource("", "v1", "PersistentVolume", "persistentvolumes", False)
STORAGE_CLASSES = resources.Resource(
    "storage.k8s.io", "v1", "StorageClass", "storageclasses", False
)

Obj = dict[str, Any]


@dataclass
class StateData:
    claims: vclaims.PodVolumeClaims
    # Filter's verdict per node row, for explain.
    node_conflict: fw.Mask | None = None
    bind_conflict: fw.Mask | None = None
    pv_missing: fw.Mask | None = None
    # Reserve's bindings for the chosen node, and what was assumed for them.
    volumes: vclaims.PodVolumes | None = None
    assumed_pvs: list[str] = field(default_factory=list)
    assumed_pvcs: list[str] = field(default_factory=list)


class VolumeBinding(fw.PreFilterPlugin, fw.FilterPlugin, fw.ReservePlugin, fw.PreBindPlugin):
    name = NAME

    def __init__(self, args: dict[str, Any], handle: runtime.Handle) -> None:
        self.handle = handle
        self.bind_timeout = float(args.get("bindTimeoutSeconds") or DEFAULT_BIND_TIMEOUT_S)
        self.claims = AssumeCache()
        self.volumes = AssumeCache()
        self.classes: dict[str, Obj] = {}
        self._waiters: set[asyncio.Event] = set()
        if handle.informers is not None:
            for resource, target in ((PVC, self.claims), (PV, self.volumes)):
                self._feed(handle.informers.informer(resource), target)
            handle.informers.informer(STORAGE_CLASSES).add_handlers(
                on_add=self._class_changed,
                on_update=lambda _old, new: self._class_changed(new),
                on_delete=self._class_deleted,
            )

    def _feed(self, inf: informer.Informer, target: AssumeCache) -> None:
        def added(obj: Obj) -> None:
            target.on_add(obj)
            self._wake()

        def updated(old: Obj, new: Obj) -> None:
            target.on_update(old, new)
            self._wake()

        def deleted(obj: Obj) -> None:
            target.on_delete(obj)
            self._wake()

        inf.add_handlers(on_add=added, on_update=updated, on_delete=deleted)

    def _wake(self) -> None:
        for waiter in self._waiters:
            waiter.set()

    def _class_deleted(self, storage_class: Obj) -> None:
        self.classes.pop(storage_class["metadata"]["name"], None)

    def _class_changed(self, storage_class: Obj) -> None:
        self.classes[storage_class["metadata"]["name"]] = storage_class

    # --- PreFilter --------------------------------------------------------------------
    def pre_filter(
        self, state: fw.CycleState, pod: types.PodInfo
    ) -> tuple[fw.PreFilterResult | None, fw.Status]:
        try:
            if not vclaims.check_pod_claims(pod.pod, self.claims):
                return None, fw.SKIP
        except vclaims.ClaimError as exc:
            return None, fw.unresolvable(str(exc))
        data = StateData(
            vclaims.pod_volume_claims(pod.pod, self.claims, self.volumes, self.classes)
        )
        if data.claims.unbound_immediate:
            return None, fw.unresolvable(vclaims.UNBOUND_IMMEDIATE)
        state.write(STATE_KEY, data)
        return None, fw.SUCCESS

    # --- Filter -----------------------------------------------------------------------
    def _affinity_mask(self, volume: Obj) -> fw.Mask:
        table = self.handle.cache.table
        required = ((volume.get("spec") or {}).get("nodeAffinity") or {}).get("required")
        if required is None:
            return np.ones(table.capacity, dtype=np.bool_)
        key = (NAME, "affinity", orjson.dumps(required, option=orjson.OPT_SORT_KEYS))
        mask: fw.Mask = table.memo(key, lambda: nodeaffinity.selector_mask(table, required))
        return mask

    def _provision_mask(self, claim: Obj) -> fw.Mask:
        table = self.handle.cache.table
        storage_class = vclaims.provisionable_class(claim, self.classes)
        if storage_class is None:
            return np.zeros(table.capacity, dtype=np.bool_)
        selector = vclaims.allowed_topologies_selector(storage_class)
        if selector is None:
            return np.ones(table.capacity, dtype=np.bool_)
        key = (NAME, "topology", orjson.dumps(selector, option=orjson.OPT_SORT_KEYS))
        mask: fw.Mask = table.memo(key, lambda: nodeaffinity.selector_mask(table, selector))
        return mask

    def filter(self, state: fw.CycleState, pod: types.PodInfo) -> fw.Mask | None:
        data: StateData | None = state.read(STATE_KEY)
        if data is None:
            return None
        table = self.handle.cache.table
        capacity = table.capacity
        node_conflict = np.zeros(capacity, dtype=np.bool_)
        pv_missing = np.zeros(capacity, dtype=np.bool_)
        for claim in data.claims.bound:
            volume = self.volumes.get((claim.get("spec") or {}).get("volumeName", ""))
            decided = node_conflict | pv_missing
            if volume is None:
                pv_missing |= ~decided  # upstream stops at the first missing volume
                break
            node_conflict |= ~decided & ~self._affinity_mask(volume)
        try:
            unbound_ok = self._unbound_mask(data)
        except vclaims.ClaimError:
            unbound_ok = np.zeros(capacity, dtype=np.bool_)
        data.node_conflict, data.pv_missing, data.bind_conflict = (
            node_conflict,
            pv_missing,
            ~unbound_ok,
        )
        passed: fw.Mask = ~node_conflict & ~pv_missing & unbound_ok
        return passed

    def _unbound_mask(self, data: StateData) -> fw.Mask:
        table = self.handle.cache.table
        ok = np.ones(table.capacity, dtype=np.bool_)
        to_match: list[tuple[Obj, list[Obj]]] = []
        for claim in data.claims.unbound_delay:
            selected = pvhelpers.annotations_of(claim).get(pvhelpers.ANN_SELECTED_NODE)
            if selected is not None:
                ok &= table.name_mask([selected]) & self._provision_mask(claim)
                continue
            candidates = [
                v
                for v in data.claims.volumes_by_class.get(pvhelpers.claim_class(claim), [])
                if self._may_match(claim, v)
            ]
            reachable = np.zeros(table.capacity, dtype=np.bool_)
            for volume in candidates:
                reachable |= self._affinity_mask(volume)
            ok &= reachable | self._provision_mask(claim)
            to_match.append((claim, candidates))
        if len(to_match) > 1 and _compete(to_match):
            # Claims that could take the same volumes: decide node by node, exactly.
            for row in np.flatnonzero(ok & table.valid).tolist():
                _, reasons = vclaims.find_pod_volumes(
                    data.claims,
                    self.volumes,
                    self.classes,
                    node_name=table.names[row],
                    labels=table.labels[row],
                )
                if vclaims.ERR_REASON_BIND_CONFLICT in reasons:
                    ok[row] = False
        return ok

    @staticmethod
    def _may_match(claim: Obj, volume: Obj) -> bool:
        """Whether ``volume`` could serve ``claim`` on some node (all but node affinity)."""
        return (
            pvhelpers.find_matching_volume(
                claim, [volume], node_labels={}, delay_binding=True, ignore_affinity=True
            )
            is not None
        )

    def explain(self, state: fw.CycleState, pod: types.PodInfo, rows: fw.Rows) -> list[fw.Status]:
        data: StateData | None = state.read(STATE_KEY)
        out = []
        for row in rows.tolist():
            reasons = []
            if data is not None:
                if data.node_conflict is not None and data.node_conflict[row]:
                    reasons.append(vclaims.ERR_REASON_NODE_CONFLICT)
                if data.bind_conflict is not None and data.bind_conflict[row]:
                    reasons.append(vclaims.ERR_REASON_BIND_CONFLICT)
                if data.pv_missing is not None and data.pv_missing[row]:
                    reasons.append(vclaims.ERR_REASON_PV_NOT_EXIST)
            out.append(fw.unresolvable(*(reasons or [vclaims.ERR_REASON_BIND_CONFLICT])))
        return out

    # --- Reserve / Unreserve ----------------------------------------------------------
    def reserve(self, state: fw.CycleState, pod: types.PodInfo, node: str) -> fw.Status:
        data: StateData | None = state.read(STATE_KEY)
        if data is None:
            return fw.SUCCESS
        table = self.handle.cache.table
        row = table.row_of.get(node)
        labels = table.labels[row] if row is not None else {}
        try:
            volumes, reasons = vclaims.find_pod_volumes(
                data.claims, self.volumes, self.classes, node_name=node, labels=labels
            )
        except vclaims.ClaimError as exc:
            return fw.error(str(exc))
        if reasons:
            return fw.unschedulable(*reasons)
        for volume, claim in volumes.static_bindings:
            bound, _ = pvhelpers.bind_volume_to_claim(volume, claim)
            self.volumes.assume(bound)
            data.assumed_pvs.append(bound["metadata"]["name"])
        provisions = []
        for claim in volumes.provisions:
            clone = meta.deep_copy(claim)
            clone["metadata"].setdefault("annotations", {})[pvhelpers.ANN_SELECTED_NODE] = node
            self.claims.assume(clone)
            data.assumed_pvcs.append(pvhelpers.key_of_claim(clone))
            provisions.append(clone)
        volumes.static_bindings = [
            (self.volumes.get(v["metadata"]["name"]) or v, c) for v, c in volumes.static_bindings
        ]
        volumes.provisions = provisions
        data.volumes = volumes
        return fw.SUCCESS

    def unreserve(self, state: fw.CycleState, pod: types.PodInfo, node: str) -> None:
        data: StateData | None = state.read(STATE_KEY)
        if data is None:
            return
        for name in data.assumed_pvs:
            self.volumes.restore(name)
        for key in data.assumed_pvcs:
            self.claims.restore(key)
        data.assumed_pvs, data.assumed_pvcs = [], []

    # --- PreBind ----------------------------------------------------------------------
    async def pre_bind(self, state: fw.CycleState, pod: types.PodInfo, node: str) -> fw.Status:
        data: StateData | None = state.read(STATE_KEY)
        if data is None or data.volumes is None:
            return fw.SUCCESS
        todo = data.volumes
        if not todo.static_bindings and not todo.provisions:
            return fw.SUCCESS
        client = self.handle.client
        if client is None:
            return fw.error("binding volumes: no API client")
        try:
            # Keep what the API answered: the checks compare versions with it.
            for i, (volume, claim) in enumerate(todo.static_bindings):
                written = await client.update(PV, volume)
                self.volumes.assume(written)
                todo.static_bindings[i] = (written, claim)
            for i, claim in enumerate(todo.provisions):
                written = await client.update(PVC, claim)
                self.claims.assume(written)
                todo.provisions[i] = written
            await self._wait_bound(todo, node)
        except errors.StatusError as exc:
            return fw.error(f"binding volumes: {exc.message}")
        except (vclaims.ClaimError, TimeoutError) as exc:
            return fw.error(f"binding volumes: {exc or 'timed out waiting for the condition'}")
        return fw.SUCCESS

    async def _wait_bound(self, todo: vclaims.PodVolumes, node: str) -> None:
        waiter = asyncio.Event()
        self._waiters.add(waiter)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.bind_timeout
        try:
            while not self._check_bindings(todo, node):
                waiter.clear()
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise TimeoutError("timed out waiting for the condition")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(waiter.wait(), min(remaining, 1.0))
        finally:
            self._waiters.discard(waiter)

    def _check_bindings(self, todo: vclaims.PodVolumes, node: str) -> bool:
        """``checkBindings``: True once every claim is bound as planned; raises when the
        plan has failed (the binder undid a binding, a provisioner gave up)."""
        done = True
        for volume, claim in todo.static_bindings:
            name = volume["metadata"]["name"]
            current = self.volumes.get_api(name)
            if current is None:
                raise vclaims.ClaimError(f'failed to check binding: pv "{name}" not found')
            if _rv(current) < _rv(volume):
                done = False  # our write has not come back yet
                continue
            ref = (current.get("spec") or {}).get("claimRef")
            if not ref:
                raise vclaims.ClaimError(f'pv "{name}" claimRef was removed')
            if not ref.get("uid"):
                raise vclaims.ClaimError(f'ClaimRef got reset for pv "{name}"')
            latest = self.claims.get_api(pvhelpers.key_of_claim(claim))
            if latest is None or not vclaims.is_fully_bound(latest):
                done = False
        for claim in todo.provisions:
            key = pvhelpers.key_of_claim(claim)
            latest = self.claims.get_api(key)
            if latest is None:
                raise vclaims.ClaimError(f'failed to check binding: pvc "{key}" not found')
            if _rv(latest) < _rv(claim):
                done = False
                continue
            selected = pvhelpers.annotations_of(latest).get(pvhelpers.ANN_SELECTED_NODE)
            if selected is None:
                raise vclaims.ClaimError(f'selectedNode annotation reset for PVC "{key}"')
            if selected != node:
                raise vclaims.ClaimError(f'provisioning failed for PVC "{key}"')
            volume_name = (latest.get("spec") or {}).get("volumeName")
            if volume_name:
                made = self.volumes.get_api(volume_name)
                if made is None:
                    done = False
                    continue
                table = self.handle.cache.table
                row = table.row_of.get(node)
                labels = table.labels[row] if row is not None else {}
                why = pvhelpers.check_node_affinity(made, labels, node)
                if why:
                    raise vclaims.ClaimError(
                        f'pv "{volume_name}" node affinity doesn\'t match node "{node}": {why}'
                    )
            if not vclaims.is_fully_bound(latest):
                done = False
        return done

    def events_to_register(self) -> list[fw.ClusterEvent]:
        add_update = fw.ActionType.ADD | fw.ActionType.UPDATE
        return [
            fw.ClusterEvent(fw.STORAGE_CLASS, add_update),
            fw.ClusterEvent(fw.PERSISTENT_VOLUME_CLAIM, add_update),
            fw.ClusterEvent(fw.PERSISTENT_VOLUME, add_update),
            fw.ClusterEvent(
                fw.NODE,
                fw.ActionType.ADD
                | fw.ActionType.UPDATE_NODE_LABEL
                | fw.ActionType.UPDATE_NODE_TAINT,
            ),
        ]


def _rv(obj: Obj) -> int:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


def _compete(to_match: list[tuple[Obj, list[Obj]]]) -> bool:
    seen: set[str] = set()
    for _claim, candidates in to_match:
        names = {v["metadata"]["name"] for v in candidates}
        if names & seen:
            return True
        seen |= names
    return False


def new(args: dict[str, Any], handle: runtime.Handle) -> VolumeBinding:
    return VolumeBinding(args, handle)
