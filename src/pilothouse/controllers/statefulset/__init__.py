"""The StatefulSet controller: pods with stable names and storage, made, updated and
removed in order (upstream's pkg/controller/statefulset).

One module per concern, as upstream splits it: :mod:`.controller` (handlers, claiming
pods, ``sync``), :mod:`.control` (one step: revisions, creation, scale-down, rolling
update, status, history), :mod:`.podcontrol` (pods and their claims through the API,
events) and :mod:`.utils` (names, ordinals, identity, claim ownership, status
arithmetic). Revisions come from the shared :mod:`pilothouse.controllers.history`.
"""

from pilothouse.controllers.statefulset.controller import StatefulSetController

__all__ = ["StatefulSetController"]
