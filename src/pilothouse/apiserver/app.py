"""The aiohttp application: routing, authentication and error handling.

A single catch-all route hands paths to the right handler: health and version,
discovery, OpenAPI, and resource requests (parsed by :mod:`request`). Every
error becomes a ``metav1.Status``; an unexpected exception is logged with its
traceback and answered as a 500 Status without one, so no client ever sees a
stack trace.
"""

from __future__ import annotations

import logging
import platform
import sys
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import typedefs, web

from pilothouse import __version__
from pilothouse.api import errors, resources
from pilothouse.apiserver import negotiation, requestcontext
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


def status_response(err: errors.StatusError) -> web.Response:
    return web.Response(
        body=negotiation.status_body(err), status=err.code, content_type="application/json"
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
        ready: Callable[[], bool],
        datastore_ok: Callable[[], bool] = lambda: True,
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
        self.ready = ready
        self.datastore_ok = datastore_ok  # upstream's "etcd" check of /readyz
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

    def build(self) -> web.Application:
        app = web.Application(
            middlewares=(*self.middlewares, error_middleware, self._auth_middleware),
            client_max_size=4 * 1024 * 1024,
        )
        app.on_response_prepare.append(requestcontext.on_response_prepare)
        self.openapi.add_routes(app.router)
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        return app

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
        if path in ("/healthz", "/livez", "/readyz") or path.endswith("/ping"):
            return self._health(request, path)
        if path == "/version":
            return web.Response(body=self._version, content_type="application/json")
        extra = self.extra_routes.get(path) or self._static_route(path)
        if extra is not None:
            return await extra(request)
        history_of = history.object_path(path)
        if history_of is not None and self.history_api is not None:
            return await self.history_api.handle(request, history_of)
        if self.aggregated is not None:
            proxied = self.aggregated(path)
            if proxied is not None:
                return await proxied(request)
        try:
            info = request_info.parse(path, self.registry)
        except request_info.NotAResource:
            if request.method != "GET":
                raise errors.method_not_allowed("") from None
            return await self.discovery.handle(request)
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

    def _health(self, request: web.Request, path: str) -> web.Response:
        checks = {"ping": True, "log": True, "etcd": True}
        if path == "/readyz":
            checks["etcd"] = self.datastore_ok()
            checks["informer-sync"] = self.ready()
        ok = all(checks.values())
        reasons = {"etcd": "the datastore is not reachable", "informer-sync": "not ready yet"}
        if "verbose" in request.query:
            lines = [f"[+]{c} ok" if passed else f"[-]{c} failed" for c, passed in checks.items()]
            text = "\n".join(lines) + (
                "\n" + path[1:] + " check passed\n" if ok else "\n" + path[1:] + " check failed\n"
            )
        else:
            failed = [f"[-]{c} failed: {reasons[c]}" for c, passed in checks.items() if not passed]
            text = "ok" if ok else "\n".join(failed) + "\n" + path[1:] + " check failed"
        return web.Response(text=text, status=200 if ok else 503, content_type="text/plain")
