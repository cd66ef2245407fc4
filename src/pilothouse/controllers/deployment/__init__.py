"""The Deployment controller: rollouts and rollbacks at a controlled rate (upstream's
pkg/controller/deployment).

One module per concern, as upstream splits it: :mod:`.controller` (handlers
and ``sync``), :mod:`.sync` (new and old ReplicaSets, revisions, scaling,
history cleanup, status), :mod:`.rolling`, :mod:`.recreate`, :mod:`.rollback`,
:mod:`.progress` (the Progressing condition and its deadline), :mod:`.util`
(arithmetic without I/O) and :mod:`.hash` (the pod-template-hash, with the Go
layout it needs in :mod:`.gotypes`).
"""

from pilothouse.controllers.deployment.controller import DeploymentController

__all__ = ["DeploymentController"]
