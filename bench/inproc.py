"""In-process requests: what a component's request costs on the private Unix socket and
on the server's in-process transport, in one run against one server.

Starts the API server (SQLite; no controllers, scheduler or agent) on this process's
event loop, as ``pilothouse server`` runs it beside its components, and sends the same
requests through two clients with the same identity (a component token, as each
component has): one on the Unix socket (aiohttp client, HTTP framing, the
aiohttp server's protocol), one in process. Both sides are in this process, so the
process's CPU time per request is the whole cost a component's request adds to the
server. Measured, alternating the two clients round after round so a noisy machine
hurts both alike:

- **GET** of one ConfigMap, **POST** of a new ConfigMap (``generateName``), **PUT** of
  a ConfigMap (the status writes of controllers cost the same path), sequentially
  (one at a time: the latency without queueing) and with ``--concurrency`` at once;
- **watch**: events delivered per second to one watcher while ConfigMaps are created.

Prints one JSON object: microseconds of CPU and of wall time per request for each
path, and the ratio in-process / socket.
Usage: python bench/inproc.py [--requests 2000] [--rounds 3] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pilothouse.api import rbac, resources
from pilothouse.apiserver import server as apiserver
from pilothouse.apiserver import serverconfig
from pilothouse.apiserver.authn import user as user_module
from pilothouse.client import config, rest

_CONFIGMAPS = resources.DEFAULT.by_path("", "v1", "configmaps")
assert _CONFIGMAPS is not None
CONFIGMAPS: resources.Resource = _CONFIGMAPS
NS = "default"


async def timed(n: int, concurrency: int, one: Callable[[int], Awaitable[Any]]) -> dict[str, float]:
    """n calls of ``one``, ``concurrency`` at a time: CPU and wall µs per call."""
    cpu0, wall0 = time.process_time(), time.perf_counter()
    counter = iter(range(n))

    async def worker() -> None:
        for i in counter:
            await one(i)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {"cpu_us": cpu / n * 1e6, "wall_us": wall / n * 1e6}


async def watch_rate(client: rest.Client, writer: rest.Client, n: int, tag: str) -> float:
    """Events per second one watcher of ConfigMaps receives while ``n`` are created."""
    start = await client.list(CONFIGMAPS, NS, limit=1)
    rv = start["metadata"]["resourceVersion"]
    got = 0
    done = asyncio.Event()

    async def watch() -> None:
        nonlocal got
        async for event in client.watch(
            CONFIGMAPS, NS, resource_version=rv, label_selector=f"w={tag}"
        ):
            if event.get("type") == "ADDED":
                got += 1
                if got == n:
                    done.set()
                    return

    task = asyncio.create_task(watch())
    began = time.perf_counter()
    for i in range(n):
        await writer.create(
            CONFIGMAPS, {"metadata": {"name": f"w-{tag}-{i}", "labels": {"w": tag}}}, NS
        )
    await asyncio.wait_for(done.wait(), 60)
    elapsed = time.perf_counter() - began
    await task
    return n / elapsed


async def run(args: argparse.Namespace) -> dict[str, Any]:
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench-inproc-") as tmp:
        server = apiserver.APIServer(
            serverconfig.ServerConfig(
                data_dir=Path(tmp),
                bind_address="127.0.0.1",
                https_port=0,
                advertise_address="127.0.0.1",
                # No shedding by event-loop lag: this loop is busy on purpose.
                flow_control_target_lag=0,
            )
        )
        await server.start()
        try:
            assert server.identity is not None and server.in_process is not None
            # A component's token (both paths authenticate it alike); in system:masters,
            # as ConfigMaps are what the bench writes.
            user = user_module.UserInfo("bench-component", (rbac.SYSTEM_PRIVILEGED_GROUP,))
            token = server.identity.component_token(user)
            clients = {
                "socket": rest.Client(config.local_socket(server.socket_path).with_token(token)),
                "in_process": rest.Client(config.in_process(server.in_process).with_token(token)),
            }
            await clients["socket"].create(CONFIGMAPS, {"metadata": {"name": "probe"}}, NS)
            put_target = await clients["socket"].get(CONFIGMAPS, "probe", NS)
            figures: dict[str, dict[str, list[float]]] = {}

            def record(path: str, what: str, value: dict[str, float]) -> None:
                for unit, v in value.items():
                    figures.setdefault(path, {}).setdefault(f"{what}_{unit}", []).append(v)

            for rnd in range(args.rounds):
                for path, client in clients.items():
                    n = args.requests

                    async def get(i: int, c: rest.Client = client) -> None:
                        await c.get(CONFIGMAPS, "probe", NS)

                    async def post(i: int, c: rest.Client = client) -> None:
                        await c.create(
                            CONFIGMAPS,
                            {"metadata": {"generateName": "b-"}, "data": {"k": "v" * 200}},
                            NS,
                        )

                    async def put(i: int, c: rest.Client = client) -> None:
                        obj = dict(put_target)
                        obj["metadata"] = {
                            k: v
                            for k, v in put_target["metadata"].items()
                            if k != "resourceVersion"
                        }
                        obj["data"] = {"i": str(i)}
                        await c.update(CONFIGMAPS, obj)

                    record(path, "get", await timed(n, 1, get))
                    record(path, "get_concurrent", await timed(n, args.concurrency, get))
                    record(path, "post", await timed(n // 2, 1, post))
                    record(path, "put", await timed(n // 2, 1, put))
                    rate = await watch_rate(
                        client, clients["socket"], n // 4, f"{path.replace('_', '-')}{rnd}"
                    )
                    figures.setdefault(path, {}).setdefault("watch_events_per_s", []).append(rate)
            for c in clients.values():
                await c.close()
        finally:
            await server.stop()

    def best(values: list[float], higher: bool = False) -> float:
        return round(max(values) if higher else min(values), 1)

    result: dict[str, Any] = {
        "bench": "inproc",
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_before": args.load_before,
        "requests": args.requests,
        "rounds": args.rounds,
        "concurrency": args.concurrency,
    }
    for path, values in figures.items():
        result[path] = {k: best(v, higher=k.startswith("watch")) for k, v in sorted(values.items())}
    result["in_process_over_socket"] = {
        k: round(result["in_process"][k] / result["socket"][k], 3) for k in result["socket"]
    }
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=2000, help="requests of each kind a round")
    p.add_argument("--rounds", type=int, default=3, help="rounds (the best round counts)")
    p.add_argument("--concurrency", type=int, default=16, help="concurrent GETs")
    args = p.parse_args()
    args.load_before = os.getloadavg()[0]
    result = asyncio.run(run(args))
    print(json.dumps(result, indent=2))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
