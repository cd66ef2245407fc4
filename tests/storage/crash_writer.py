"""Helper for test_sqlite's crash test (not a test module).

Usage: python crash_writer.py DB_PATH TASKS

Opens a SQLite store and creates keys from TASKS concurrent tasks until killed,
printing ``ready`` once and then ``KEY REVISION`` for every acknowledged create,
flushed at once so the parent only sees writes that were acknowledged.
"""

from __future__ import annotations

import asyncio
import pathlib
import sys

from pilothouse.storage import sqlite


async def main(path: pathlib.Path, tasks: int) -> None:
    store = sqlite.SQLiteStore(path, compact_interval=0)
    await store.start()
    out = sys.stdout
    out.write("ready\n")
    out.flush()

    async def write_forever(task: int) -> None:
        i = 0
        while True:
            key = f"/crash/{task}/{i:06}"
            revision = await store.create(key, key.encode())
            out.write(f"{key} {revision}\n")
            out.flush()
            i += 1

    await asyncio.gather(*(write_forever(t) for t in range(tasks)))


if __name__ == "__main__":
    asyncio.run(main(pathlib.Path(sys.argv[1]), int(sys.argv[2])))
