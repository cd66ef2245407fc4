"""EndpointSlices from the pods a Service selects: the controller, its reconciler,
the write tracker and the pod-to-endpoint rules the Endpoints controller shares."""

from pilothouse.controllers.endpointslice.controller import EndpointSliceController

__all__ = ["EndpointSliceController"]
