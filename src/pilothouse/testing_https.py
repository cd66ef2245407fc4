"""HTTPS servers with a CA of their own, for tests and benchmarks of what the API
server calls out to: admission webhooks and extension API servers.

:class:`HTTPSServer` runs an aiohttp application on its own event loop in a daemon
thread (so synchronous tests, kubectl in a subprocess, and asyncio tests alike can
use it), serving a certificate its own CA signed for the names it is given.
:func:`admission_webhook` makes the handler of an admission webhook from a plain
function of the ``AdmissionRequest``; :func:`allow`, :func:`deny` and
:func:`json_patch` build its answers. The extension API server lives in
:mod:`pilothouse.testing_apiserver`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import ssl
import tempfile
import threading
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from pilothouse.apiserver.aggregator import frontproxy

Review = dict[str, Any]
ReviewHandler = Callable[[Review], Awaitable[Review] | Review]


class HTTPSServer:
    """An aiohttp app served over TLS on a free port, from a background thread."""

    def __init__(
        self,
        app: web.Application,
        *,
        host: str = "127.0.0.1",
        hostnames: list[str] | None = None,
        ips: list[str] | None = None,
        client_ca: bytes | None = None,
    ) -> None:
        self.app = app
        self.host = host
        self.ca = frontproxy.new_ca(f"test-https-ca-{uuid.uuid4().hex[:8]}")
        names = hostnames or ["localhost"]
        addresses = ips if ips is not None else ([host] if host not in ("0.0.0.0", "::") else [])
        self.cert = frontproxy.issue(self.ca, names[0], server=True, hostnames=names, ips=addresses)
        self._dir = tempfile.TemporaryDirectory(prefix="pilothouse-https-")
        cert_path = Path(self._dir.name) / "tls.crt"
        key_path = Path(self._dir.name) / "tls.key"
        cert_path.write_bytes(self.cert.cert_pem)
        key_path.write_bytes(self.cert.key_pem)
        self.ssl = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ssl.load_cert_chain(cert_path, key_path)
        if client_ca is not None:
            self.ssl.load_verify_locations(cadata=client_ca.decode())
            self.ssl.verify_mode = ssl.CERT_OPTIONAL
        with socket.socket() as s:
            s.bind((host if host != "0.0.0.0" else "127.0.0.1", 0))
            self.port: int = s.getsockname()[1]
        self.loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._run, name="https-test-server", daemon=True)
        self._started: Future[None] = Future()

    @property
    def ca_pem(self) -> bytes:
        return self.ca.cert_pem

    @property
    def ca_bundle(self) -> str:
        """The CA as a ``caBundle`` field holds it (base64 of the PEM)."""
        return base64.b64encode(self.ca.cert_pem).decode()

    def url(self, path: str = "/") -> str:
        host = "127.0.0.1" if self.host == "0.0.0.0" else self.host
        return f"https://{host}:{self.port}{path}"

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def boot() -> None:
            # Handlers are cancelled when their client goes, as a Go server's request
            # context is: a watch the aggregator dropped ends at once.
            self._runner = web.AppRunner(
                self.app,
                access_log=None,
                handle_signals=False,
                shutdown_timeout=1.0,
                handler_cancellation=True,
            )
            await self._runner.setup()
            site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self.ssl)
            await site.start()

        try:
            self.loop.run_until_complete(boot())
        except BaseException as exc:
            self._started.set_exception(exc)
            return
        self._started.set_result(None)
        self.loop.run_forever()

    def start(self) -> HTTPSServer:
        self._thread.start()
        self._started.result(10)
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            if self._runner is not None:
                runner = self._runner
                with contextlib.suppress(Exception):
                    asyncio.run_coroutine_threadsafe(runner.cleanup(), self.loop).result(10)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
        self._dir.cleanup()

    def __enter__(self) -> HTTPSServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- admission webhooks ---------------------------------------------------------------


def allow(request: Review, **extra: Any) -> Review:
    return {"uid": request["uid"], "allowed": True, **extra}


def deny(request: Review, message: str, *, code: int = 403, reason: str = "Forbidden") -> Review:
    """A refusal as controller-runtime's ``admission.Denied`` words it (403 Forbidden)."""
    status: dict[str, Any] = {"code": code, "message": message}
    if reason:
        status["reason"] = reason
    return {"uid": request["uid"], "allowed": False, "status": status}


def json_patch(request: Review, operations: list[dict[str, Any]], **extra: Any) -> Review:
    return {
        "uid": request["uid"],
        "allowed": True,
        "patchType": "JSONPatch",
        "patch": base64.b64encode(orjson.dumps(operations)).decode(),
        **extra,
    }


def admission_webhook(
    handle: ReviewHandler, *, seen: list[Review] | None = None
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """An aiohttp handler answering AdmissionReviews with ``handle(request) -> response``;
    each request received is appended to ``seen`` when given."""

    async def serve(http: web.Request) -> web.Response:
        review = orjson.loads(await http.read())
        request = review["request"]
        if seen is not None:
            seen.append({**request, "_query": dict(http.query)})
        answer = handle(request)
        if asyncio.iscoroutine(answer):
            answer = await answer
        body = {"apiVersion": review["apiVersion"], "kind": "AdmissionReview", "response": answer}
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    return serve


def webhook_app(
    routes: dict[str, Callable[[web.Request], Awaitable[web.StreamResponse]]],
) -> web.Application:
    app = web.Application()
    for path, handler in routes.items():
        app.router.add_post(path, handler)
    return app
