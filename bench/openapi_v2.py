"""``GET /openapi/v2``: the first request (builds the document) and cached ones.

Serves the built-in API's OpenAPI handlers in this process (aiohttp on loopback)
and times, in milliseconds: the first protobuf request (collect the v3 documents,
convert, encode JSON and protobuf, gzip both), cached protobuf and JSON requests,
a gzipped one, a revalidation answered 304, and — the baseline, measured in the
same run — a cached ``/openapi/v3/apis/apps/v1`` request. Sizes in bytes.
Prints one JSON object.

Usage: python bench/openapi_v2.py [--n 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

import aiohttp
from aiohttp import web

from pilothouse.api import resources
from pilothouse.apiserver.handlers import openapi

PROTO = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"


async def timed(
    session: aiohttp.ClientSession, url: str, **headers: str
) -> tuple[float, bytes, Any]:
    headers.setdefault("Accept-Encoding", "identity")  # gzip only where asked
    start = time.perf_counter()
    async with session.get(url, headers=headers, auto_decompress=False) as resp:
        body = await resp.read()
        return (time.perf_counter() - start) * 1000, body, resp


async def main(n: int) -> dict[str, Any]:
    docs = openapi.OpenAPIV3(resources.DEFAULT)
    app = web.Application()
    docs.add_routes(app.router)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    out: dict[str, Any] = {}
    async with aiohttp.ClientSession() as session:
        first, proto, resp = await timed(session, base + "/openapi/v2", Accept=PROTO)
        etag = resp.headers["ETag"]
        out["first_protobuf_ms"] = round(first, 1)
        built = await docs.v2.get()
        out["build_ms"] = round(built.seconds * 1000, 1)

        async def median(url: str, **headers: str) -> float:
            times = [(await timed(session, url, **headers))[0] for _ in range(n)]
            return round(statistics.median(times), 2)

        out["cached_protobuf_ms"] = await median(base + "/openapi/v2", Accept=PROTO)
        out["cached_json_ms"] = await median(base + "/openapi/v2", Accept="application/json")
        out["cached_protobuf_gzip_ms"] = await median(
            base + "/openapi/v2", Accept=PROTO, **{"Accept-Encoding": "gzip"}
        )
        out["revalidate_304_ms"] = await median(
            base + "/openapi/v2", Accept=PROTO, **{"If-None-Match": etag}
        )
        await timed(session, base + "/openapi/v3/apis/apps/v1")  # build it first
        out["baseline_cached_v3_apps_v1_ms"] = await median(base + "/openapi/v3/apis/apps/v1")
    assert len(proto) == len(built.protobuf.body)
    out["protobuf_bytes"] = len(proto)
    out["json_bytes"] = len(built.json.body)
    out["protobuf_gzip_bytes"] = len(built.protobuf.gzipped)
    out["json_gzip_bytes"] = len(built.json.gzipped)
    await runner.cleanup()
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=20)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.n))))
