"""The DaemonSet controller: handlers and ``sync(key)`` (upstream's ``daemon_controller.go``).

Handlers only enqueue DaemonSet keys: a set's own changes; its pods' (with
expectations, so a stale cache never creates twice); its revisions'; and nodes —
a node joining, or one whose labels or taints change whether a set should run there,
enqueues the sets concerned. ``sync`` reads the caches, works out the current
revision (making one for a new template), then — once its expectations are met —
creates a pod for every node that should run one and has none, deletes pods on
nodes that should not keep one (and failed pods, with back-off), takes a rolling
update step (:mod:`.update`), trims the history and writes the status. Pods are
placed by the scheduler through a required node-affinity term on ``metadata.name``.
One set is synced by one worker at a time; different sets in parallel.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pilothouse.api import errors, selectors
from pilothouse.api.meta import Obj
from pilothouse.client import events, informer, lister, rest
from pilothouse.controllers import base, podcontrol, refmanager
from pilothouse.controllers.daemonset import status as ds_status
from pilothouse.controllers.daemonset import update, util
from pilothouse.controllers.expectations import Expectations
from pilothouse.controllers.history import client as history_client

log = logging.getLogger(__name__)

BURST_REPLICAS = 250
BACKOFF_INITIAL = 1.0
BACKOFF_MAX = 15 * 60.0
BACKOFF_GC_SIZE = 1024


class FailedPodsBackoff:
    """Per (set, node) back-off for deleting failed daemon pods (upstream's
    ``flowcontrol.Backoff``: 1 s doubling to 15 min, forgotten after twice the max)."""

    def __init__(self, clock: Any) -> None:
        self.clock = clock
        self._entries: dict[str, tuple[float, float]] = {}  # key → (delay, last update)

    def in_backoff(self, key: str) -> float | None:
        """The delay still to wait, or None when a deletion may go ahead now."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        delay, since = entry
        remaining = since + delay - self.clock.monotonic()
        return remaining if remaining > 0 else None

    def next(self, key: str) -> None:
        now = self.clock.monotonic()
        if len(self._entries) > BACKOFF_GC_SIZE:
            # Forget (set, node) pairs whose back-off ran out long ago, as upstream's GC does.
            self._entries = {
                k: v for k, v in self._entries.items() if now - v[1] <= 2 * BACKOFF_MAX
            }
        entry = self._entries.get(key)
        if entry is None or now - entry[1] > 2 * BACKOFF_MAX:
            self._entries[key] = (BACKOFF_INITIAL, now)
        else:
            self._entries[key] = (min(entry[0] * 2, BACKOFF_MAX), now)


class DaemonSetController(base.Controller):
    name = "daemonset"
    workers = 2

    def __init__(self, ctx: Any, *, burst: int = BURST_REPLICAS) -> None:
        super().__init__(clock=ctx.clock)
        self.client: rest.Client = ctx.client
        self.burst = burst
        self.ds_resource = ctx.resource("apps", "v1", "daemonsets")
        self.pod_resource = ctx.resource("", "v1", "pods")
        self.node_resource = ctx.resource("", "v1", "nodes")
        self.revision_resource = ctx.resource("apps", "v1", "controllerrevisions")
        self.sets: informer.Informer = ctx.informers.informer(self.ds_resource)
        self.pods: informer.Informer = ctx.informers.informer(self.pod_resource)
        self.nodes: informer.Informer = ctx.informers.informer(self.node_resource)
        self.revisions: informer.Informer = ctx.informers.informer(self.revision_resource)
        self.pods.add_indexer(lister.OWNER_UID_INDEX, lister.controller_uid_index)
        self.recorder: events.EventRecorder = ctx.recorder("daemonset-controller")
        self.expectations = Expectations(ctx.clock)
        self.history = history_client.History(self.client, self.revision_resource, self.revisions)
        self.failed_pods_backoff = FailedPodsBackoff(ctx.clock)
        self._placements: dict[str, tuple[str, util.Placement]] = {}
        self.sets.add_handlers(
            on_add=self.enqueue,
            on_update=lambda _old, new: self.enqueue(new),
            on_delete=self._set_deleted,
        )
        self.pods.add_handlers(
            on_add=self._pod_added, on_update=self._pod_updated, on_delete=self._pod_deleted
        )
        self.nodes.add_handlers(
            on_add=self._node_added, on_update=self._node_updated, on_delete=self._node_deleted
        )
        self.revisions.add_handlers(
            on_add=self._revision_changed,
            on_update=lambda _old, new: self._revision_changed(new),
            on_delete=self._revision_changed,
        )

    async def wait_ready(self) -> None:
        for inf in (self.sets, self.pods, self.nodes, self.revisions):
            await inf.wait_synced()

    # --- handlers ---------------------------------------------------------------------
    def _set_deleted(self, ds: Obj) -> None:
        key = lister.key_of(ds)
        self.expectations.forget(key)
        self._placements.pop(util.uid(ds), None)
        self.queue.add(key)

    def _resolve(self, namespace: str, ref: Obj | None) -> Obj | None:
        if ref is None or ref.get("kind") != util.KIND:
            return None
        ds = self.sets.indexer.get_by(namespace, str(ref.get("name")))
        if ds is None or util.uid(ds) != ref.get("uid"):
            return None
        return ds

    def _selecting(self, obj: Obj) -> list[Obj]:
        labels = obj["metadata"].get("labels") or {}
        out = []
        for ds in self.sets.indexer.list_namespace(obj["metadata"].get("namespace", "")):
            try:
                sel = selectors.from_label_selector_dict(util.spec(ds).get("selector"))
            except selectors.SelectorError:
                continue
            if not sel.empty and sel.matches(labels):
                out.append(ds)
        return out

    def _pod_added(self, pod: Obj) -> None:
        if pod["metadata"].get("deletionTimestamp"):
            self._pod_deleted(pod)
            return
        ds = self._resolve(pod["metadata"].get("namespace", ""), podcontrol.get_controller_of(pod))
        if ds is not None:
            key = lister.key_of(ds)
            self.expectations.creation_observed(key)
            self.queue.add(key)
            return
        if podcontrol.get_controller_of(pod) is None:
            for ds in self._selecting(pod):
                self.enqueue(ds)

    def _pod_updated(self, old: Obj, cur: Obj) -> None:
        if old["metadata"].get("resourceVersion") == cur["metadata"].get("resourceVersion"):
            return
        if cur["metadata"].get("deletionTimestamp") and not old["metadata"].get(
            "deletionTimestamp"
        ):
            self._pod_deleted(cur)
            return
        ns = cur["metadata"].get("namespace", "")
        cur_ref, old_ref = podcontrol.get_controller_of(cur), podcontrol.get_controller_of(old)
        if cur_ref != old_ref and old_ref is not None:
            prev = self._resolve(ns, old_ref)
            if prev is not None:
                self.enqueue(prev)
        if cur_ref is not None:
            ds = self._resolve(ns, cur_ref)
            if ds is None:
                return
            self.enqueue(ds)
            min_ready = util.min_ready_seconds(ds)
            if min_ready > 0 and not podcontrol.pod_ready(old) and podcontrol.pod_ready(cur):
                self.enqueue_after(ds, float(min_ready))
            return
        if cur_ref != old_ref or old["metadata"].get("labels") != cur["metadata"].get("labels"):
            for ds in self._selecting(cur):
                self.enqueue(ds)

    def _pod_deleted(self, pod: Obj) -> None:
        ds = self._resolve(pod["metadata"].get("namespace", ""), podcontrol.get_controller_of(pod))
        if ds is None:
            return
        key = lister.key_of(ds)
        self.expectations.deletion_observed(key, lister.key_of(pod))
        self.queue.add(key)

    def placement(self, ds: Obj) -> util.Placement:
        """The set's :class:`~.util.Placement`, kept while the set is unchanged."""
        uid, rv = util.uid(ds), str(ds["metadata"].get("resourceVersion", ""))
        cached = self._placements.get(uid)
        if cached is not None and cached[0] == rv:
            return cached[1]
        placement = util.Placement.of(ds)
        self._placements[uid] = (rv, placement)
        return placement

    def _node_added(self, node: Obj) -> None:
        for ds in self.sets.indexer.list():
            if self.placement(ds).decide(node)[0]:
                self.enqueue(ds)

    def _node_updated(self, old: Obj, cur: Obj) -> None:
        # Only labels and taints decide whether a node should run a daemon pod.
        same_labels = old["metadata"].get("labels") == cur["metadata"].get("labels")
        if same_labels and util.spec(old).get("taints") == util.spec(cur).get("taints"):
            return
        for ds in self.sets.indexer.list():
            placement = self.placement(ds)
            if placement.decide(old) != placement.decide(cur):
                self.enqueue(ds)

    def _node_deleted(self, node: Obj) -> None:
        # Upstream waits for the pod garbage collector to remove the node's pods; the
        # desired count drops now, so the status says so at once.
        for ds in self.sets.indexer.list():
            if self.placement(ds).decide(node)[1]:
                self.enqueue(ds)

    def _revision_changed(self, rev: Obj) -> None:
        ns = rev["metadata"].get("namespace", "")
        ref = podcontrol.get_controller_of(rev)
        if ref is not None:
            ds = self._resolve(ns, ref)
            if ds is not None:
                self.enqueue(ds)
            return
        for ds in self._selecting(rev):
            self.enqueue(ds)

    # --- sync -------------------------------------------------------------------------
    async def sync(self, key: str) -> None:
        ds = self.sets.indexer.get(key)
        if ds is None:
            self.expectations.forget(key)
            return
        selector = util.spec(ds).get("selector")
        if selector == {} or (
            isinstance(selector, dict)
            and not selector.get("matchLabels")
            and not selector.get("matchExpressions")
        ):
            self.recorder.event(
                ds,
                events.WARNING,
                "SelectingAll",
                "This daemon set is selecting all pods. A non-empty selector is required.",
            )
            return
        if ds["metadata"].get("deletionTimestamp"):
            # Its history may already be gone (or orphaned): nothing to do but wait.
            return
        try:
            await self._sync(key, ds)
        except errors.StatusError as exc:
            if errors.has_cause(exc, errors.NAMESPACE_TERMINATING):
                return
            raise

    async def _sync(self, key: str, ds: Obj) -> None:
        nodes = self.nodes.indexer.list()
        current, old = await update.construct_history(self, ds)
        hash_ = str((current["metadata"].get("labels") or {}).get(util.REVISION_LABEL, ""))
        if not self.expectations.satisfied(key):
            # Only the status: the generation is not observed, nothing was decided on it.
            await ds_status.update_status(self, ds, nodes, hash_, observed=False)
            return
        error: BaseException | None = None
        try:
            await self.manage(ds, nodes, hash_)
            if self.expectations.satisfied(key) and util.strategy_type(ds) == "RollingUpdate":
                await update.rolling_update(self, ds, nodes, hash_)
            await update.cleanup_history(self, ds, old)
        except errors.StatusError as exc:
            error = exc
        try:
            await ds_status.update_status(self, ds, nodes, hash_, observed=True)
        except errors.StatusError:
            if error is None:
                raise
        if error is not None:
            raise error

    async def daemon_pods(self, ds: Obj) -> list[Obj]:
        """The set's pods after adopting orphans and releasing pods it no longer
        matches (``getDaemonPods``)."""
        selector = selectors.from_label_selector_dict(util.spec(ds).get("selector"))
        owned = self.pods.indexer.by_index(lister.OWNER_UID_INDEX, util.uid(ds))
        orphans = [
            p
            for p in self.pods.indexer.list_namespace(util.namespace(ds))
            if podcontrol.get_controller_of(p) is None
        ]
        manager = refmanager.ControllerRefManager(
            self.client,
            controller=ds,
            selector=selector,
            resource=self.pod_resource,
            recheck=refmanager.recheck_deletion(self.client, self.ds_resource, ds),
        )
        return await manager.claim([*owned, *orphans])

    async def nodes_to_daemon_pods(
        self, ds: Obj, *, include_deleted_terminal: bool = False
    ) -> dict[str, list[Obj]]:
        out: dict[str, list[Obj]] = {}
        for pod in await self.daemon_pods(ds):
            finished = util.status(pod).get("phase") in ("Succeeded", "Failed")
            if (
                not include_deleted_terminal
                and finished
                and pod["metadata"].get("deletionTimestamp")
            ):
                continue  # the agent or the pod GC is removing it: nothing left to do
            node = util.target_node_name(pod)
            if node is None:
                log.info("daemon pod %s names no node; ignoring it", lister.key_of(pod))
                continue
            out.setdefault(node, []).append(pod)
        return out

    # --- manage ---------------------------------------------------------------------
    async def manage(self, ds: Obj, nodes: list[Obj], hash_: str) -> None:
        """Create and delete pods so every node that should run one does, once."""
        node_to_pods = await self.nodes_to_daemon_pods(ds)
        need: list[str] = []
        delete: list[str] = []
        for node in nodes:
            node_need, node_delete = self._pods_should_be_on_node(node, node_to_pods, ds, hash_)
            need += node_need
            delete += node_delete
        # Unscheduled pods for nodes that are gone: nobody else would remove them.
        existing = {n["metadata"]["name"] for n in nodes}
        for node_name, pods in node_to_pods.items():
            if node_name not in existing:
                delete += [util.name(p) for p in pods if not util.spec(p).get("nodeName")]
        await self.sync_nodes(ds, delete, need, hash_)

    def _pods_should_be_on_node(
        self, node: Obj, node_to_pods: dict[str, list[Obj]], ds: Obj, hash_: str
    ) -> tuple[list[str], list[str]]:
        node_name = node["metadata"]["name"]
        should_run, should_continue = self.placement(ds).decide(node)
        pods = node_to_pods.get(node_name)
        need: list[str] = []
        delete: list[str] = []
        if should_run and pods is None:
            return [node_name], []
        if should_continue:
            running: list[Obj] = []
            for pod in pods or []:
                if pod["metadata"].get("deletionTimestamp"):
                    continue
                phase = util.status(pod).get("phase")
                if phase == "Failed":
                    # Hot loops against an agent that rejects the pod are what back-off is for.
                    observed = int(util.status(ds).get("observedGeneration") or 0)
                    backoff_key = f"{util.uid(ds)}/{observed}/{node_name}"
                    delay = self.failed_pods_backoff.in_backoff(backoff_key)
                    if delay is not None:
                        self.enqueue_after(ds, delay)
                        continue
                    self.failed_pods_backoff.next(backoff_key)
                    self.recorder.event(
                        ds,
                        events.WARNING,
                        "FailedDaemonPod",
                        f"Found failed daemon pod {util.namespace(pod)}/{util.name(pod)} on node "
                        f"{node_name}, will try to kill it",
                    )
                    delete.append(util.name(pod))
                elif phase == "Succeeded":
                    self.recorder.event(
                        ds,
                        events.NORMAL,
                        "SucceededDaemonPod",
                        f"Found succeeded daemon pod {util.namespace(pod)}/{util.name(pod)} on "
                        f"node {node_name}, will try to delete it",
                    )
                    delete.append(util.name(pod))
                else:
                    running.append(pod)
            if not util.allows_surge(ds):
                # Without surge a node keeps only its oldest running pod.
                running = util.by_creation_and_phase(running)
                delete += [util.name(p) for p in running[1:]]
                return need, delete
            if len(running) <= 1:
                if not running and should_run:
                    need.append(node_name)  # surging needs at least one pod on the node
                return need, delete
            # With surge: at most one new and one old pod, and the old one only while the
            # new one is not yet available and the old one is still ready.
            oldest_new: Obj | None = None
            oldest_old: Obj | None = None
            for pod in util.by_creation_and_phase(running):
                is_new = (pod["metadata"].get("labels") or {}).get(util.REVISION_LABEL) == hash_
                if is_new and oldest_new is None:
                    oldest_new = pod
                elif not is_new and oldest_old is None:
                    oldest_old = pod
                else:
                    delete.append(util.name(pod))
            if (
                oldest_new is not None
                and oldest_old is not None
                and (
                    not podcontrol.pod_ready(oldest_old)
                    or podcontrol.pod_available(
                        oldest_new, util.min_ready_seconds(ds), self.clock.now()
                    )
                )
            ):
                delete.append(util.name(oldest_old))
            return need, delete
        if pods is not None:
            delete += [util.name(p) for p in pods if not p["metadata"].get("deletionTimestamp")]
        return need, delete

    async def sync_nodes(self, ds: Obj, delete: list[str], need: list[str], hash_: str) -> None:
        """Create pods for ``need`` (slow-start batches) and delete ``delete``, at most
        ``burst`` of each, with expectations set first (``syncNodes``)."""
        key = lister.key_of(ds)
        need = need[: self.burst]
        delete = delete[: self.burst]
        ns = util.namespace(ds)
        self.expectations.expect_creations(key, len(need))
        self.expectations.expect_deletions(key, [f"{ns}/{n}" for n in delete])
        template = util.create_pod_template(ds, util.template_generation(ds), hash_)
        failures: list[BaseException] = []

        async def create(node_name: str) -> None:
            tmpl = dict(template)
            tmpl_spec = dict(template.get("spec") or {})
            tmpl_spec["affinity"] = util.replace_node_name_affinity(
                tmpl_spec.get("affinity"), node_name
            )
            tmpl["spec"] = tmpl_spec
            pod = podcontrol.pod_from_template(ds, tmpl)
            try:
                created = await self.client.create(self.pod_resource, pod, ns)
            except errors.StatusError as exc:
                if errors.has_cause(exc, errors.NAMESPACE_TERMINATING):
                    return  # the namespace is going away: every create would fail
                self.expectations.creation_observed(key)
                self.recorder.event(
                    ds, events.WARNING, "FailedCreate", f"Error creating: {exc.message}"
                )
                raise
            self.recorder.event(
                ds,
                events.NORMAL,
                "SuccessfulCreate",
                f"Created pod: {created['metadata']['name']}",
            )

        pos = 0
        batch = min(len(need), 1)
        while batch > 0:
            results = await asyncio.gather(
                *(create(n) for n in need[pos : pos + batch]), return_exceptions=True
            )
            batch_failures = [r for r in results if isinstance(r, BaseException)]
            failures += batch_failures
            pos += batch
            if batch_failures:
                skipped = len(need) - pos
                if skipped > 0:
                    # Slow start stopped: the pods never attempted are not expected either.
                    self.expectations.creations_failed(key, skipped)
                break
            batch = min(2 * batch, len(need) - pos)

        async def remove(pod_name: str) -> None:
            try:
                await self.client.delete(self.pod_resource, pod_name, ns)
            except errors.StatusError as exc:
                self.expectations.deletion_observed(key, f"{ns}/{pod_name}")
                if errors.is_not_found(exc):
                    return
                self.recorder.event(
                    ds, events.WARNING, "FailedDelete", f"Error deleting: {exc.message}"
                )
                raise
            self.recorder.event(ds, events.NORMAL, "SuccessfulDelete", f"Deleted pod: {pod_name}")

        results = await asyncio.gather(*(remove(n) for n in delete), return_exceptions=True)
        failures += [r for r in results if isinstance(r, BaseException)]
        for failure in failures:
            if not isinstance(failure, errors.StatusError):
                raise failure
        if failures:
            raise failures[0]
