"""Log rotation keeps every line readable across rotations, and bounds the files kept."""

from __future__ import annotations

from pathlib import Path

from pilothouse.node import logs
from pilothouse.node.logrotate import LogRotator
from pilothouse.node.runtime import fake, protocol


async def _container(rt: fake.FakeRuntime, log_path: Path) -> str:
    image = fake.FakeImageService.make("busybox:1.36")
    rt.images.add(image)  # type: ignore[attr-defined]
    sandbox = await rt.run_pod_sandbox(
        protocol.SandboxConfig(uid="u1", namespace="ns", name="p", hostname="p")
    )
    cid = await rt.create_container(
        sandbox.id,
        protocol.ContainerConfig(
            name="c", image=image, command=("sleep", "1"), log_path=str(log_path)
        ),
    )
    await rt.start_container(cid)
    return cid


async def test_rotation_loses_no_line_and_keeps_at_most_max_files(tmp_path: Path) -> None:
    rt = fake.FakeRuntime()
    path = tmp_path / "c" / "0.log"
    cid = await _container(rt, path)
    rotator = LogRotator(rt, max_size=200, max_files=3)
    written = 0
    for _round in range(6):
        for _ in range(5):
            rt.write_log(cid, f"line {written}")
            written += 1
        await rotator.rotate_once()
    assert rotator.rotations >= 4
    rotated = sorted(path.parent.glob("0.log.*"))
    assert len(rotated) <= 2  # max_files counts the current file too
    text = b"".join([line async for line in logs.read_logs(path, logs.LogOptions())]).decode()
    numbers = [int(line.split()[1]) for line in text.splitlines()]
    # The newest lines survive in order; the oldest were rotated away with deleted files.
    assert numbers == list(range(numbers[0], written))
    assert written - numbers[0] >= 10
