"""The audit log's part in serving a request (upstream's ``WithAudit`` filter).

The request context calls in at three points: when the request is authenticated
(:meth:`Auditor.begin`: the policy decides the level; the RequestReceived event),
when the response starts (:meth:`Auditor.response_started`: the status code; the
ResponseStarted event of long-running requests — watches, logs, exec, attach,
port-forward, proxy) and when it is done (:meth:`Auditor.finish`: the
ResponseComplete event). Everything runs on the request's own task; the backend
serialises the writes.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from typing import Any

from aiohttp import web

from pilothouse.api import errors, resources
from pilothouse.apiserver import request as request_info
from pilothouse.apiserver import requestcontext
from pilothouse.apiserver.audit import backend as backend_module
from pilothouse.apiserver.audit import event, policy

log = logging.getLogger(__name__)

LONG_RUNNING_VERBS = frozenset({"watch", "proxy"})
LONG_RUNNING_SUBRESOURCES = frozenset({"attach", "exec", "proxy", "log", "portforward"})
_CONNECTION_CLOSED = {
    "metadata": {},
    "status": "Success",
    "message": "Connection closed early",
    "code": 200,
}


def verb_of(method: str, info: request_info.RequestInfo | None, query: Any) -> str:
    """Upstream's request verb: ``get``/``list``/``watch``, ``create``, ``update``, …"""
    method = method.upper()
    if info is None:
        return method.lower()
    watch = info.legacy_watch or query.get("watch") in ("true", "1")
    if method == "GET":
        if watch:
            return "watch"
        return "get" if info.name else "list"
    if method == "HEAD":
        return "get" if info.name else "list"
    if method == "POST":
        return "create"
    if method == "PUT":
        return "update"
    if method == "PATCH":
        return "patch"
    if method == "DELETE":
        return "delete" if info.name else "deletecollection"
    return method.lower()


def source_ips(request: web.Request) -> list[str]:
    """utilnet.SourceIPs: X-Forwarded-For, then X-Real-Ip, then the peer."""
    found: list[str] = []
    headers = request.headers
    if "X-Forwarded-For" not in headers and "X-Real-Ip" not in headers:
        return [request.remote] if request.remote else []
    for part in headers.get("X-Forwarded-For", "").split(","):
        part = part.strip()
        if part and _is_ip(part) and part not in found:
            found.append(part)
    real = request.headers.get("X-Real-Ip", "").strip()
    if real and _is_ip(real) and real not in found:
        found.append(real)
    peer = request.remote  # the socket's address (None on the Unix socket)
    if peer and peer not in found:
        found.append(peer)
    return found


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def legacy_line(record: event.Record, stage: str) -> bytes:
    """``--audit-log-format=legacy``: upstream's one-line text form of an event."""
    user = record.user
    username = user.get("username") or "<none>"
    groups = "<none>"
    if user.get("username") and user.get("groups"):
        groups = _go_slice(user["groups"])
    as_user, as_groups = "<self>", "<lookup>"
    if record.impersonated_user is not None:
        as_user = record.impersonated_user.get("username", "")
        if record.impersonated_user.get("groups") is not None:
            as_groups = _go_slice(record.impersonated_user["groups"])
    namespace = (record.object_ref or {}).get("namespace") or "<none>"
    response = (
        str(record.response_status.get("code", 0))
        if record.response_status is not None and stage != policy.REQUEST_RECEIVED
        else "<deferred>"
    )
    ip = record.source_ips[0] if record.source_ips else "<unknown>"
    fields = (
        ("id", record.audit_id),
        ("stage", stage),
        ("ip", ip),
        ("method", record.verb),
        ("user", username),
        ("groups", groups),
        ("as", as_user),
        ("asgroups", as_groups),
        ("user-agent", record.user_agent),
        ("namespace", namespace),
        ("uri", record.request_uri),
    )
    text = " ".join(f"{k}={_go_quote(v)}" for k, v in fields)
    stamp = event.micro_time(record.received).replace("Z", "").rstrip("0").rstrip(".") + "Z"
    return f'{stamp} AUDIT: {text} response="{response}"'.encode()


def _go_quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _go_slice(values: list[str]) -> str:
    return "[" + ",".join(_go_quote(v) for v in values) + "]"


class Auditor:
    """Evaluates the policy for each request and writes its events to the backend."""

    def __init__(
        self,
        audit_policy: policy.Policy,
        backend: backend_module.LogBackend,
        *,
        registry: resources.Registry = resources.DEFAULT,
    ) -> None:
        self.policy = audit_policy
        self.backend = backend
        self.registry = registry
        self.legacy = backend.options.format == "legacy"

    # --- the three points of a request ---------------------------------------------
    def begin(self, request: web.Request, ctx: requestcontext.RequestContext) -> None:
        record = self._record(request, ctx)
        if record is None:
            return
        if not self._emit(record, policy.REQUEST_RECEIVED, record.received) and self.backend.strict:
            # blocking-strict: a request whose first event cannot be stored is not served.
            raise errors.internal("failed to store audit event")

    def _record(
        self, request: web.Request, ctx: requestcontext.RequestContext
    ) -> event.Record | None:
        """The request's audit record, when the policy records it (kept in ``ctx``)."""
        path = request.path.rstrip("/") or "/"
        try:
            info: request_info.RequestInfo | None = request_info.parse_once(
                request, path, self.registry
            )
        except Exception:
            info = None  # not a resource path, or one that will be answered 404
        user = ctx.user
        attrs = policy.RequestAttributes(
            user=user.name if user is not None else "",
            groups=tuple(user.groups) if user is not None else (),
            verb=verb_of(request.method, info, request.query),
            path=path,
            resource_request=info is not None,
            api_group=info.resource.group if info else "",
            resource=info.resource.plural if info else "",
            subresource=info.subresource if info else "",
            namespace=info.namespace if info else "",
            name=info.name if info else "",
        )
        decision = self.policy.evaluate(attrs)
        if decision.level == policy.NONE:
            return None
        object_ref: dict[str, Any] | None = None
        if info is not None:
            object_ref = {
                "resource": info.resource.plural,
                "namespace": info.namespace,
                "name": info.name,
                "apiGroup": info.resource.group,
                "apiVersion": info.resource.version,
                "subresource": info.subresource,
            }
        record = event.Record(
            audit_id=ctx.audit_id,
            decision=decision,
            received=ctx.received,
            verb=attrs.verb,
            request_uri=request.raw_path,
            user=event.user_info(user),
            source_ips=source_ips(request),
            user_agent=event.user_agent(request.headers.get("User-Agent", "")),
            object_ref=object_ref,
            annotations=ctx.annotations,
        )
        if ctx.impersonated is not None:
            record.impersonated_user = event.user_info(ctx.impersonated)
        ctx.audit = record
        ctx.long_running = attrs.verb in LONG_RUNNING_VERBS or (
            attrs.subresource in LONG_RUNNING_SUBRESOURCES
        )
        return record

    def response_started(
        self, ctx: requestcontext.RequestContext, response: web.StreamResponse
    ) -> None:
        record = ctx.audit
        if not isinstance(record, event.Record) or ctx.response_seen:
            return
        ctx.response_seen = True
        body = response.body if isinstance(response, web.Response) else None
        record.response_seen(
            response.status,
            body if isinstance(body, bytes) else None,
            response.content_type or "",
        )
        if ctx.long_running:
            self._emit(record, policy.RESPONSE_STARTED, time.time())

    def finish(self, ctx: requestcontext.RequestContext) -> None:
        record = ctx.audit
        if not isinstance(record, event.Record):
            return
        if ctx.panic is not None:
            record.response_status = {
                "metadata": {},
                "status": "Failure",
                "message": f"APIServer panic'd: {ctx.panic}",
                "reason": "InternalError",
                "code": 500,
            }
            self._emit(record, policy.PANIC, time.time())
            return
        if record.response_status is None:
            record.response_status = dict(_CONNECTION_CLOSED)
            if ctx.long_running:
                self._emit(record, policy.RESPONSE_STARTED, time.time())
        self._emit(record, policy.RESPONSE_COMPLETE, time.time())

    def failed_authentication(
        self, request: web.Request, ctx: requestcontext.RequestContext, message: str
    ) -> None:
        """A request refused 401: one event, with no user, at the stage ResponseStarted."""
        record = self._record(request, ctx)
        if record is None:
            return
        record.response_status = {"metadata": {}, "message": message, "code": 401}
        self._emit(record, policy.RESPONSE_STARTED, time.time())
        ctx.audit = None

    def _emit(self, record: event.Record, stage: str, when: float) -> bool:
        if stage in record.omit_stages:
            return True
        line = legacy_line(record, stage) if self.legacy else record.encode(stage, when)
        return self.backend.process(line + b"\n")
