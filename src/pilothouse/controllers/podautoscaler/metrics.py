"""Where the HPA controller reads resource usage: the ``metrics.k8s.io`` API.

:class:`ResourceMetrics` lists PodMetrics by label selector through the API (what
metrics-server, or here the API server itself, serves) and sums each pod's
containers, as upstream's resource metrics client does: a pod missing a container's
figure is left out (it counts as "missing"). :class:`FakeMetrics` is the same seam
for tests. No state beyond the client.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from pilothouse.api import errors, meta, quantity, resources
from pilothouse.client import rest

Obj = dict[str, Any]

POD_METRICS = resources.Resource(
    "metrics.k8s.io", "v1beta1", "PodMetrics", "pods", True, verbs=("get", "list"), stored=False
)


@dataclass(frozen=True)
class PodMetric:
    value: int  # milli-units: millicores for CPU, milli-bytes for memory (as upstream)
    timestamp: float
    window: float


class MetricsClient(Protocol):
    async def resource_metric(
        self, resource: str, namespace: str, selector: str, container: str = ""
    ) -> tuple[dict[str, PodMetric], float]:
        """Usage of ``resource`` by pod name, and the newest sample's time."""


def _window_seconds(text: str) -> float:
    if text.endswith("ms"):
        return float(text[:-2]) / 1000
    units = {"s": 1.0, "m": 60.0, "h": 3600.0}
    try:
        return float(text[:-1]) * units[text[-1]]
    except (KeyError, ValueError, IndexError):
        return 0.0


def pod_metrics_to_usage(
    items: list[Obj], resource: str, container: str = ""
) -> tuple[dict[str, PodMetric], float]:
    out: dict[str, PodMetric] = {}
    newest = 0.0
    for item in items:
        containers = item.get("containers") or []
        total = 0
        missing = False
        for c in containers:
            if container and c.get("name") != container:
                continue
            usage = (c.get("usage") or {}).get(resource)
            if usage is None:
                missing = True
                break
            total += quantity.milli(str(usage))
        if missing or not containers:
            continue
        if container and not any(c.get("name") == container for c in containers):
            continue
        stamp = meta.parse_time(item.get("timestamp")) or 0.0
        newest = max(newest, stamp)
        name = (item.get("metadata") or {}).get("name", "")
        out[name] = PodMetric(total, stamp, _window_seconds(str(item.get("window") or "0s")))
    return out, newest


class ResourceMetrics:
    """Resource metrics through the API's ``metrics.k8s.io/v1beta1`` PodMetrics."""

    def __init__(self, client: rest.Client) -> None:
        self.client = client

    async def resource_metric(
        self, resource: str, namespace: str, selector: str, container: str = ""
    ) -> tuple[dict[str, PodMetric], float]:
        try:
            listing = await self.client.list(POD_METRICS, namespace, label_selector=selector)
        except errors.StatusError as exc:
            raise LookupError(
                f"unable to fetch metrics from resource metrics API: {exc.message}"
            ) from None
        items = listing.get("items") or []
        if not items:
            raise LookupError("no metrics returned from resource metrics API")
        usage, newest = pod_metrics_to_usage(items, resource, container)
        if not usage:
            raise LookupError("no metrics returned from resource metrics API")
        return usage, newest


@dataclass
class FakeMetrics:
    """Usage set by the test: ``{namespace: {pod: {resource: milli-value}}}``."""

    usage: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    timestamp: float = 0.0
    window: float = 15.0
    error: str = ""

    async def resource_metric(
        self, resource: str, namespace: str, selector: str, container: str = ""
    ) -> tuple[dict[str, PodMetric], float]:
        if self.error:
            raise LookupError(self.error)
        pods = self.usage.get(namespace, {})
        out = {
            name: PodMetric(values[resource], self.timestamp, self.window)
            for name, values in pods.items()
            if resource in values
        }
        return out, self.timestamp
