"""Secrets create throughput with encryption at rest on and off, in the same run.

Runs ``pilothouse server`` (SQLite store, durable commits; API server only) once per
configuration and creates Secrets over HTTPS at a fixed concurrency:

* ``off``: ``--encryption-provider-config`` with only the identity provider (the
  baseline: what a cluster without encryption does);
* ``aescbc``: the default of a new cluster (a managed AES-CBC key);
* ``aesgcm`` and ``secretbox``: user configurations with those providers.

Rounds alternate the configurations so drift on a shared machine spreads evenly;
the figure per configuration is the median of its rounds. Goal: ``aescbc`` at least
80 % of ``off``. For the lead: ``secrets_encryption(...)`` is the function to call
from bench/storage.py.

Usage: python bench/encryption.py [--creates 2000] [--concurrency 32] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import api
from pilothouse import testing

CONFIGS = ("off", "aescbc", "aesgcm", "secretbox")


def provider_file(directory: Path, provider: str) -> Path | None:
    """The --encryption-provider-config for ``provider`` (None: the managed default)."""
    if provider == "aescbc":
        return None
    providers: list[dict[str, Any]] = [{"identity": {}}]
    if provider != "off":
        key = base64.b64encode(os.urandom(32)).decode()
        providers.insert(0, {provider: {"keys": [{"name": "bench", "secret": key}]}})
    doc = {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "EncryptionConfiguration",
        "resources": [{"resources": ["secrets"], "providers": providers}],
    }
    path = directory / f"encryption-{provider}.json"
    path.write_text(json.dumps(doc))
    return path


def secret(name: str) -> bytes:
    data = {f"key{i}": base64.b64encode(os.urandom(48)).decode() for i in range(4)}
    return json.dumps(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": data}
    ).encode()


async def one_round(tmp: Path, provider: str, n: int, concurrency: int, index: int) -> float:
    data = tmp / f"{provider}-{index}"
    config = provider_file(tmp, provider)
    extra = ["--disable-scheduler", "--disable-controller-manager"]
    if config is not None:
        extra += ["--encryption-provider-config", str(config)]
    srv = testing.ServerProcess(data, extra_args=extra).start(timeout=60)
    try:
        client = api.Client(srv.url, data, concurrency)
        try:
            for _ in range(200):
                status, _ = await client.request("GET", "/readyz")
                if status == 200:
                    break
                await asyncio.sleep(0.01)
            bodies = [secret(f"s{i}") for i in range(n)]

            async def make(i: int) -> None:
                status, body = await client.request(
                    "POST", "/api/v1/namespaces/default/secrets", bodies[i]
                )
                assert status == 201, body

            elapsed = await api.run_concurrently(n, concurrency, make)
        finally:
            await client.close()
    finally:
        srv.stop()
    conn = sqlite3.connect(data / "db" / "state.db")
    try:
        (stored,) = conn.execute(
            "SELECT g.value FROM latest AS l JOIN log AS g ON g.revision = l.revision"
            " WHERE l.key = '/registry/secrets/default/s0'"
        ).fetchone()
    finally:
        conn.close()
    expected = b"{" if provider == "off" else f"k8s:enc:{provider}:v1:".encode()
    assert bytes(stored).startswith(expected), f"{provider}: stored as {bytes(stored)[:40]!r}"
    return n / elapsed


async def secrets_encryption(
    *,
    creates: int = 2000,
    concurrency: int = 32,
    rounds: int = 3,
    configs: tuple[str, ...] = CONFIGS,
) -> dict[str, Any]:
    """Secrets created per second under each configuration, and each one's ratio to
    ``off`` (the unencrypted baseline measured in the same run)."""
    if "off" not in configs:
        configs = ("off", *configs)
    rates: dict[str, list[float]] = {c: [] for c in configs}
    with tempfile.TemporaryDirectory(prefix="pilothouse-bench-enc-") as tmp:
        for r in range(rounds):
            order = configs if r % 2 == 0 else tuple(reversed(configs))
            for provider in order:
                rates[provider].append(
                    await one_round(Path(tmp), provider, creates, concurrency, r)
                )
    median = {c: statistics.median(v) for c, v in rates.items()}
    out: dict[str, Any] = {f"secret_creates_per_s_{c}": round(median[c], 1) for c in configs}
    for c in (c for c in configs if c != "off"):
        out[f"{c}_vs_off"] = round(median[c] / median["off"], 3)
    out["rounds"] = {c: [round(x, 1) for x in v] for c, v in rates.items()}
    out.update(creates=creates, concurrency=concurrency, cpus=os.cpu_count())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--creates", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--configs",
        default=",".join(CONFIGS),
        help="which configurations, comma-separated (off is always measured)",
    )
    args = parser.parse_args()
    started = time.perf_counter()
    result = asyncio.run(
        secrets_encryption(
            creates=args.creates,
            concurrency=args.concurrency,
            rounds=args.rounds,
            configs=tuple(c for c in args.configs.split(",") if c),
        )
    )
    result["bench_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
