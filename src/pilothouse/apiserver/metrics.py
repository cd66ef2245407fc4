"""The API server's Prometheus metrics (``GET /metrics``), named as upstream names them.

* ``apiserver_request_total`` and ``apiserver_request_duration_seconds`` by verb,
  group, version, resource, subresource, scope (and code), from an aiohttp
  middleware around every request;
* ``apiserver_current_inflight_requests`` by kind (readOnly, mutating) and
  ``apiserver_longrunning_requests`` (watches, logs, exec…) as gauges;
* ``etcd_request_duration_seconds`` by operation and type: the store's latency,
  measured by :class:`InstrumentedStore` around whatever backend is in use (the
  name is upstream's, whatever the backend, as k3s with kine reports it too).

Verbs follow upstream's reporting: ``LIST``/``GET``/``WATCH`` for reads,
``APPLY`` for server-side apply, ``DELETECOLLECTION``, ``CONNECT`` for the
streaming subresources. The metrics live in a registry of this server's own, so
several servers in one process (tests) do not share counters.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import prometheus_client
from aiohttp import web

from pilothouse.api import errors, resources
from pilothouse.apiserver import request as request_info
from pilothouse.storage import interface as storage

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
COMPONENT = "apiserver"
CONNECT_SUBRESOURCES = frozenset({"log", "exec", "proxy", "attach", "portforward"})
# Upstream's long-running check: watches, and the streaming subresources.
LONG_RUNNING_SUBRESOURCES = frozenset({"attach", "exec", "proxy", "log", "portforward"})
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
APPLY_CONTENT_TYPE = "application/apply-patch+yaml"
REQUEST_BUCKETS = (
    0.005,
    0.025,
    0.05,
    0.1,
    0.2,
    0.4,
    0.6,
    0.8,
    1.0,
    1.25,
    1.5,
    2,
    3,
    4,
    5,
    6,
    8,
    10,
    15,
    20,
    30,
    45,
    60,
)
STORE_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
_LABELS = ["verb", "group", "version", "resource", "subresource", "scope", "component"]


def _scope(info: request_info.RequestInfo) -> str:
    if info.name:
        return "resource"
    return "namespace" if info.namespace else "cluster"


def request_labels(request: web.Request, registry: resources.Registry) -> tuple[str, ...]:
    """(verb, group, version, resource, subresource, scope) of a request, as upstream reports."""
    method = request.method.upper()
    try:
        info = request_info.parse_once(request, request.path, registry)
    except (request_info.NotAResource, errors.StatusError):
        return (method, "", "", "", "", "")
    watch = request.query.get("watch", "").lower() not in ("", "0", "false")
    if method == "GET":
        verb = "WATCH" if info.legacy_watch or watch else "GET" if info.name else "LIST"
    elif method == "PATCH" and request.content_type == APPLY_CONTENT_TYPE:
        verb = "APPLY"
    elif method == "DELETE" and not info.name:
        verb = "DELETECOLLECTION"
    else:
        verb = method
    if info.subresource in CONNECT_SUBRESOURCES:
        verb = "CONNECT"
    r = info.resource
    return (verb, r.group, r.version, r.plural, info.subresource, _scope(info))


class APIMetrics:
    """The server's metrics, its request middleware and its ``/metrics`` handler."""

    def __init__(self, registry: resources.Registry) -> None:
        self.resources = registry
        self.registry = prometheus_client.CollectorRegistry()
        reg = self.registry
        self.requests = prometheus_client.Counter(
            "apiserver_request_total",
            "Counter of apiserver requests broken out for each verb, dry run value, group, "
            "version, resource, scope, component, and HTTP response code.",
            ["verb", "dry_run", *_LABELS[1:], "code"],
            registry=reg,
        )
        self.latency = prometheus_client.Histogram(
            "apiserver_request_duration_seconds",
            "Response latency distribution in seconds for each verb, dry run value, group, "
            "version, resource, subresource, scope and component.",
            ["verb", "dry_run", *_LABELS[1:]],
            buckets=REQUEST_BUCKETS,
            registry=reg,
        )
        self.inflight = prometheus_client.Gauge(
            "apiserver_current_inflight_requests",
            "Number of requests being served now, per request kind (long-running ones excluded).",
            ["request_kind"],
            registry=reg,
        )
        self.long_running = prometheus_client.Gauge(
            "apiserver_longrunning_requests",
            "Gauge of all active long-running apiserver requests broken out by verb, group, "
            "version, resource, scope and component.",
            _LABELS,
            registry=reg,
        )
        self.store_latency = prometheus_client.Histogram(
            "etcd_request_duration_seconds",
            "Store request latency in seconds for each operation and object type.",
            ["operation", "type"],
            buckets=STORE_BUCKETS,
            registry=reg,
        )
        self._read_only = self.inflight.labels("readOnly")
        self._mutating = self.inflight.labels("mutating")
        # Each request's counter and histogram series, looked up once per label set:
        # ``labels()`` checks and joins its arguments under a lock on every call.
        self._counted: dict[tuple[str, ...], Any] = {}
        self._timed: dict[tuple[str, ...], Any] = {}

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Counts and times every request (place it outermost to see the final code)."""
        labels = request_labels(request, self.resources)
        verb, rest = labels[0], labels[1:]
        subresource = labels[4]
        dry_run = ",".join(sorted(set(request.query.getall("dryRun", []))))
        if verb == "WATCH" or subresource in LONG_RUNNING_SUBRESOURCES:
            gauge = self.long_running.labels(*labels, COMPONENT)
        else:
            gauge = self._read_only if request.method in READ_METHODS else self._mutating
        gauge.inc()
        started = time.perf_counter()
        code = 500
        try:
            response = await handler(request)
            code = response.status
            return response
        except web.HTTPException as exc:
            code = exc.status
            raise
        finally:
            gauge.dec()
            series = (verb, dry_run, *rest, COMPONENT)
            counted = self._counted.get((*series, str(code)))
            if counted is None:
                counted = self._counted[(*series, str(code))] = self.requests.labels(
                    *series, str(code)
                )
            counted.inc()
            timed = self._timed.get(series)
            if timed is None:
                timed = self._timed[series] = self.latency.labels(*series)
            timed.observe(time.perf_counter() - started)

    async def handle(self, request: web.Request) -> web.Response:
        """``GET /metrics``."""
        if request.method != "GET":
            raise errors.method_not_allowed("")
        return web.Response(
            body=prometheus_client.generate_latest(self.registry),
            headers={"Content-Type": CONTENT_TYPE},
        )

    def instrument(self, store: storage.Store) -> InstrumentedStore:
        return InstrumentedStore(store, observe=self.store_latency, registry=self.resources)


class InstrumentedStore:
    """A :class:`~pilothouse.storage.interface.Store` that times each call of the one it wraps."""

    def __init__(
        self,
        store: storage.Store,
        *,
        observe: prometheus_client.Histogram,
        registry: resources.Registry,
    ) -> None:
        self.inner = store
        self._observe = observe
        self._types = {r.storage_prefix: r.qualified for r in registry.resources if r.stored}
        self._series: dict[tuple[str, str], Any] = {}  # as APIMetrics' request series

    def _type(self, key: str) -> str:
        # Storage prefixes are /registry/<plural>/ or /registry/<group>/<plural>/.
        parts = key.split("/", 4)
        for n in (3, 4):
            found = self._types.get("/".join(parts[:n]) + "/")
            if found is not None:
                return found
        return "unknown"

    def _time(self, operation: str, key: str, started: float) -> None:
        labels = (operation, self._type(key))
        series = self._series.get(labels)
        if series is None:
            series = self._series[labels] = self._observe.labels(*labels)
        series.observe(time.perf_counter() - started)

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()

    def current_revision(self) -> int:
        return self.inner.current_revision()

    def compacted_revision(self) -> int:
        return self.inner.compacted_revision()

    async def get(self, key: str) -> storage.KeyValue | None:
        started = time.perf_counter()
        try:
            return await self.inner.get(key)
        finally:
            self._time("get", key, started)

    async def create(self, key: str, value: bytes) -> int:
        started = time.perf_counter()
        try:
            return await self.inner.create(key, value)
        finally:
            self._time("create", key, started)

    async def update(self, key: str, value: bytes, *, if_revision: int) -> int:
        started = time.perf_counter()
        try:
            return await self.inner.update(key, value, if_revision=if_revision)
        finally:
            self._time("update", key, started)

    async def delete(self, key: str, *, if_revision: int = 0) -> storage.KeyValue:
        started = time.perf_counter()
        try:
            return await self.inner.delete(key, if_revision=if_revision)
        finally:
            self._time("delete", key, started)

    async def list(
        self, prefix: str, *, at_revision: int = 0, limit: int = 0, start_key: str = ""
    ) -> storage.ListResult:
        started = time.perf_counter()
        try:
            return await self.inner.list(
                prefix, at_revision=at_revision, limit=limit, start_key=start_key
            )
        finally:
            self._time("list", prefix, started)

    def watch(self, prefix: str, *, after_revision: int) -> storage.WatchStream:
        return self.inner.watch(prefix, after_revision=after_revision)

    async def compact(self, revision: int) -> int:
        return await self.inner.compact(revision)

    def __getattr__(self, name: str) -> Any:
        # Backend-specific extras (paths, stats) stay reachable through the wrapper.
        return getattr(self.inner, name)


if TYPE_CHECKING:

    def _conforms(store: InstrumentedStore) -> storage.Store:
        return store
