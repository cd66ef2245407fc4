"""The replication manager: keeps core/v1 ReplicationControllers' pods.

Upstream's ReplicationManager (``pkg/controller/replication``) runs the
ReplicaSet controller's code on RCs converted to ReplicaSets; here the
ReplicaSet controller is parametrised instead: the RC resource, its kind in
owner references, its event source, and its selector, a plain label map that
selects pods whose labels hold every pair. Concurrency is the ReplicaSet
controller's: one RC is synced by one worker at a time, different ones in
parallel.
"""

from __future__ import annotations

from pilothouse.api import selectors
from pilothouse.api.meta import Obj
from pilothouse.controllers import replicaset


class ReplicationManager(replicaset.ReplicaSetController):
    name = "replicationcontroller"
    kind = "ReplicationController"
    resource = ("", "v1", "replicationcontrollers")
    component = "replication-controller"

    def selector_of(self, rs: Obj) -> selectors.LabelSelector:
        # An empty map selects everything (SelectorFromSet); validation makes
        # sure a stored RC never has one, and the claim logic adopts nothing
        # with an empty selector anyway.
        return selectors.selector_from_set((rs.get("spec") or {}).get("selector"))
