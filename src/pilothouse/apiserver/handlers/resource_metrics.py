"""The resource metrics API, ``metrics.k8s.io/v1beta1``: what ``kubectl top`` reads.

Upstream serves it from metrics-server, an aggregated API server that scrapes
every kubelet. Here the API server answers it itself, on request: it asks the
agents of the Ready nodes concerned for their ``/stats/summary`` (concurrently,
over the same mutual-TLS client the log subresource uses, with a short
timeout) and turns the usage into ``NodeMetrics`` and ``PodMetrics``. Nothing
is stored; a node whose agent does not answer in time is left out, as
metrics-server leaves out nodes it could not scrape, and so is a pod or node
whose agent has only one sample yet (no CPU rate without two).

Quantities are spelled as metrics-server spells them: CPU in nanocores
(``"123456789n"``), memory as a binary quantity (``"12345Ki"``).
"""

from __future__ import annotations

import asyncio
import decimal
import logging
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from pilothouse.api import errors, meta, quantity
from pilothouse.api.meta import Obj
from pilothouse.apiserver import cacheentry, negotiation
from pilothouse.apiserver import request as request_info
from pilothouse.apiserver.handlers import render
from pilothouse.apiserver.handlers.options import ListParams
from pilothouse.apiserver.handlers.rest import build_filter
from pilothouse.apiserver.registry.listing import ListOptions
from pilothouse.apiserver.registry.store import ResourceStore

log = logging.getLogger(__name__)

GROUP, VERSION = "metrics.k8s.io", "v1beta1"
API_VERSION = f"{GROUP}/{VERSION}"
# The agents sample every 10 seconds and rates span two samples.
WINDOW = "10s"
SUMMARY_PATH = "/stats/summary"


# --- the kinds' schemas (for /openapi/v3: kubectl explain) ---------------------------------------
_PKG = "io.k8s.metrics.pkg.apis.metrics.v1beta1."
_META = "io.k8s.apimachinery.pkg.apis.meta.v1."
_REF = "#/$defs/"
_TYPE_META = {
    "apiVersion": {
        "description": "APIVersion defines the versioned schema of this representation of an "
        "object.",
        "type": "string",
    },
    "kind": {
        "description": "Kind is a string value representing the REST resource this object "
        "represents.",
        "type": "string",
    },
}
_USAGE = {
    "description": "The memory usage is the memory working set.",
    "type": "object",
    "additionalProperties": {"$ref": _REF + "io.k8s.apimachinery.pkg.api.resource.Quantity"},
}
_WINDOW = {
    "timestamp": {
        "$ref": _REF + _META + "Time",
        "description": "The following fields define time interval from which metrics were "
        "collected from the interval [Timestamp-Window, Timestamp].",
    },
    "window": {"type": "string"},
}


def _kind(kind: str, description: str, fields: dict[str, Any], required: list[str]) -> Obj:
    return {
        "description": description,
        "type": "object",
        "properties": {**_TYPE_META, "metadata": {"$ref": _REF + _META + "ObjectMeta"}, **fields},
        "required": required,
        "x-kubernetes-group-version-kind": [{"group": GROUP, "kind": kind, "version": VERSION}],
    }


def _list(kind: str) -> Obj:
    return {
        "description": f"{kind}List is a list of {kind}.",
        "type": "object",
        "properties": {
            **_TYPE_META,
            "items": {"type": "array", "items": {"$ref": _REF + _PKG + kind}},
            "metadata": {"$ref": _REF + _META + "ListMeta"},
        },
        "required": ["items"],
        "x-kubernetes-group-version-kind": [
            {"group": GROUP, "kind": kind + "List", "version": VERSION}
        ],
    }


# As metrics-server publishes them, in the JSON-schema form the other kinds' come in.
SCHEMAS: dict[str, Obj] = {
    _PKG + "NodeMetrics": _kind(
        "NodeMetrics",
        "NodeMetrics sets resource usage metrics of a node.",
        {**_WINDOW, "usage": _USAGE},
        ["timestamp", "window", "usage"],
    ),
    _PKG + "NodeMetricsList": _list("NodeMetrics"),
    _PKG + "PodMetrics": _kind(
        "PodMetrics",
        "PodMetrics sets resource usage metrics of a pod.",
        {
            **_WINDOW,
            "containers": {
                "description": "Metrics for all containers are collected within the same "
                "time window.",
                "type": "array",
                "items": {"$ref": _REF + _PKG + "ContainerMetrics"},
            },
        },
        ["timestamp", "window", "containers"],
    ),
    _PKG + "PodMetricsList": _list("PodMetrics"),
    _PKG + "ContainerMetrics": {
        "description": "ContainerMetrics sets resource usage metrics of a container.",
        "type": "object",
        "properties": {
            "name": {
                "description": "Container name corresponding to the one from pod.spec.containers.",
                "type": "string",
            },
            "usage": _USAGE,
        },
        "required": ["name", "usage"],
    },
}


# --- quantities and objects ------------------------------------------------------------------
def cpu_quantity(nano_cores: int) -> str:
    """CPU use as metrics-server writes it: a decimal quantity scaled to nanocores."""
    return quantity.format_quantity(decimal.Decimal(nano_cores).scaleb(-9))


def memory_quantity(num_bytes: int) -> str:
    return quantity.format_quantity(num_bytes, quantity.BINARY_SI)


def _usage(stats: Obj) -> dict[str, str] | None:
    """``{"cpu", "memory"}`` from a Summary entry's cpu and memory; None while incomplete."""
    cpu, memory = stats.get("cpu") or {}, stats.get("memory") or {}
    if "usageNanoCores" not in cpu or "workingSetBytes" not in memory:
        return None
    return {
        "cpu": cpu_quantity(int(cpu["usageNanoCores"])),
        "memory": memory_quantity(int(memory["workingSetBytes"])),
    }


def node_is_ready(node: Obj) -> bool:
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def agent_url(node: Obj) -> str | None:
    """Where the node's agent listens (its InternalIP, else its first address); None for
    a hollow node (``pilothouse simulate``), which has no agent and a made-up address."""
    status = node.get("status") or {}
    runtime = str((status.get("nodeInfo") or {}).get("containerRuntimeVersion") or "")
    if runtime.startswith("hollow://"):
        return None
    endpoint = (status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}
    port = endpoint.get("Port") or 10250
    addresses = status.get("addresses") or []
    address = next((a["address"] for a in addresses if a.get("type") == "InternalIP"), None)
    address = address or next((a["address"] for a in addresses), None)
    if not address:
        return None
    host = f"[{address}]" if ":" in address else address
    return f"https://{host}:{port}"


def node_metrics(node: Obj, summary: Obj, *, now: str) -> Obj | None:
    stats = summary.get("node") or {}
    usage = _usage(stats)
    if usage is None:
        return None
    md = node["metadata"]
    return {
        "metadata": {
            "name": md["name"],
            "creationTimestamp": now,
            "labels": dict(md.get("labels") or {}),
        },
        "timestamp": stats["cpu"].get("time", now),
        "window": WINDOW,
        "usage": usage,
    }


def pod_metrics(pod: Obj, entry: Obj, *, now: str) -> Obj | None:
    """A pod's metrics, or None unless every container it reports has a full usage."""
    containers = []
    for c in entry.get("containers") or []:
        usage = _usage(c)
        if usage is None:
            return None  # as metrics-server: no partial pods
        containers.append({"name": c["name"], "usage": usage})
    if not containers:
        return None
    md = pod["metadata"]
    times = [c["cpu"]["time"] for c in entry["containers"] if (c.get("cpu") or {}).get("time")]
    return {
        "metadata": {
            "name": md["name"],
            "namespace": md["namespace"],
            "creationTimestamp": now,
            "labels": dict(md.get("labels") or {}),
        },
        "timestamp": max(times) if times else now,
        "window": WINDOW,
        "containers": containers,
    }


class ResourceMetricsAPI:
    """Serves ``nodes`` and ``pods`` of ``metrics.k8s.io/v1beta1`` (get and list)."""

    def __init__(
        self,
        *,
        nodes: ResourceStore,
        pods: ResourceStore,
        session: Callable[[], aiohttp.ClientSession],
        timeout: float = 5.0,
    ) -> None:
        self.nodes = nodes
        self.pods = pods
        self.session = session  # the node proxy's: mutual TLS with the kubelet-client cert
        self.timeout = timeout

    async def handle(
        self, request: web.Request, info: request_info.RequestInfo
    ) -> web.StreamResponse:
        if request.method != "GET" or info.subresource:
            raise errors.method_not_allowed("")
        params = ListParams.parse(request.query)
        if info.legacy_watch or params.watch:
            raise errors.method_not_allowed("")
        output = negotiation.negotiate(request.headers.get("Accept"), allow_table=False)
        now = meta.now()
        kind = info.resource.kind
        if info.resource.plural == "nodes":
            if info.name:
                body = await self._node(info.name, now)
            else:
                body = self._list(kind, await self._nodes(params, now))
        else:
            if info.name:
                body = await self._pod(info.namespace, info.name, now)
            else:
                body = self._list(kind, await self._pod_list(info.namespace, params, now))
        if "kind" not in body:
            body = {"kind": kind, "apiVersion": API_VERSION, **body}
        return render.response(negotiation.encode(body, output.media_type), output)

    @staticmethod
    def _list(kind: str, items: list[Obj]) -> Obj:
        return {"kind": kind + "List", "apiVersion": API_VERSION, "metadata": {}, "items": items}

    # --- the agents ------------------------------------------------------------------------
    async def summary(self, node: Obj) -> Obj | None:
        """The node agent's Summary, or None if it is not Ready or does not answer in time."""
        name = node["metadata"]["name"]
        url = agent_url(node)
        if url is None or not node_is_ready(node):
            return None
        try:
            async with self.session().get(
                url + SUMMARY_PATH, timeout=aiohttp.ClientTimeout(total=self.timeout)
            ) as resp:
                if resp.status != 200:
                    log.info("metrics: agent of node %s answered %d", name, resp.status)
                    return None
                summary: Obj = orjson.loads(await resp.read())
                return summary
        except (aiohttp.ClientError, TimeoutError, OSError, orjson.JSONDecodeError) as exc:
            log.info("metrics: skipping node %s: %s", name, exc or type(exc).__name__)
            return None

    async def _summaries(self, nodes: list[Obj]) -> list[tuple[Obj, Obj]]:
        answers = await asyncio.gather(*(self.summary(n) for n in nodes))
        return [(n, s) for n, s in zip(nodes, answers, strict=True) if s is not None]

    async def _all_nodes(self, match: cacheentry.Filter | None = None) -> list[Obj]:
        page = await self.nodes.list("", ListOptions(match=match))
        return [e.obj for e in page.entries]

    # --- NodeMetrics ------------------------------------------------------------------------
    async def _node(self, name: str, now: str) -> Obj:
        missing = errors.not_found("nodemetrics", GROUP, name)
        try:
            node = await self.nodes.get("", name)
        except errors.StatusError:
            raise missing from None
        summary = await self.summary(node)
        item = node_metrics(node, summary, now=now) if summary is not None else None
        if item is None:
            raise missing
        return item

    async def _nodes(self, params: ListParams, now: str) -> list[Obj]:
        match = build_filter(self.nodes, params.label_selector, params.field_selector)
        items = []
        for node, summary in await self._summaries(await self._all_nodes(match)):
            item = node_metrics(node, summary, now=now)
            if item is not None:
                items.append(item)
        return sorted(items, key=lambda i: i["metadata"]["name"])

    # --- PodMetrics -------------------------------------------------------------------------
    async def _pod(self, namespace: str, name: str, now: str) -> Obj:
        missing = errors.not_found("podmetrics", GROUP, f"{namespace}/{name}")
        try:
            pod = await self.pods.get(namespace, name)
        except errors.StatusError:
            raise missing from None
        items = await self._metrics_of([pod], now)
        if not items:
            raise missing
        return items[0]

    async def _pod_list(self, namespace: str, params: ListParams, now: str) -> list[Obj]:
        match = build_filter(self.pods, params.label_selector, params.field_selector)
        page = await self.pods.list(namespace, ListOptions(match=match))
        return await self._metrics_of([e.obj for e in page.entries], now)

    async def _metrics_of(self, pods: list[Obj], now: str) -> list[Obj]:
        """Metrics of ``pods``, asking only the agents of the nodes they run on."""
        wanted: dict[str, Obj] = {}
        node_names: set[str] = set()
        for pod in pods:
            node_name = (pod.get("spec") or {}).get("nodeName")
            if node_name and (pod.get("status") or {}).get("phase") == "Running":
                wanted[pod["metadata"]["uid"]] = pod
                node_names.add(node_name)
        if not wanted:
            return []
        nodes = [n for n in await self._all_nodes() if n["metadata"]["name"] in node_names]
        items = []
        for _node, summary in await self._summaries(nodes):
            for entry in summary.get("pods") or []:
                owner = wanted.get((entry.get("podRef") or {}).get("uid", ""))
                item = pod_metrics(owner, entry, now=now) if owner is not None else None
                if item is not None:
                    items.append(item)
        return sorted(items, key=lambda i: (i["metadata"]["namespace"], i["metadata"]["name"]))
