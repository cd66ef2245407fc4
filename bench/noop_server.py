"""Baseline for bench/api.py: an aiohttp HTTPS server that answers every request
with a fixed body, using the same TLS set-up as the API server.

Usage: python bench/noop_server.py PKI_DIR PORT
"""

from __future__ import annotations

import sys
from pathlib import Path

from aiohttp import web

from pilothouse.apiserver.auth import certs

BODY = b'{"kind":"Pod","apiVersion":"v1","metadata":{"name":"x"}}'


async def handler(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(body=BODY, status=201, content_type="application/json")


def main() -> None:
    pki = certs.ensure_pki(Path(sys.argv[1]), hostnames=[], ips=["127.0.0.1"])
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    web.run_app(
        app,
        host="127.0.0.1",
        port=int(sys.argv[2]),
        ssl_context=pki.ssl_server_context(require_client_cert=False),
        print=None,
        access_log=None,
    )


if __name__ == "__main__":
    main()
