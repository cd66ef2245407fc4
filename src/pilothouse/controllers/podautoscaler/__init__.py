"""The HorizontalPodAutoscaler controller (upstream's ``pkg/controller/podautoscaler``).

``controller`` (reconcile, scale subresource, conditions and events), ``replicas``
(the replica calculator), ``normalize`` (stabilization and scaling policies),
``metrics`` (the resource metrics API, and its fake), ``status`` (conditions).
"""

from pilothouse.controllers.podautoscaler.controller import HorizontalPodAutoscalerController

__all__ = ["HorizontalPodAutoscalerController"]
