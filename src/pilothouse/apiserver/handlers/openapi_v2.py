"""``/openapi/v2``: the swagger 2.0 document, as JSON or gnostic protobuf.

As kube-openapi's ``handler`` serves it for kube-apiserver:

* the ``Accept`` header is negotiated clause by clause in order of preference:
  ``application/json`` (also the answer to no ``Accept`` or ``*/*``), or the protobuf
  as ``application/com.github.proto-openapi.spec.v2@v1.0+protobuf`` (the spelling
  client-go sends) or ``…spec.v2.v1.0+protobuf`` — both answered with the latter
  ``Content-Type``; anything else is 406 with an empty body;
* ``ETag`` is the quoted upper-case SHA-512 of the JSON, shared by both encodings
  (``Vary: Accept``); ``Last-Modified`` is when the document was built; a matching
  ``If-None-Match`` (or, without one, a not-older ``If-Modified-Since``) is 304;
* bodies of 1400 bytes or more are gzipped for clients that accept it
  (``Vary: Accept-Encoding``), as the gzip handler in front of it does. No
  ``Cache-Control`` (upstream sends none here). Range requests are not served.

kubectl 1.32 reads this document (protobuf only) for client-side validation —
which ``create``/``apply -f`` of a ``kind: List`` need, because no PATCH operation
names ``v1 List`` — for ``explain --output=plaintext-openapiv2``, and to find the
patch type (``consumes``) and merge keys in client-side apply when v3 fails.

The document is the v3 documents merged (:mod:`openapi_v2_convert`), so custom
resources and aggregated APIs appear in it too. It is built on first request, in a
worker thread so the event loop keeps serving, and kept as encoded bytes with their
gzipped forms; a change to the v3 documents (a CRD, the resource table, an
aggregated API) bumps their generation and the next request builds anew.
Concurrent first requests share one build (an asyncio lock around it).
"""

from __future__ import annotations

import asyncio
import email.utils
import gzip
import hashlib
import time
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from aiohttp import web

from pilothouse.apiserver.handlers import openapi_v2_convert, openapi_v2_proto

PATH = "/openapi/v2"
JSON = "application/json"
PROTOBUF = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
_PROTOBUF_SUBTYPES = (
    "com.github.proto-openapi.spec.v2@v1.0+protobuf",
    "com.github.proto-openapi.spec.v2.v1.0+protobuf",
)
GZIP_MIN = 1400  # gziphandler.DefaultMinSize


class V3Documents(Protocol):
    """Where the v2 document comes from: the v3 group-version documents."""

    def generation(self) -> tuple[int, int]:
        """Changes whenever any document may have."""

    def documents(self) -> list[dict[str, Any]]:
        """Every group-version document, as dicts."""


@dataclass(frozen=True)
class Encoded:
    """One encoding of the document and its gzipped form."""

    body: bytes
    gzipped: bytes


@dataclass(frozen=True)
class Built:
    """The document in both encodings, with what caching needs."""

    json: Encoded
    protobuf: Encoded
    etag: str
    last_modified: float
    seconds: float  # how long building took


def build(documents: list[dict[str, Any]], *, version: str = "unversioned") -> Built:
    """Convert and encode; CPU-bound (about a second for the built-in API)."""
    started = time.monotonic()
    doc = openapi_v2_convert.document(documents, version=version)
    body = orjson.dumps(doc)
    proto = openapi_v2_proto.document(doc)
    return Built(
        json=Encoded(body, gzip.compress(body, compresslevel=6, mtime=0)),
        protobuf=Encoded(proto, gzip.compress(proto, compresslevel=6, mtime=0)),
        etag=f'"{hashlib.sha512(body).hexdigest().upper()}"',
        last_modified=time.time(),
        seconds=time.monotonic() - started,
    )


class OpenAPIV2:
    """Serves ``GET /openapi/v2`` from a lazily built, cached document."""

    def __init__(self, source: V3Documents, *, version: str = "unversioned") -> None:
        self.source = source
        self.version = version
        self._building = asyncio.Lock()  # concurrent first requests share one build
        self._built: Built | None = None
        self._generation: tuple[int, int] | None = None

    async def get(self) -> Built:
        """The document, built now if the v3 documents changed since it was.

        The v3 dicts are gathered here, on the event loop that owns the CRD state
        they are built from (a few tens of milliseconds); converting and encoding
        (a few hundred) run in a worker thread."""
        generation = self.source.generation()
        if self._built is not None and self._generation == generation:
            return self._built
        async with self._building:
            if self._built is None or self._generation != generation:
                documents = self.source.documents()
                self._built = await asyncio.to_thread(build, documents, version=self.version)
                self._generation = generation
            return self._built

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get(PATH, self.handle)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        chosen = negotiate(request.headers.get("Accept", ""))
        if chosen is None:
            return web.Response(status=406, headers={"Vary": "Accept"})
        built = await self.get()
        encoded = built.json if chosen == JSON else built.protobuf
        headers = {
            "Content-Type": chosen,
            "ETag": built.etag,
            "Last-Modified": email.utils.formatdate(built.last_modified, usegmt=True),
            "Vary": "Accept",
        }
        if _not_modified(request, built):
            return web.Response(status=304, headers=headers)
        body = encoded.body
        if len(body) >= GZIP_MIN and _accepts_gzip(request.headers.get("Accept-Encoding", "")):
            body = encoded.gzipped
            headers["Content-Encoding"] = "gzip"
            headers["Vary"] = "Accept, Accept-Encoding"
        return web.Response(body=body, headers=headers)


def negotiate(accept: str) -> str | None:
    """The media type to answer with, as goautoneg and kube-openapi choose it."""
    clauses: list[tuple[float, bool, bool, int, str, str]] = []
    for index, raw in enumerate((accept or "*/*").split(",")):
        media, *params = (part.strip() for part in raw.split(";"))
        kind, _, sub = media.partition("/")
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if not kind:
            continue
        clauses.append((-q, kind == "*", sub == "*", index, kind.lower(), sub.lower()))
    for *_, kind, sub in sorted(clauses):
        if kind not in ("application", "*"):
            continue
        if sub in ("json", "*"):
            return JSON
        if sub in _PROTOBUF_SUBTYPES:
            return PROTOBUF
    return None


def _accepts_gzip(header: str) -> bool:
    for clause in header.split(","):
        coding, *params = (p.strip() for p in clause.split(";"))
        if coding.lower() == "gzip":
            return not any(p.replace(" ", "") in ("q=0", "q=0.0") for p in params)
    return False


def _not_modified(request: web.Request, built: Built) -> bool:
    wanted = request.headers.get("If-None-Match")
    if wanted is not None:
        return wanted.strip() == "*" or built.etag in (t.strip() for t in wanted.split(","))
    since = request.headers.get("If-Modified-Since")
    if since:
        try:
            parsed = email.utils.parsedate_to_datetime(since).timestamp()
        except (TypeError, ValueError):
            return False
        return int(built.last_modified) <= parsed
    return False
