"""Informer handlers: keep the cache and the queue in step with the cluster
(upstream ``eventhandlers.go``).

* Pending pods whose ``schedulerName`` is one of our profiles go to the queue;
  pods that got a node (by us or anyone) go to the cache, confirming assumed ones.
* Changes that might let a rejected pod fit — a node added or changed, an
  assigned pod added, changed or deleted — become cluster events for the queue.
* Node updates that change nothing the scheduler reads (heartbeats) are ignored.

Handlers run on the informers' tasks and never await.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from pilothouse.api import resources
from pilothouse.scheduler import types
from pilothouse.scheduler.framework import interface as fw

if TYPE_CHECKING:
    from pilothouse.client import informer
    from pilothouse.scheduler.scheduler import Scheduler

log = logging.getLogger(__name__)

Obj = dict[str, Any]

ASSIGNED_POD_ADD = fw.ClusterEvent(fw.POD, fw.ActionType.ADD, "AssignedPodAdd")
ASSIGNED_POD_DELETE = fw.ClusterEvent(fw.POD, fw.ActionType.DELETE, "AssignedPodDelete")
NODE_ADD = fw.ClusterEvent(fw.NODE, fw.ActionType.ADD, "NodeAdd")
NODE_DELETE = fw.ClusterEvent(fw.NODE, fw.ActionType.DELETE, "NodeDelete")
# Resources whose changes only plugins read: watched when a plugin registers for them.
STORAGE_RESOURCES = {
    fw.PERSISTENT_VOLUME_CLAIM: resources.Resource(
        "", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", True
    ),
    fw.PERSISTENT_VOLUME: resources.Resource(
        "", "v1", "PersistentVolume", "persistentvolumes", False
    ),
    fw.STORAGE_CLASS: resources.Resource(
        "storage.k8s.io", "v1", "StorageClass", "storageclasses", False
    ),
}


def node_update_action(old: Obj, new: Obj) -> fw.ActionType:
    """Which scheduling-relevant parts of a node changed (upstream ``nodeSchedulingPropertiesChange``)."""
    action = fw.ActionType(0)
    old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
    old_status, new_status = old.get("status") or {}, new.get("status") or {}
    if bool(old_spec.get("unschedulable")) != bool(new_spec.get("unschedulable")):
        action |= fw.ActionType.UPDATE_NODE_TAINT
    if (old.get("metadata") or {}).get("labels") != (new.get("metadata") or {}).get("labels"):
        action |= fw.ActionType.UPDATE_NODE_LABEL
    if (old_spec.get("taints") or []) != (new_spec.get("taints") or []):
        action |= fw.ActionType.UPDATE_NODE_TAINT
    if old_status.get("allocatable") != new_status.get("allocatable"):
        action |= fw.ActionType.UPDATE_NODE_ALLOCATABLE
    old_conditions = {c.get("type"): c.get("status") for c in old_status.get("conditions") or []}
    new_conditions = {c.get("type"): c.get("status") for c in new_status.get("conditions") or []}
    if old_conditions != new_conditions:
        action |= fw.ActionType.UPDATE_NODE_CONDITION
    return action


def pod_update_action(old: types.PodInfo, new: types.PodInfo) -> fw.ActionType:
    action = fw.ActionType(0)
    if old.labels != new.labels:
        action |= fw.ActionType.UPDATE_POD_LABEL
    if any(new.requests.get(k, 0) < v for k, v in old.requests.items()):
        action |= fw.ActionType.UPDATE_POD_SCALE_DOWN
    return action


class EventHandlers:
    """Connects the informers to one scheduler's cache and queue."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self.cache = scheduler.cache
        self.queue = scheduler.queue

    def _ours(self, pod: types.PodInfo) -> bool:
        return pod.scheduler_name in self.scheduler.frameworks

    # --- pods -------------------------------------------------------------------------
    def on_pod_add(self, obj: Obj) -> None:
        pod = self.scheduler.pod_info(obj)
        if pod.node_name:
            self._assigned(pod, ASSIGNED_POD_ADD)
        elif self._ours(pod) and not pod.terminating:
            self.queue.add(pod)

    def on_pod_update(self, old_obj: Obj, obj: Obj) -> None:
        if self._confirm(old_obj, obj) or self._status_only(old_obj, obj):
            return
        pod = self.scheduler.pod_info(obj)
        if pod.node_name:
            if not (old_obj.get("spec") or {}).get("nodeName"):
                self.queue.delete(pod.key)  # bound (by us or someone else): no longer pending
            old = self.cache.pods.get(pod.key)
            if old is None or self.cache.is_assumed(pod.key):
                self._assigned(pod, ASSIGNED_POD_ADD)
                return
            action = pod_update_action(old, pod)
            self.cache.update_pod(pod)
            if action:
                self.queue.move_all(fw.ClusterEvent(fw.POD, action, "AssignedPodUpdate"))
            return
        if not self._ours(pod):
            return
        if pod.terminating:
            self.queue.delete(pod.key)
            return
        queued = self.queue.get(pod.key)
        if queued is None:
            self.queue.add(pod)
        else:
            self.queue.update(queued.pod, pod)

    def _confirm(self, old_obj: Obj, obj: Obj) -> bool:
        """The binding of an assumed pod came back: swap in the object, skip re-parsing
        (the common case, once per scheduled pod)."""
        md = obj.get("metadata") or {}
        key = f"{md.get('namespace', '')}/{md.get('name', '')}"
        if key not in self.cache.assumed:
            return False
        assumed = self.cache.pods.get(key)
        node = (obj.get("spec") or {}).get("nodeName")
        if (
            assumed is None
            or (old_obj.get("spec") or {}).get("nodeName")
            or node != self.cache.table.names[self.cache.pod_row[key]]
            or (md.get("labels") or {}) != assumed.labels
            or md.get("deletionTimestamp")
            or md.get("uid") != assumed.uid
        ):
            return False
        assumed.pod = obj
        assumed.node_name = node
        self.queue.delete(key)
        self._assigned(assumed, ASSIGNED_POD_ADD)
        return True

    def _status_only(self, old_obj: Obj, obj: Obj) -> bool:
        """A bound pod's status changed and nothing else the scheduler reads (its node
        agent's writes, once or more per pod): take the new object and what is read from
        its status into the cached pod without parsing it again — as :meth:`_confirm`,
        and as the cache's own same-shape swap would after a full parse."""
        md = obj.get("metadata") or {}
        key = f"{md.get('namespace', '')}/{md.get('name', '')}"
        cached = self.cache.pods.get(key)
        if (
            cached is None
            or key in self.cache.assumed
            or cached.has_affinity_terms
            or cached.host_ports
            or cached.scheduling_gates
        ):
            return False
        old_md = old_obj.get("metadata") or {}
        if (
            md.get("uid") != cached.uid
            or md.get("deletionTimestamp")
            or old_md.get("deletionTimestamp")
            or (md.get("labels") or {}) != cached.labels
            or not (obj.get("spec") or {}).get("nodeName")
            or obj.get("spec") != old_obj.get("spec")
            or old_obj is not cached.pod
        ):
            return False
        types.take_status(cached, obj, priority=self.scheduler.pod_priority(obj))
        return True

    def on_pod_delete(self, obj: Obj) -> None:
        md = obj.get("metadata") or {}
        key = f"{md.get('namespace', '')}/{md.get('name', '')}"
        if key in self.cache.pods:
            self.cache.remove_pod(key)
            self.queue.delete_nominated(key)
            self.queue.move_all(ASSIGNED_POD_DELETE)
        else:
            self.queue.delete(key)

    def _assigned(self, pod: types.PodInfo, event: fw.ClusterEvent) -> None:
        self.cache.add_pod(pod)
        self.queue.delete_nominated(pod.key)
        self.queue.move_all(event)

    # --- nodes ------------------------------------------------------------------------
    def on_node_add(self, obj: Obj) -> None:
        self.cache.add_node(obj)
        self.queue.move_all(NODE_ADD)

    def on_node_update(self, old: Obj, obj: Obj) -> None:
        action = node_update_action(old, obj)
        _, changed = self.cache.update_node(obj)
        if action or changed:
            self.queue.move_all(
                fw.ClusterEvent(fw.NODE, action or fw.ActionType.UPDATE, "NodeUpdate")
            )

    def on_node_delete(self, obj: Obj) -> None:
        self.cache.remove_node((obj.get("metadata") or {}).get("name") or "")
        self.queue.move_all(NODE_DELETE)

    # --- volumes, claims, classes ---------------------------------------------------------
    def watch_storage(self, factory: informer.InformerFactory) -> None:
        """Turn changes of the storage resources some plugin registered for into cluster
        events (a claim bound, a volume made, a class added may let a pod fit)."""
        wanted = {
            ev.resource
            for fwk in self.scheduler.frameworks.values()
            for evs in fwk.events_to_register().values()
            for ev in evs
        }
        for name, resource in STORAGE_RESOURCES.items():
            if name in wanted:
                self._watch(factory.informer(resource), name)

    def _watch(self, inf: informer.Informer, resource: str) -> None:
        def event(action: fw.ActionType, label: str) -> None:
            self.queue.move_all(fw.ClusterEvent(resource, action, resource + label))

        def added(_obj: Obj) -> None:
            event(fw.ActionType.ADD, "Add")

        def updated(_old: Obj, _new: Obj) -> None:
            event(fw.ActionType.UPDATE, "Update")

        def deleted(_obj: Obj) -> None:
            event(fw.ActionType.DELETE, "Delete")

        inf.add_handlers(on_add=added, on_update=updated, on_delete=deleted)

    # --- namespaces -------------------------------------------------------------------
    def on_namespace_change(self, old: Obj, obj: Obj) -> None:
        if (old.get("metadata") or {}).get("labels") != (obj.get("metadata") or {}).get("labels"):
            self.cache.namespace_labels_changed()
            self.queue.move_all(
                fw.ClusterEvent(fw.NAMESPACE, fw.ActionType.UPDATE, "NamespaceUpdate")
            )
