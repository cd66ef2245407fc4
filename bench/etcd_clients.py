"""Which way to talk to etcd from asyncio: pilothouse's own grpc.aio client against the
maintained async etcd clients on PyPI, putting objects of a pod's size into the same
etcd at the same concurrency, in the same run.

The candidates are optional (not dependencies): those not installed are reported as
such. To compare, install them beside pilothouse first, e.g.
``pip install aetcd etcd3aio`` in a throwaway venv with ``pip install -e .``. Each one
runs in a process of its own: both register etcd's protos (``mvccpb.KeyValue``) in
protobuf's default pool and cannot be imported into one process together (pilothouse
builds its messages in a private pool, so it clashes with neither).

Usage: python bench/etcd_clients.py [--puts 5000] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pilothouse.storage.etcd import client as etcd_client
from pilothouse.storage.etcd import testing as etcd_testing

VALUE = b"x" * 900  # about a pod's JSON


async def run(n: int, concurrency: int, put: Callable[[int], Awaitable[Any]]) -> float:
    for i in range(50):  # warm the connection
        await put(-1 - i)
    counter = iter(range(n))
    start = time.perf_counter()

    async def worker() -> None:
        for i in counter:
            await put(i)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return n / (time.perf_counter() - start)


async def ours(endpoint: str, n: int, concurrency: int) -> float:
    c = etcd_client.Client(etcd_client.parse_endpoints(endpoint))
    try:
        return await run(n, concurrency, lambda i: c.put(f"/ours/{i}".encode(), VALUE))
    finally:
        await c.close()


async def aetcd_rate(endpoint: str, n: int, concurrency: int) -> float:
    import aetcd  # type: ignore[import-not-found]

    host, port = endpoint.removeprefix("http://").split(":")
    c = aetcd.Client(host=host, port=int(port))
    try:
        return await run(n, concurrency, lambda i: c.put(f"/aetcd/{i}".encode(), VALUE))
    finally:
        await c.close()


async def etcd3aio_rate(endpoint: str, n: int, concurrency: int) -> float:
    import etcd3aio  # type: ignore[import-not-found]

    c = etcd3aio.Etcd3Client([endpoint.removeprefix("http://")])
    await c.connect()
    try:
        return await run(n, concurrency, lambda i: c.kv.put(f"/etcd3aio/{i}".encode(), VALUE))
    finally:
        await c.close()


CANDIDATES = {"pilothouse": ours, "aetcd": aetcd_rate, "etcd3aio": etcd3aio_rate}


def measure_in_child(name: str, endpoint: str, args: argparse.Namespace) -> Any:
    if name != "pilothouse" and importlib.util.find_spec(name) is None:
        return "not installed"
    proc = subprocess.run(
        [
            sys.executable,
            __file__,
            "--only",
            name,
            "--endpoint",
            endpoint,
            "--puts",
            str(args.puts),
            "--concurrency",
            str(args.concurrency),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return round(float(proc.stdout), 1)


def main_all(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {
        "puts": args.puts,
        "concurrency": args.concurrency,
        "value_bytes": len(VALUE),
    }
    with etcd_testing.EtcdProcess() as etcd:
        for name in CANDIDATES:
            out[f"{name}_puts_per_s"] = measure_in_child(name, etcd.endpoint, args)
        # Ours once more, so drift over the run shows.
        out["pilothouse_puts_per_s_again"] = measure_in_child("pilothouse", etcd.endpoint, args)
    out["cpus"] = os.cpu_count()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--puts", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--only", choices=list(CANDIDATES), help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.only:
        print(asyncio.run(CANDIDATES[args.only](args.endpoint, args.puts, args.concurrency)))
        return
    print(json.dumps(main_all(args), indent=2))


if __name__ == "__main__":
    main()
