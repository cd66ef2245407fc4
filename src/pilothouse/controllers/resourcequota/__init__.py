"""The ResourceQuota controller (upstream ``pkg/controller/resourcequota``)."""

from pilothouse.controllers.resourcequota.controller import ResourceQuotaController

__all__ = ["ResourceQuotaController"]
