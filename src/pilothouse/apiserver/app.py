"""The aiohttp application: routing, authentication and error handling.

A single catch-all route hands paths to the right handler: health and version,
discovery, OpenAPI, and resource requests (parsed by :mod:`request`). Every
error becomes a ``metav1.Status``; an unexpected exception is logged with its
traceback and answered as a 500 Status without one, so no client ever sees a
stack trace.

Each request runs as its own aiohttp task. After authentication and authorization
it takes a seat on its priority level (:mod:`flowcontrol`; 429 when the level is
full) unless it is long-running; long-running requests (watches, exec, attach,
port-forward, ``logs -f``) are tracked instead, so a shutdown can end them all.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import platform
import random
import sys
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import http_exceptions as aiohttp_exceptions
from aiohttp import typedefs, web

from pilothouse import __version__
from pilothouse.api import errors, resources
from pilothouse.apiserver import flowcontrol, health, lanes, negotiation, requestcontext
from pilothouse.apiserver import request as request_info
from pilothouse.apiserver.authn import authenticator as authn
from pilothouse.apiserver.authn import user as user_module
from pilothouse.apiserver.authz import attributes, impersonation
from pilothouse.apiserver.authz import authorizer as authz
from pilothouse.apiserver.handlers import discovery, history, openapi, rest
from pilothouse.apiserver.registry import write_origin
from pilothouse.storage import interface as storage
from pilothouse.storage import value as storage_value

log = logging.getLogger(__name__)

KUBERNETES_MINOR = "32"
GIT_VERSION = f"v1.{KUBERNETES_MINOR}.0+pilothouse"

# Paths with their own admission check: a joining node proves itself with its token in
# the join handler, and the CA it must pin is public.
UNAUTHENTICATED_PATHS = frozenset({"/pilothouse/v1/cacerts", "/pilothouse/v1/join"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Serves the resources of a group-version that are not kept in the store
# (``Resource.stored`` is False), as an aggregated API server would.
ResourceHandler = Callable[[web.Request, request_info.RequestInfo], Awaitable[web.StreamResponse]]

# The request's authenticated (or impersonated) user; also in user_module.current().
USER_KEY: web.RequestKey[user_module.UserInfo] = web.RequestKey("user", user_module.UserInfo)


def version_info() -> dict[str, str]:
    return {
        "major": "1",
        "minor": KUBERNETES_MINOR,
        "gitVersion": GIT_VERSION,
        "gitCommit": __version__,
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": f"python{sys.version_info.major}.{sys.version_info.minor}",
        "compiler": platform.python_implementation().lower(),
        "platform": f"{platform.system().lower()}/{_arch()}",
    }


def _arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


_TOO_MANY = negotiation.status_body(flowcontrol.too_many_requests())
_TOO_MANY_HEADERS = {
    "Content-Type": "application/json",
    "Retry-After": str(flowcontrol.RETRY_AFTER_SECONDS),
}


# Connections told to retry after a moment, and when that moment comes.
_HELD_OFF: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()


def _hold_off(transport: Any) -> None:
    """Remember that this connection was told to retry after ``RETRY_AFTER_SECONDS``,
    and hold it a random part of that again: a flood's connections refused together
    would otherwise come back together, second after second, and their refusals fill
    the event loop at once (a burst of a hundred milliseconds every second, felt by
    every other request as latency)."""
    if transport is not None:
        wait = flowcontrol.RETRY_AFTER_SECONDS * (1 + random.random() / 2)
        _HELD_OFF[transport] = time.monotonic() + wait


async def _wait_out(transport: Any) -> None:
    """A request that comes sooner than its connection was told to retry waits until
    then: client-go waits of its own accord; a client that does not would otherwise
    make the server refuse (and parse) requests as fast as it can send them."""
    until = _HELD_OFF.pop(transport, 0.0) if transport is not None else 0.0
    wait = until - time.monotonic()
    if wait > 0:
        await asyncio.sleep(wait)


def status_response(err: errors.StatusError) -> web.Response:
    headers = {}
    wait = errors.retry_after(err)
    if wait is not None and (err.code == 429 or err.code >= 500):
        headers["Retry-After"] = str(wait)
    return web.Response(
        body=negotiation.status_body(err),
        status=err.code,
        content_type="application/json",
        headers=headers,
    )


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except errors.StatusError as err:
        return status_response(err)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        reason = {
            404: errors.NOT_FOUND,
            405: errors.METHOD_NOT_ALLOWED,
            413: errors.REQUEST_ENTITY_TOO_LARGE,
            415: errors.UNSUPPORTED_MEDIA_TYPE,
        }.get(exc.status, errors.BAD_REQUEST if exc.status < 500 else errors.INTERNAL_ERROR)
        return status_response(errors.StatusError(exc.status, reason, exc.reason or reason))
    except ConnectionResetError:
        raise
    except storage.StoreError as exc:
        return status_response(store_status(exc))
    except Exception as exc:
        log.exception("internal error serving %s %s", request.method, request.path_qs)
        ctx = request.get(requestcontext.CONTEXT_KEY)
        if ctx is not None:
            ctx.panic = exc  # the audit log records this request's stage as Panic
        return status_response(
            errors.internal("an unexpected error happened; the server log has details")
        )


def store_status(exc: storage.StoreError) -> errors.StatusError:
    """The Status for a store failure that reached the handler: the datastore being
    away is a 503 (retry), a deadline a 504, as upstream answers a timed-out request."""
    if isinstance(exc, storage.StoreUnavailableError):
        log.warning("datastore unavailable: %s", exc)
        return errors.StatusError(
            503,
            errors.SERVICE_UNAVAILABLE,
            f"the datastore is unavailable, try again later: {exc}",
            details={"retryAfterSeconds": 1},
        )
    if isinstance(exc, storage.StoreTimeoutError):
        log.warning("datastore timeout: %s", exc)
        return errors.StatusError(
            504,
            errors.TIMEOUT,
            "Timeout: request did not complete within requested timeout - context deadline"
            " exceeded",
            details={"retryAfterSeconds": 1},
        )
    if isinstance(exc, storage_value.TransformError):
        log.error("stored data cannot be read: %s", exc)
        return errors.internal(str(exc))
    log.error("store error: %s", exc)
    return errors.internal(f"storage error: {exc}")


class _ClientProtocolErrors(logging.Filter):
    """aiohttp logs a request it cannot even parse (a bad method, request line or
    header) with a traceback at ERROR; that is the client's fault, not the server's,
    and aiohttp already answers it with 400. Logged at DEBUG instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, aiohttp_exceptions.HttpProcessingError) and exc.code < 500:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


def quiet_client_protocol_errors() -> None:
    """Install the filter above on aiohttp's server logger (once per process)."""
    logger = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, _ClientProtocolErrors) for f in logger.filters):
        logger.addFilter(_ClientProtocolErrors())


def _route_path(request: web.Request) -> str:
    """The path without trailing slashes: upstream's request-info parser trims them
    (``/version/``, which kr8s asks for, is ``/version``)."""
    return request.path.rstrip("/") or "/"


class APIApp:
    """Builds the aiohttp application around the API's handlers."""

    def __init__(
        self,
        *,
        registry: resources.Registry,
        resource_api: rest.ResourceAPI,
        discovery_docs: discovery.Discovery,
        openapi_docs: openapi.OpenAPIV3,
        authenticator: authn.RequestAuthenticator,
        authorizer: authz.Authorizer,
        health_checks: Callable[[], list[health.Check]],
        flow_control: flowcontrol.FlowControl | None = None,
        extra_routes: dict[str, Handler] | None = None,
        api_services: dict[tuple[str, str], ResourceHandler] | None = None,
        history_api: history.HistoryAPI | None = None,
        static_routes: dict[str, Handler] | None = None,
        middlewares: list[typedefs.Middleware] | None = None,
        aggregated: Callable[[str], Handler | None] | None = None,
    ) -> None:
        self.registry = registry
        self.resource_api = resource_api
        self.discovery = discovery_docs
        self.openapi = openapi_docs
        self.authenticator = authenticator
        self.authorizer = authorizer
        self.health_checks = health_checks
        self.flow_control = flow_control or flowcontrol.FlowControl()
        self.extra_routes = extra_routes or {}
        self.api_services = api_services or {}
        self.history_api = history_api
        # Path prefix -> handler for public static pages (the dashboard's /ui/): served
        # before authentication, as they hold no data; the pages then call the API
        # with the token the user logs in with.
        self.static_routes = static_routes or {}
        self.middlewares = middlewares or []  # outermost, before error handling (metrics)
        # Paths another API server answers (APIServices with a Service): the aggregator.
        self.aggregated = aggregated
        # Upstream writes /version indented and without a trailing newline
        # (responsewriters.WriteRawJSON), unlike API objects.
        self._version = orjson.dumps(version_info(), option=orjson.OPT_INDENT_2)
        # The tasks serving long-running requests now (ended by end_long_running).
        self.long_running: set[asyncio.Task[Any]] = set()

    def build(self) -> web.Application:
        app = web.Application(
            middlewares=(
                lanes.middleware,
                self._shed_middleware,
                *self.middlewares,
                error_middleware,
                self._auth_middleware,
            ),
            client_max_size=4 * 1024 * 1024,
        )
        app.on_response_prepare.append(requestcontext.on_response_prepare)
        self.openapi.add_routes(app.router)
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        return app

    @web.middleware
    async def _shed_middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Under overload, the cheapest 429: a connection whose client certificate alone
        decides its priority level, that level full, a request that is neither a health
        probe (exempt, as upstream's ``probes`` FlowSchema) nor long-running — answered before metrics, authentication or routing spend anything on it.
        Everything else goes the whole way (and may still get its 429 from
        :meth:`dispatch`)."""
        await _wait_out(request.transport)
        user = self.authenticator.x509.known(request.transport)
        if user is not None:
            level = flowcontrol.level_of_identity(
                user.name, (*user.groups, flowcontrol.AUTHENTICATED)
            )
            query = request.query_string
            path = request.path
            if (
                level is not None
                and not flowcontrol.is_probe(path)
                and self.flow_control.shed(level)
                and "watch=" not in query
                and "follow=" not in query
                and not path.endswith(("/exec", "/attach", "/portforward", "/proxy"))
            ):
                _hold_off(request.transport)
                return web.Response(body=_TOO_MANY, status=429, headers=_TOO_MANY_HEADERS)
        return await handler(request)

    @web.middleware
    async def _auth_middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Authenticate, impersonate, authorize — then serve as that user."""
        path = _route_path(request)
        if path in UNAUTHENTICATED_PATHS or self._static_route(path) is not None:
            return await handler(request)
        ctx = request.get(requestcontext.CONTEXT_KEY)
        try:
            user = self.authenticator.authenticate(
                transport=request.transport, headers=request.headers
            )
        except errors.StatusError:
            if ctx is not None:
                ctx.unauthenticated()  # audited as a failed authentication
            raise
        if ctx is not None:
            ctx.authenticated(user)  # the audit log starts here, with who asked
        if impersonation.requested(request.headers):
            user = impersonation.impersonate(user, request.headers, self.authorizer)
            if ctx is not None:
                ctx.impersonating(user)
        history_of = history.object_path(path)
        if history_of is not None:
            # An object's history is authorized exactly as a GET of the object.
            attrs = attributes.from_request(user, "GET", history_of, {})
        else:
            attrs = attributes.from_request(user, request.method, path, request.query)
        allowed, reason = self.authorizer.authorize(attrs)
        requestcontext.add_annotation(
            "authorization.k8s.io/decision", "allow" if allowed else "forbid"
        )
        requestcontext.add_annotation("authorization.k8s.io/reason", reason)
        if not allowed:
            raise authz.forbidden(attrs, reason)
        request[USER_KEY] = user
        token = user_module.set_current(user)
        attrs_token = attributes.set_current(attrs)
        origin_token = write_origin.begin_request(request.method, request.query, request.headers)
        try:
            return await handler(request)
        finally:
            write_origin.end_request(origin_token)
            attributes.reset_current(attrs_token)
            user_module.reset_current(token)

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        path = _route_path(request)
        if path.split("/", 2)[1] in health.ENDPOINTS:
            return health.handle(request, path, self.health_checks())
        if path == "/version":
            return web.Response(body=self._version, content_type="application/json")
        info: request_info.RequestInfo | None = None
        extra = self.extra_routes.get(path) or self._static_route(path)
        if extra is None and self.history_api is not None:
            history_of = history.object_path(path)
            if history_of is not None:
                extra = functools.partial(self._history, history_of)
        proxied = None
        if extra is None and self.aggregated is not None:
            proxied = self.aggregated(path)  # an aggregated API's, served elsewhere
        if extra is None and proxied is None:
            try:
                info = request_info.parse_once(request, path, self.registry)
            except request_info.NotAResource:
                if request.method != "GET":
                    raise errors.method_not_allowed("") from None
        if info is not None and flowcontrol.is_long_running(
            watch=info.legacy_watch or request.query.get("watch") in ("true", "1"),
            subresource=info.subresource,
            follow=request.query.get("follow") in ("true", "1"),
        ):
            return await self._long_running(request, info)
        if proxied is not None and request.query.get("watch") in ("true", "1"):
            return await proxied(request)  # long-running: takes no seat
        user = request.get(USER_KEY)
        level = flowcontrol.classify(
            user=user.name if user else "",
            groups=user.groups if user else (),
            path=path,
            resource=info.resource.plural if info else "",
            namespace=info.namespace if info else "",
        )
        async with await self.flow_control.acquire(level):
            if extra is not None:
                return await extra(request)
            if proxied is not None:
                return await proxied(request)
            if info is None:
                return await self.discovery.handle(request)
            return await self._resource(request, info)

    async def _long_running(
        self, request: web.Request, info: request_info.RequestInfo
    ) -> web.StreamResponse:
        task = asyncio.current_task()
        assert task is not None
        self.long_running.add(task)
        try:
            return await self._resource(request, info)
        finally:
            self.long_running.discard(task)

    async def _resource(
        self, request: web.Request, info: request_info.RequestInfo
    ) -> web.StreamResponse:
        if not info.resource.stored:
            served = self.api_services.get((info.resource.group, info.resource.version))
            if served is None:
                raise errors.service_unavailable(
                    "the server is currently unable to handle the request"
                )
            return await served(request, info)
        return await self.resource_api.handle(request, info)

    def _static_route(self, path: str) -> Handler | None:
        for prefix, handler in self.static_routes.items():
            if path == prefix or path.startswith(prefix + "/"):
                return handler
        return None

    async def _history(self, object_path: str, request: web.Request) -> web.StreamResponse:
        assert self.history_api is not None
        return await self.history_api.handle(request, object_path)

    async def end_long_running(self, timeout: float) -> None:
        """Cancel what still serves a long-running request (their handlers close their
        streams as they unwind) and wait for them, at most ``timeout`` seconds."""
        tasks = list(self.long_running)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
