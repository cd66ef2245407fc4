"""Requests from the components in this process, served without a socket.

The controller manager, the scheduler and the node agent of ``pilothouse server``
send their requests here (:class:`pilothouse.client.inprocess.Transport`) instead of
through the private Unix socket: no HTTP framing, no parser, no aiohttp client.
Each request is still a real :class:`aiohttp.web.Request` handed to the very handler
aiohttp's own connections call — the application's request handler with all of its
middlewares (shedding, metrics, the request context and audit, errors,
authentication and authorization) and routes (flow control, admission) — so what a
component is allowed, how it is queued, audited and counted, and every error answer
are exactly what the socket gave it. Its identity too: a request here is private
as one on the Unix socket is (:data:`authenticator.IN_PROCESS`), so without a token
it is the server's own ``system:apiserver`` and with one whoever the token names.

The cut is aiohttp's low-level :class:`aiohttp.web.Server`: its public
``request_factory`` (the application's, which knows the body size limit) builds the
request, its public ``request_handler`` (the application's routing and middleware
chain) serves it, and the response writes into an
:class:`aiohttp.abc.AbstractStreamWriter` of ours (a public ABC) that hands the status,
headers and body chunks to the caller in process. What ``web.Request`` reads of
aiohttp's connection handler (``transport``, ``ssl_context``, ``peername``,
``sockname``) and the message tuple it is built from are the only undocumented
shapes relied on; ``tests/apiserver/test_inprocess.py`` fails loudly if they change.

Concurrency: every request is its own task, as aiohttp runs one per request, so a
long-running one (a watch) is tracked and ended by the server's shutdown like any
other, and a caller's cancellation never reaches into the middle of a handler that
has not answered yet (a write finishes, its answer unread, as over a socket). A
caller leaving a stream (a watch) early cancels the handler's task, as a closed
connection ends a watch. Streams are flow-controlled: a handler's write waits while
more than :data:`HIGH_WATER` bytes are unread, so a watch whose reader stalls is cut
off by the watch's own slow-reader rule, as on a socket.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping

from aiohttp import abc, streams, web
from aiohttp.http import HttpVersion11, RawRequestMessage
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from pilothouse.api import errors
from pilothouse.apiserver import negotiation
from pilothouse.apiserver.authn import authenticator
from pilothouse.client import inprocess

log = logging.getLogger(__name__)

# Unread bytes of one answer above which the handler's writes wait for the reader.
HIGH_WATER = 1 << 20


class _Connection(asyncio.Transport):
    """``request.transport`` of an in-process request: private (no socket, no
    certificate), and closing it cuts the request's answer off."""

    def __init__(self, exchange: _Exchange) -> None:
        super().__init__(extra={authenticator.IN_PROCESS: True})
        self._exchange = exchange

    def is_closing(self) -> bool:
        return self._exchange.closed

    def close(self) -> None:
        self._exchange.cut()

    def abort(self) -> None:
        self._exchange.cut()

    def pause_reading(self) -> None:
        """The body is fed whole before the handler runs: nothing to pause."""

    def resume_reading(self) -> None:
        """See :meth:`pause_reading`."""


class _Protocol:
    """What ``web.Request`` reads of aiohttp's connection handler, and what the body's
    ``StreamReader`` calls on it for flow control (nothing to do: the body is fed whole)."""

    ssl_context = None
    peername = None  # request.remote: None, as no address sent it
    sockname = None
    connected = True
    _reading_paused = False

    def __init__(self, transport: _Connection) -> None:
        self.transport = transport

    def pause_reading(self) -> None:
        """Never needed: see the class docstring."""

    def resume_reading(self, resume_parser: bool = True) -> None:
        """Called as the body's end is fed; nothing to resume."""


class _Exchange(abc.AbstractStreamWriter):
    """One request's answer: the handler's response writes into it (the writer side),
    the caller reads it (:class:`pilothouse.client.inprocess.Answer`)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.status = 0
        self.headers: Mapping[str, str] = CIMultiDict()
        self.closed = False  # cut off, or the caller went away
        self.eof = False
        self._loop = loop
        self._started: asyncio.Future[None] = loop.create_future()
        self._chunks: collections.deque[bytes] = collections.deque()
        self._unread = 0
        self._readable: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None

    # --- the handler's side (AbstractStreamWriter) ---------------------------------
    async def write_headers(self, status_line: str, headers: CIMultiDict[str]) -> None:
        self.status = int(status_line.split(" ", 2)[1])
        self.headers = headers
        if not self._started.done():
            self._started.set_result(None)

    async def write(self, chunk: bytes | bytearray | memoryview) -> None:
        if self.closed:
            raise inprocess.Cut("the in-process client went away")
        if not chunk:
            return
        data = bytes(chunk)
        self.output_size += len(data)
        self.buffer_size += len(data)
        self._chunks.append(data)
        self._unread += len(data)
        self._wake_reader()
        while self._unread > HIGH_WATER and not self.closed:
            self._drained = self._loop.create_future()
            await self._drained
        if self.closed:
            raise inprocess.Cut("the in-process client went away")

    async def write_eof(self, chunk: bytes = b"") -> None:
        if chunk:
            await self.write(chunk)
        self.eof = True
        self._wake_reader()

    async def drain(self) -> None:
        """Writes wait for the reader themselves (see :meth:`write`)."""

    def enable_compression(self, encoding: str = "deflate", strategy: int | None = None) -> None:
        # Our client never asks for an encoding and no handler forces one; a body that
        # claimed one it does not have would be worse than this error.
        raise NotImplementedError("in-process answers are never compressed")

    def enable_chunking(self) -> None:
        """Chunks are handed over as they are written: no framing to add."""

    # --- the caller's side (client.inprocess.Answer) -------------------------------
    async def started(self) -> None:
        await self._started

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.chunks()])

    async def chunks(self) -> AsyncIterator[bytes]:
        while True:
            while self._chunks:
                chunk = self._chunks.popleft()
                self._unread -= len(chunk)
                if self._drained is not None and self._unread <= HIGH_WATER // 2:
                    _resolve(self._drained)
                    self._drained = None
                yield chunk
            if self.eof:
                return
            if self.closed:
                raise inprocess.Cut("the API server ended the answer")
            self._readable = self._loop.create_future()
            await self._readable

    # --- both -----------------------------------------------------------------------
    def cut(self) -> None:
        """End the exchange: the handler's next write fails, the caller's read too."""
        if self.eof or self.closed:
            return
        self.closed = True
        if not self._started.done():
            self._started.set_exception(inprocess.Cut("the API server gave no answer"))
            self._started.exception()  # retrieved: a caller that left never awaits it
        self._wake_reader()
        if self._drained is not None:
            _resolve(self._drained)

    def _wake_reader(self) -> None:
        if self._readable is not None:
            _resolve(self._readable)
            self._readable = None


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _status_response(err: errors.StatusError) -> web.Response:
    return web.Response(
        body=negotiation.status_body(err), status=err.code, content_type="application/json"
    )


class InProcess:
    """Serves the requests of this process's components on the server's handler
    (a :class:`pilothouse.client.inprocess.Transport`); see the module docstring."""

    def __init__(self, server: web.Server) -> None:
        self._server = server
        self._loop = asyncio.get_running_loop()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    @contextlib.asynccontextmanager
    async def open(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None,
        headers: Mapping[str, str],
        body: bytes | None,
    ) -> AsyncIterator[inprocess.Answer]:
        if self._closed:
            raise inprocess.Refused("the API server takes no more in-process requests")
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            # Futures and tasks of the server's loop cannot be awaited from another:
            # a client on another loop (a test's, a thread's) uses the Unix socket.
            raise RuntimeError("the in-process transport serves only its server's event loop")
        exchange = _Exchange(loop)
        task = loop.create_task(self._serve(exchange, method, path, query, headers, body))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        try:
            await exchange.started()
        except BaseException:
            # The caller left (cancelled, timed out) before the answer began: the
            # handler finishes its work, as behind a closed connection, and its
            # answer goes nowhere.
            exchange.cut()
            raise
        try:
            yield exchange
        finally:
            if not exchange.eof:
                # The caller left a stream (a watch) before its end: as a connection
                # closing, the handler ends.
                exchange.cut()
                task.cancel()

    async def _serve(
        self,
        exchange: _Exchange,
        method: str,
        path: str,
        query: Mapping[str, str] | None,
        headers: Mapping[str, str],
        body: bytes | None,
    ) -> None:
        try:
            await self._handle(exchange, method, path, query, headers, body)
        except inprocess.Cut:
            pass  # the caller went away; nothing to answer
        except Exception:
            log.exception("internal error serving %s %s in process", method, path)
        finally:
            exchange.cut()  # a no-op once the answer ended

    async def _handle(
        self,
        exchange: _Exchange,
        method: str,
        path: str,
        query: Mapping[str, str] | None,
        headers: Mapping[str, str],
        body: bytes | None,
    ) -> None:
        protocol = _Protocol(_Connection(exchange))
        url = URL(path)
        if query:
            url = url.extend_query(query)
        fields = CIMultiDict(headers)
        fields.setdefault("Host", "localhost")
        payload: streams.StreamReader = streams.EMPTY_PAYLOAD
        if body is not None:
            fields["Content-Length"] = str(len(body))
            # Fed whole, under the reader's high-water mark: the protocol is never paused.
            payload = streams.StreamReader(
                protocol,  # type: ignore[arg-type]
                max(len(body), 1 << 16),
                loop=asyncio.get_running_loop(),
            )
            payload.feed_data(body)
            payload.feed_eof()
        message = RawRequestMessage(
            method,
            url.raw_path_qs,
            HttpVersion11,
            CIMultiDictProxy(fields),
            tuple((k.encode(), v.encode()) for k, v in fields.items()),
            False,  # should_close
            None,  # compression
            False,  # upgrade
            False,  # chunked
            url,
        )
        task = asyncio.current_task()
        assert task is not None
        request = self._server.request_factory(message, payload, protocol, exchange, task)  # type: ignore[arg-type]
        try:
            response = await self._server.request_handler(request)
        except web.HTTPException as exc:
            response = exc  # aiohttp answers a raised HTTPException as a response
        except (asyncio.CancelledError, inprocess.Cut):
            raise
        except Exception:
            # What the middlewares did not turn into a Status (they turn everything
            # from the handlers into one): as aiohttp's 500, without a traceback.
            log.exception("internal error serving %s %s in process", method, path)
            if exchange.output_size:
                return  # the answer had begun: cut off
            response = _status_response(
                errors.internal("an unexpected error happened; the server log has details")
            )
        await response.prepare(request)
        await response.write_eof()

    def close(self) -> None:
        """Take no more requests (those in flight go on)."""
        self._closed = True

    async def shutdown(self, timeout: float) -> None:
        """Take no more requests; let those in flight finish for at most ``timeout``
        seconds, then cancel what remains."""
        self.close()
        tasks = list(self._tasks)
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=1.0)

    def __len__(self) -> int:
        """Requests being served now."""
        return len(self._tasks)
