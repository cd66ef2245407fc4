"""What a request carries through the server besides its body (upstream: the request's
``context.Context`` with its audit context and warning recorder).

One :class:`RequestContext` per request, made by the outermost middleware and
reachable from anywhere that request runs through :func:`current` (a context
variable: each aiohttp request is its own task). Admission plugins add
``Warning`` headers (:func:`add_warning`) and audit annotations
(:func:`add_annotation`) without being handed the request; the user the request
runs as is set once it is authenticated.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web

from pilothouse.api import meta


class UserInfo(Protocol):
    """The parts of an authenticated user the server reads (``user.Info``)."""

    @property
    def name(self) -> str: ...

    @property
    def groups(self) -> tuple[str, ...]: ...


# Upstream's warning recorder budget: 4 KiB of warnings a response, and once over it
# every warning is cut to 256 characters.
WARNINGS_TOTAL = 4 * 1024
WARNING_ITEM = 256


@dataclass
class Warnings:
    """Deduplicated ``Warning`` header texts, within upstream's size budget."""

    texts: list[str] = field(default_factory=list)
    truncating: bool = False
    _seen: set[str] = field(default_factory=set)

    def add(self, text: str) -> None:
        if not text or text in self._seen:
            return
        self._seen.add(text)
        size = sum(len(t) for t in self.texts)
        if not self.truncating and size + len(text) > WARNINGS_TOTAL:
            self.truncating = True
            self.texts = [_truncate(t) for t in self.texts]
            size = sum(len(t) for t in self.texts)
        if self.truncating:
            text = _truncate(text)
        if size + len(text) <= WARNINGS_TOTAL:
            self.texts.append(text)


def _truncate(text: str) -> str:
    return text if len(text) <= WARNING_ITEM else text[: WARNING_ITEM - 3] + "..."


@dataclass
class RequestContext:
    """One request's identity, audit record and warnings."""

    audit_id: str = field(default_factory=meta.random_uuid)
    received: float = field(default_factory=time.time)
    user: UserInfo | None = None
    # Who the request acts as when it impersonates (``user`` stays who asked).
    impersonated: UserInfo | None = None
    warnings: Warnings = field(default_factory=Warnings)
    # Audit annotations (``authorization.k8s.io/decision``, ``pod-security.kubernetes.io/…``).
    annotations: dict[str, str] = field(default_factory=dict)
    # The audit record of this request, when the audit policy logs it.
    audit: Any = None
    # Watches, logs, exec…: audited when their response starts, not only at the end.
    long_running: bool = False
    response_seen: bool = False
    # An unexpected exception the request ended with (upstream: a panic).
    panic: BaseException | None = None
    # Set by the middleware: what to do once the user is known.
    on_authenticated: Callable[[], None] | None = field(default=None, repr=False)
    on_unauthenticated: Callable[[], None] | None = field(default=None, repr=False)
    on_response_started: Callable[[web.StreamResponse], None] | None = field(
        default=None, repr=False
    )

    def authenticated(self, user: UserInfo) -> None:
        """The request comes from ``user`` (the audit log records it from now on)."""
        self.user = user
        if self.on_authenticated is not None:
            self.on_authenticated()

    def impersonating(self, user: UserInfo) -> None:
        """The request acts as ``user`` (``impersonatedUser`` in its audit events)."""
        self.impersonated = user
        if self.audit is not None:
            self.audit.impersonating(user)

    @property
    def effective_user(self) -> UserInfo | None:
        """Who the request acts as: the impersonated user, else who asked."""
        return self.impersonated if self.impersonated is not None else self.user

    def unauthenticated(self) -> None:
        """The request is refused 401 (recorded as such when the policy asks)."""
        if self.on_unauthenticated is not None:
            self.on_unauthenticated()

    def log_request_object(
        self, obj: Any, *, group: str, version: str, plural: str, subresource: str = ""
    ) -> None:
        """The decoded body of a write (the audit log keeps it at level Request and up)."""
        if self.audit is not None:
            self.audit.request_object_seen(
                obj, group=group, version=version, plural=plural, subresource=subresource
            )

    def log_request_patch(self, patch: bytes) -> None:
        if self.audit is not None:
            self.audit.request_patch(patch)


_CURRENT: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "pilothouse_request", default=None
)


def current() -> RequestContext | None:
    return _CURRENT.get()


def enter(ctx: RequestContext) -> contextvars.Token[RequestContext | None]:
    return _CURRENT.set(ctx)


def leave(token: contextvars.Token[RequestContext | None]) -> None:
    _CURRENT.reset(token)


def user() -> UserInfo | None:
    """Who the current request acts as (after impersonation)."""
    ctx = _CURRENT.get()
    return ctx.effective_user if ctx is not None else None


def add_warning(text: str) -> None:
    """Send ``text`` back in a ``Warning: 299 - "…"`` header (kubectl prints it)."""
    ctx = _CURRENT.get()
    if ctx is not None:
        ctx.warnings.add(text)


def auditing() -> RequestContext | None:
    """The current request's context when the audit log records it (else None: handlers
    skip the work of preparing what it would log)."""
    ctx = _CURRENT.get()
    return ctx if ctx is not None and ctx.audit is not None else None


def add_annotation(key: str, value: str) -> None:
    """Record an audit annotation; the first value for a key wins, as upstream's."""
    ctx = _CURRENT.get()
    if ctx is not None:
        ctx.annotations.setdefault(key, value)


# --- the HTTP side ----------------------------------------------------------------------

CONTEXT_KEY: web.RequestKey[RequestContext] = web.RequestKey("request_context", RequestContext)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Observer(Protocol):
    """What watches requests go by (the audit log)."""

    def begin(self, request: web.Request, ctx: RequestContext) -> None: ...

    def failed_authentication(
        self, request: web.Request, ctx: RequestContext, message: str
    ) -> None: ...

    def response_started(self, ctx: RequestContext, response: web.StreamResponse) -> None: ...

    def finish(self, ctx: RequestContext) -> None: ...


def warning_header(text: str) -> str:
    """``299 - "text"``, escaped as a quoted-string."""
    return '299 - "' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def authentication_methods(request: web.Request) -> str:
    """What a refused request tried, as upstream's failed-authentication audit says it."""
    tried = []
    auth = request.headers.get("Authorization", "").strip()
    if auth.lower().startswith("basic "):
        tried.append("basic")
    parts = auth.split(" ")
    if len(parts) > 1 and parts[0].lower() == "bearer":
        tried.append("bearer")
    if request.query.get("access_token", "").strip():
        tried.append("access_token")
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if ssl_object is not None and ssl_object.getpeercert(binary_form=True):
        tried.append("x509")
    if tried:
        return "Authentication failed, attempted: " + ", ".join(tried)
    return "Authentication failed, no credentials provided"


class Requests:
    """The outermost request middleware: a context per request, observed (audited) by
    ``observer`` when there is one."""

    def __init__(self, observer: Observer | None = None) -> None:
        self.observer = observer

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        ctx = RequestContext()
        request[CONTEXT_KEY] = ctx
        observer = self.observer
        if observer is not None:
            ctx.on_authenticated = lambda: observer.begin(request, ctx)
            ctx.on_unauthenticated = lambda: observer.failed_authentication(
                request, ctx, authentication_methods(request)
            )
            ctx.on_response_started = lambda response: observer.response_started(ctx, response)
        token = _CURRENT.set(ctx)
        try:
            response = await handler(request)
            if observer is not None and not ctx.response_seen:
                # A plain response is prepared after the middlewares return; its status
                # and body are known now.
                observer.response_started(ctx, response)
            return response
        finally:
            if observer is not None:
                observer.finish(ctx)
            _CURRENT.reset(token)


async def on_response_prepare(request: web.Request, response: web.StreamResponse) -> None:
    """Headers every response carries (``Audit-Id``, the recorded ``Warning``s), and the
    moment the audit log learns the response started."""
    ctx = request.get(CONTEXT_KEY)
    if ctx is None:
        return
    response.headers["Audit-Id"] = ctx.audit_id
    for text in ctx.warnings.texts:
        response.headers.add("Warning", warning_header(text))
    ctx.warnings.texts = []  # a response that is prepared twice does not repeat them
    if ctx.audit is not None and ctx.on_response_started is not None:
        ctx.on_response_started(response)
