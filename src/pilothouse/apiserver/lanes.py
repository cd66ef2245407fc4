"""Which requests keep the loop's fast lane: reads the server answers from memory.

On a :class:`~pilothouse.looplanes.LanedEventLoop` (what ``pilothouse server`` runs
on) a connection's task and every request it starts run in the fast lane (the server's
task factory puts them there: :mod:`.eagertasks`). The first thing a request does is
:func:`middleware`: a request that is not a *short read* leaves the fast lane — its
context loses :data:`~pilothouse.looplanes.FAST` and it yields once, so the rest of it
(authentication, admission, the write and its commit) queues in the normal lane in
arrival order, as every request did before lanes. A short read keeps the fast lane to
its end: its answer is in memory (the watch cache's encoded object, a discovery
document, ``/version``, a health check), so it costs the loop a fraction of a
millisecond and never waits behind the writes in flight — upstream's API server serves
such a GET in a goroutine of its own, beside the writes, and this is that property on
one loop.

A short read is a ``GET`` or ``HEAD`` of one named object or subresource of the
resource API (not a list, not a watch, not a stream: logs, exec, attach,
port-forward, proxy), of discovery (``/api``, ``/apis`` and their group versions), of
``/version`` or of the health endpoints. Lists are left in the normal lane: a list's
cost grows with what it lists. The decision looks at the method, the path's shape
and the query only, so it costs nothing worth measuring and needs no registry; a
wrong guess costs ordering, never an answer: every request is served the same way in
either lane.

Concurrency: the middleware runs in the request's own task, on the server's loop.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from pilothouse import looplanes
from pilothouse.apiserver.requestcontext import Handler

# Non-API paths whose GET is a short read (besides their sub-paths: /readyz/etcd).
_SHORT_PATHS = ("version", "healthz", "livez", "readyz")
# Subresources that stream or proxy: never short.
_STREAMS = frozenset(("log", "exec", "attach", "portforward", "proxy"))


def is_short_read(method: str, path: str, query_string: str) -> bool:
    """Whether a request with this method, path and query is a short read (see the
    module docstring)."""
    if method != "GET" and method != "HEAD":
        return False
    parts = [p for p in path.split("/") if p]
    if not parts:
        return False
    if parts[0] == "api":
        rest = parts[2:]
    elif parts[0] == "apis":
        rest = parts[3:]
    else:
        return parts[0] in _SHORT_PATHS
    if not rest:
        return True  # discovery: /api, /api/v1, /apis, /apis/{group}[/{version}]
    if "watch" in query_string or "follow" in query_string or rest[0] == "watch":
        return False
    if rest[0] == "namespaces" and len(rest) >= 3:
        rest = rest[2:]  # /namespaces/{ns}/{resource}[/{name}[/{sub}]]
    # {resource}: a list; {resource}/{name}[/{sub}]: one object (a namespace too).
    if len(rest) < 2:
        return False
    return len(rest) < 3 or rest[2] not in _STREAMS


@web.middleware
async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Step a request that is not a short read back into the normal lane."""
    if looplanes.FAST.get() and not is_short_read(
        request.method, request.path, request.query_string
    ):
        looplanes.FAST.set(False)
        await asyncio.sleep(0)  # the next step is queued with the context above: normal
    return await handler(request)
