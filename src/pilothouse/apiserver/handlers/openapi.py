"""``/openapi/v3``: the OpenAPI v3 documents kubectl and client generators read.

As kube-openapi's ``handler3`` serves them:

* ``GET /openapi/v3`` — the index, ``{"paths": {"apis/apps/v1": {"serverRelativeURL":
  "/openapi/v3/apis/apps/v1?hash=<HASH>"}, …}}``, with an ETag;
* ``GET /openapi/v3/<path>`` — one document per group-version (``api/v1``,
  ``apis/apps/v1``) plus the small ones for ``api``, ``apis``, ``apis/<group>`` and
  ``version``. With ``?hash=`` equal to the document's hash the answer is cacheable
  for good (``Cache-Control: public, immutable`` and a one-year ``Expires``, as
  upstream); a stale hash is redirected (301) to the current URL; a matching
  ``If-None-Match`` gets 304; an unknown path 404 with a ``Status``.

Documents are built on first request and kept as encoded bytes (never as dicts),
gzip-compressed once more for clients that accept it. The hash of a document is
not computed from its bytes — that would mean building every document to answer
the index — but from everything the bytes are a function of: the schema file,
the resources of the group-version and this package's own source. It changes
exactly when a document can.

kubectl 1.32 uses these documents to decide that the server validates fields
(``fieldValidation`` on the kind's PATCH operation; otherwise it wants OpenAPI v2
protobuf, which is not served, and fails), for ``kubectl explain`` (schemas found
through the GVK of the resource's GET operation) and for strategic-merge patches
in client-side ``apply``.
"""

from __future__ import annotations

import email.utils
import functools
import gzip
import hashlib
import pathlib
import threading
import time
from typing import Any, Protocol

import orjson
from aiohttp import web

from pilothouse.api import errors, resources, schema
from pilothouse.apiserver.handlers import openapi_parts, openapi_paths, openapi_schemas

PREFIX = "/openapi/v3"
JSON = "application/json"
META = "io.k8s.apimachinery.pkg.apis.meta.v1."
ONE_YEAR = 365 * 24 * 3600
# Compress documents bigger than this for clients that accept gzip (as upstream).
GZIP_OVER = 128 * 1024

_SECURITY = {
    "securitySchemes": {
        "BearerToken": {
            "description": "Bearer Token authentication",
            "in": "header",
            "name": "authorization",
            "type": "apiKey",
        }
    }
}


class CustomDocuments(Protocol):
    """Where the documents of custom resources' group-versions come from (CRDs)."""

    def group_version(
        self, group: str, version: str
    ) -> tuple[dict[str, Any], dict[str, dict[str, Any]]] | None:
        """(paths, component schemas), or None for a group-version of built-in kinds."""

    def key(self, group: str, version: str) -> str:
        """What the group-version's document is a function of (for its hash)."""


def _document(
    paths: dict[str, Any], roots: set[str], schemas: dict[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "components": {
            "schemas": schemas if schemas is not None else openapi_schemas.components(roots),
            **_SECURITY,
        },
        "info": {"title": "Kubernetes", "version": "unversioned"},
        "openapi": "3.0.0",
        "paths": paths,
        "security": [{"BearerToken": []}],
    }


def _simple_get(path: str, op_id: str, tag: str, ref: str, description: str) -> dict[str, Any]:
    return {
        path: {
            "get": {
                "description": description,
                "operationId": op_id,
                "responses": openapi_parts.responses(ref, ("200",)),
                "tags": [tag],
            }
        }
    }


class _Doc:
    """One served document: its hash and, once built, its bytes."""

    __slots__ = ("body", "build", "etag", "gzipped", "key")

    def __init__(self, key: str, build: Any) -> None:
        self.key = key  # what the document is a function of (besides the sources)
        self.build = build
        self.etag = ""
        self.body: bytes | None = None
        self.gzipped: bytes | None = None


class ExternalDocuments(Protocol):
    """Documents of group-versions other API servers serve behind this one
    (aggregated APIServices): listed in the index and served as fetched."""

    generation: int

    def openapi_paths(self) -> dict[str, str]: ...

    def openapi_document(self, path: str) -> tuple[bytes, str] | None: ...


class OpenAPIV3:
    """The ``/openapi/v3`` index and documents for a resource table."""

    def __init__(
        self, registry: resources.Registry, *, custom: CustomDocuments | None = None
    ) -> None:
        self.registry = registry
        self.custom = custom
        self.external: ExternalDocuments | None = None
        self._external_generation = -1
        self._lock = threading.Lock()
        self._docs: dict[str, _Doc] = {}
        self._index: tuple[bytes, str] | None = None
        self._build_table()

    def refresh(self) -> None:
        """The resources or a CRD changed: documents are rebuilt on next request."""
        with self._lock:
            self._build_table()

    def _build_table(self) -> None:
        registry = self.registry
        self._docs = {}
        for group, version in registry.group_versions:
            path = f"apis/{group}/{version}" if group else f"api/{version}"
            members = sorted(repr(r) for r in registry.in_group_version(group, version))
            if self.custom is not None:
                members.append(self.custom.key(group, version))
            self._docs[path] = _Doc("\n".join(members), self._group_version_builder(group, version))
        self._docs["api"] = _Doc("api", self._build_api)
        self._docs["apis"] = _Doc("apis", self._build_apis)
        for group in registry.groups():
            self._docs[f"apis/{group}"] = _Doc(group, self._group_builder(group))
        self._docs["version"] = _Doc("version", self._build_version)
        self._index = None

    # --- the documents ---------------------------------------------------------

    def _group_version_builder(self, group: str, version: str) -> Any:
        def build() -> dict[str, Any]:
            found = self.custom.group_version(group, version) if self.custom is not None else None
            if found is not None:
                return _document(found[0], set(), found[1])
            paths, refs = openapi_paths.build(self.registry, group, version)
            return _document(paths, refs)

        return build

    def _build_api(self) -> dict[str, Any]:
        paths = _simple_get(
            "/api/",
            "getCoreAPIVersions",
            "core",
            META + "APIVersions",
            "get available API versions",
        )
        return _document(paths, {META + "APIVersions"})

    def _build_apis(self) -> dict[str, Any]:
        paths = _simple_get(
            "/apis/", "getAPIVersions", "apis", META + "APIGroupList", "get available API versions"
        )
        return _document(paths, {META + "APIGroupList"})

    def _group_builder(self, group: str) -> Any:
        def build() -> dict[str, Any]:
            friendly = openapi_paths.friendly_group(group)
            op_id = f"get{friendly[:1].upper()}{friendly[1:]}APIGroup"
            paths = _simple_get(
                f"/apis/{group}/", op_id, friendly, META + "APIGroup", "get information of a group"
            )
            return _document(paths, {META + "APIGroup"})

        return build

    def _build_version(self) -> dict[str, Any]:
        ref = "io.k8s.apimachinery.pkg.version.Info"
        paths = _simple_get(
            "/version/",
            "getCodeVersion",
            "version",
            ref,
            "get the version information for this server",
        )
        return _document(paths, {ref})

    # --- hashes and caching ------------------------------------------------------

    def _ensure_hashes(self) -> None:
        external = self.external
        if external is not None and external.generation != self._external_generation:
            self._index = None
            self._external_generation = external.generation
        if self._index is not None:
            return
        inputs = _inputs_digest()
        for path, doc in self._docs.items():
            digest = hashlib.sha512(inputs + f"\0{path}\0{doc.key}".encode())
            doc.etag = digest.hexdigest().upper()
        hashes = {path: doc.etag for path, doc in self._docs.items()}
        if external is not None:
            for path, etag in external.openapi_paths().items():
                hashes.setdefault(path, etag)
        index = {
            "paths": {
                path: {"serverRelativeURL": f"{PREFIX}/{path}?hash={hashes[path]}"}
                for path in sorted(hashes)
            }
        }
        body = orjson.dumps(index)
        self._index = (body, hashlib.sha512(body).hexdigest().upper())

    def index(self) -> bytes:
        """The index document (JSON)."""
        with self._lock:
            self._ensure_hashes()
            assert self._index is not None
            return self._index[0]

    def _get(self, gv_path: str) -> _Doc | None:
        with self._lock:
            self._ensure_hashes()
            doc = self._docs.get(gv_path)
            if doc is not None and doc.body is None:
                doc.body = orjson.dumps(doc.build(), option=orjson.OPT_SORT_KEYS)
            return doc

    def document(self, gv_path: str) -> tuple[bytes, str] | None:
        """One document (JSON) and its hash, or None for a path that has none."""
        doc = self._get(gv_path.strip("/"))
        if doc is None or doc.body is None:
            return None
        return doc.body, doc.etag

    def _gzipped(self, doc: _Doc) -> bytes:
        with self._lock:
            if doc.gzipped is None:
                assert doc.body is not None
                doc.gzipped = gzip.compress(doc.body, compresslevel=6, mtime=0)
            return doc.gzipped

    # --- HTTP --------------------------------------------------------------------

    def add_routes(self, router: web.UrlDispatcher) -> None:
        """Register ``GET /openapi/v3`` and ``GET /openapi/v3/{path}``."""
        router.add_get(PREFIX, self.handle_index)
        router.add_get(PREFIX + "/{path:.*}", self.handle_document)

    async def handle_index(self, request: web.Request) -> web.StreamResponse:
        body = self.index()
        assert self._index is not None
        etag = f'"{self._index[1]}"'
        if _matches(request, etag):
            return web.Response(status=304, headers={"ETag": etag})
        return web.Response(body=body, content_type=JSON, headers={"ETag": etag})

    async def handle_document(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info.get("path", "").strip("/")
        doc = self._get(path)
        if doc is None and self.external is not None:
            fetched = self.external.openapi_document(path)
            if fetched is not None:
                doc = _Doc(path, None)
                doc.body, doc.etag = fetched
        if doc is None or doc.body is None:
            return _status(
                errors.StatusError(
                    404, errors.NOT_FOUND, "the server could not find the requested resource"
                )
            )
        if not _accepts_json(request.headers.get("Accept", "")):
            return _status(
                errors.StatusError(
                    406,
                    errors.NOT_ACCEPTABLE,
                    f"only the following media types are accepted: {JSON}",
                )
            )
        etag = f'"{doc.etag}"'
        headers = {"ETag": etag, "Vary": "Accept"}
        wanted = request.query.get("hash")
        if wanted:
            if wanted != doc.etag:
                raise web.HTTPMovedPermanently(f"{PREFIX}/{path}?hash={doc.etag}")
            headers["Cache-Control"] = "public, immutable"
            headers["Expires"] = email.utils.formatdate(time.time() + ONE_YEAR, usegmt=True)
        if _matches(request, etag):
            return web.Response(status=304, headers=headers)
        body = doc.body
        if len(body) > GZIP_OVER and "gzip" in request.headers.get("Accept-Encoding", ""):
            body = self._gzipped(doc)
            headers["Content-Encoding"] = "gzip"
            headers["Vary"] = "Accept, Accept-Encoding"
        return web.Response(body=body, content_type=JSON, headers=headers)


def _matches(request: web.Request, etag: str) -> bool:
    wanted = request.headers.get("If-None-Match", "")
    return bool(wanted) and (
        wanted.strip() == "*" or etag in (t.strip() for t in wanted.split(","))
    )


def _accepts_json(accept: str) -> bool:
    if not accept:
        return True
    for clause in accept.split(","):
        media = clause.split(";", 1)[0].strip().lower()
        if media in ("application/json", "application/*", "*/*", ""):
            return True
    return False


def _status(err: errors.StatusError) -> web.Response:
    return web.Response(status=err.code, body=orjson.dumps(err.status()) + b"\n", content_type=JSON)


@functools.cache
def _inputs_digest() -> bytes:
    """What every document is a function of, besides its own resources."""
    digest = hashlib.sha512()
    source = schema.schema_file()
    stat = source.stat()
    digest.update(f"{source}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    here = pathlib.Path(__file__).parent
    for name in ("openapi.py", "openapi_paths.py", "openapi_parts.py", "openapi_schemas.py"):
        try:
            digest.update((here / name).read_bytes())
        except OSError:  # pragma: no cover - e.g. running from a zip
            digest.update(name.encode())
    return digest.digest()
