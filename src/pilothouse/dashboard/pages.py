"""The dashboard's files under ``/ui/``, and the benchmark's baseline page.

Stateless request handlers: each request reads a file that ships in the package
(kept in memory after the first read; the files never change while running). The
pages hold no cluster data — they fetch it from the API with the user's
credentials — so they are served without authentication.
"""

from __future__ import annotations

import html
import importlib.resources
import mimetypes

from aiohttp import web

PREFIX = "/ui"
_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".html": "text/html",
    ".svg": "image/svg+xml",
}
# A static page of a requested size, served like the dashboard's own files: the
# baseline the first-page benchmark compares the dashboard with (same server,
# same bytes, nothing to fetch or compute).
BASELINE = "baseline.html"
MAX_BASELINE = 16 * 1024 * 1024


class Pages:
    """Serves ``/ui/…`` from the package's ``static`` folder."""

    def __init__(self) -> None:
        self._files: dict[str, bytes] = {}
        root = importlib.resources.files("pilothouse.dashboard") / "static"
        for entry in root.iterdir():
            if entry.is_file():
                self._files[entry.name] = entry.read_bytes()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            raise web.HTTPMethodNotAllowed(request.method, ["GET", "HEAD"])
        path = request.path
        if path == PREFIX:
            raise web.HTTPFound(PREFIX + "/")
        name = path[len(PREFIX) + 1 :] or "index.html"
        if name == BASELINE:
            return self._baseline(request)
        body = self._files.get(name)
        if body is None:
            raise web.HTTPNotFound()
        suffix = name[name.rfind(".") :]
        content_type = (
            _TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"
        )
        return web.Response(
            body=body,
            content_type=content_type,
            charset="utf-8" if content_type.startswith("text/") else None,
            headers={
                "Cache-Control": "no-cache",
                # The pages run only their own script and talk only to this origin.
                "Content-Security-Policy": "default-src 'self'; connect-src 'self' ws: wss:;"
                " img-src 'self' data:; style-src 'self'; frame-ancestors 'none'",
                "X-Content-Type-Options": "nosniff",
            },
        )

    def _baseline(self, request: web.Request) -> web.Response:
        try:
            size = int(request.query.get("bytes", "0"))
        except ValueError:
            size = 0
        size = max(0, min(size, MAX_BASELINE))
        head = "<!doctype html><html lang=en><head><meta charset=utf-8><title>baseline</title></head><body><table>"
        tail = "</table><p id=done>done</p></body></html>"
        rows: list[str] = []
        used = len(head) + len(tail)
        i = 0
        while used < size:
            row = f"<tr><td>{html.escape(f'pod-{i:05d}')}</td><td>Running</td><td>0</td><td>node</td></tr>"
            rows.append(row)
            used += len(row)
            i += 1
        return web.Response(
            text=head + "".join(rows) + tail,
            content_type="text/html",
            headers={"Cache-Control": "no-cache"},
        )
