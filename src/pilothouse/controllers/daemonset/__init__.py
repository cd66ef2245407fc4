"""The DaemonSet controller: one pod on every node that should run one, rolled out node
by node (upstream's pkg/controller/daemon).

One module per concern, as upstream splits it: :mod:`.controller` (handlers, claiming
pods, ``sync``, creating and deleting pods per node), :mod:`.update` (rolling updates
with maxUnavailable or maxSurge, the revision history), :mod:`.status` and
:mod:`.util` (which nodes should run a pod, the daemon tolerations, the node-name
affinity the scheduler places pods by, counts). Revisions come from the shared
:mod:`pilothouse.controllers.history`.
"""

from pilothouse.controllers.daemonset.controller import DaemonSetController

__all__ = ["DaemonSetController"]
