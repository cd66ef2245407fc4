"""Image and container garbage collection, as upstream's kubelet does it: a real image
store in a temp dir with a made-up filesystem size, and the fake runtime."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from pilothouse.node import containergc, imagegc
from pilothouse.node.runtime import fake, fsstats, protocol
from pilothouse.node.runtime.images import store, testimage

MB = 1 << 20


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def event(self, obj: Any, type: str, reason: str, message: str, **_: Any) -> None:
        self.events.append((reason, message))


class Containers:
    """A runtime stand-in that only lists containers (all image GC asks of it)."""

    def __init__(self) -> None:
        self.image_ids: list[str] = []

    async def list_containers(
        self, sandbox_id: str | None = None
    ) -> list[protocol.ContainerStatus]:
        return [
            protocol.ContainerStatus(
                id=f"c{i}",
                sandbox_id="s",
                name="c",
                attempt=0,
                image_id=image_id,
                image_ref=image_id,
                state="exited",
            )
            for i, image_id in enumerate(self.image_ids)
        ]


async def add_image(images: store.ImageStore, tmp: Path, tag: str, size: int) -> protocol.Image:
    layer = testimage.LayerBuilder().file(f"{tag}.bin", os.urandom(size)).tar()
    layout = testimage.write_oci_layout(tmp / tag, [layer], tag=f"example.com/{tag}:1")
    (imported,) = await images.import_archive(layout)
    return imported


@pytest.fixture
def images(tmp_path: Path) -> store.ImageStore:
    return store.ImageStore(tmp_path / "images")


def manager(
    images: store.ImageStore, runtime: Containers, recorder: Recorder, capacity: int, **policy: Any
) -> imagegc.ImageGCManager:
    """Image GC on a filesystem of ``capacity`` bytes holding only the unpacked layers."""

    def stats(_path: Path) -> fsstats.FsStats:
        used = fsstats.disk_usage(images.root / "layers").bytes
        return fsstats.FsStats(capacity, capacity - used, 1000, 900, 1)

    return imagegc.ImageGCManager(
        images=images,
        runtime=runtime,  # type: ignore[arg-type]
        policy=imagegc.Policy(**policy),
        recorder=recorder,  # type: ignore[arg-type]
        node_ref={"metadata": {"name": "node"}},
        fs_stats=stats,
    )


async def test_over_the_high_threshold_removes_lru_unused_images_to_the_low(
    images: store.ImageStore, tmp_path: Path
) -> None:
    made = [await add_image(images, tmp_path, f"img{i}", MB) for i in range(5)]
    runtime, recorder = Containers(), Recorder()
    runtime.image_ids = [made[0].id]  # the oldest is in use: it stays whatever its age
    gc = manager(images, runtime, recorder, capacity=6 * MB, high_threshold_percent=70,
                 low_threshold_percent=40, min_age=0)  # fmt: skip
    for i, image in enumerate(made):  # pulled one after another
        gc.records[image.id] = imagegc._Record(first_detected=time.time() - 100 + i)
    await gc.garbage_collect()
    left = {i.id for i in images.list()}
    # 5 MB of 6 in use (83%): free down to 40% → at least 2.6 MB → three images go, oldest first
    assert left == {made[0].id, made[4].id}
    assert gc.removed == [made[1].id, made[2].id, made[3].id]
    assert not recorder.events
    assert not any((images.root / "layers" / c.removeprefix("sha256:")).exists()
                   for i in made[1:4] for c in (str(p.name) for p in i.layers))  # fmt: skip
    await gc.garbage_collect()  # under the threshold now: nothing more goes
    assert {i.id for i in images.list()} == left


async def test_minimum_age_and_in_use_images_are_never_removed_and_the_node_hears_of_it(
    images: store.ImageStore, tmp_path: Path
) -> None:
    made = [await add_image(images, tmp_path, f"new{i}", MB) for i in range(3)]
    runtime, recorder = Containers(), Recorder()
    runtime.image_ids = [made[0].id]
    gc = manager(images, runtime, recorder, capacity=4 * MB, high_threshold_percent=50,
                 low_threshold_percent=20, min_age=120)  # fmt: skip
    with pytest.raises(imagegc.ImageGCError) as err:
        await gc.garbage_collect()
    assert len(images.list()) == 3, "just pulled (imageMinimumGCAge) or in use: all stay"
    reason, message = recorder.events[0]
    assert reason == "FreeDiskSpaceFailed"
    assert message.startswith(
        "Failed to garbage collect required amount of images. Attempted to free "
    )
    assert message.endswith(" bytes, but only found 0 bytes eligible to free.")
    assert str(err.value) == message


async def test_maximum_age_removes_long_unused_images(
    images: store.ImageStore, tmp_path: Path
) -> None:
    old, fresh = [await add_image(images, tmp_path, n, 1024) for n in ("old", "fresh")]
    gc = manager(images, Containers(), Recorder(), capacity=100 * MB, min_age=0, max_age=3600)
    gc.records[old.id] = imagegc._Record(first_detected=time.time() - 7200)
    await gc.garbage_collect()
    assert [i.id for i in images.list()] == [fresh.id]


async def test_delete_unused_images_ignores_the_thresholds(
    images: store.ImageStore, tmp_path: Path
) -> None:
    made = [await add_image(images, tmp_path, f"u{i}", 1024) for i in range(3)]
    runtime = Containers()
    runtime.image_ids = [made[1].id]
    gc = manager(images, runtime, Recorder(), capacity=100 * MB, min_age=0)
    for image in made:
        gc.records[image.id] = imagegc._Record(first_detected=time.time() - 10)
    assert await gc.delete_unused_images() > 0
    assert [i.id for i in images.list()] == [made[1].id]


def test_pulled_time_is_kept_in_the_index(images: store.ImageStore, tmp_path: Path) -> None:
    import asyncio

    before = time.time()
    image = asyncio.run(add_image(images, tmp_path, "t", 10))
    assert before <= image.pulled_at <= time.time()
    again = store.ImageStore(images.root).get(image.id)
    assert again is not None and again.pulled_at == image.pulled_at


# --- containers -----------------------------------------------------------------------------
async def test_container_gc_keeps_the_latest_exit_per_container_and_removes_logs(
    tmp_path: Path,
) -> None:
    runtime = fake.FakeRuntime(fake.FakeImageService([fake.FakeImageService.make("busybox:1.36")]))
    await runtime.start()
    image = runtime.images.get("busybox:1.36")
    assert image is not None
    sandbox = await runtime.run_pod_sandbox(
        protocol.SandboxConfig(uid="pod-1", namespace="ns", name="p", hostname="p")
    )
    logs = tmp_path / "logs" / "ns_p_pod-1" / "main"
    ids = []
    for attempt in range(4):
        log_path = logs / f"{attempt}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text("x\n")
        (logs / f"{attempt}.log.20260101-000000").write_text("rotated\n")
        cid = await runtime.create_container(
            sandbox.id,
            protocol.ContainerConfig(
                name="main", image=image, command=("true",), attempt=attempt, log_path=str(log_path)
            ),
        )
        await runtime.start_container(cid)
        if attempt < 3:
            await runtime.stop_container(cid, timeout=0)
        ids.append(cid)
    pods = [
        {
            "metadata": {"uid": "pod-1", "namespace": "ns", "name": "p"},
            "status": {"phase": "Running"},
        }
    ]
    gc = containergc.ContainerGC(
        runtime=runtime, sandboxes={"pod-1": sandbox}, pods=lambda: pods, log_dir=tmp_path / "logs"
    )
    assert await gc.collect() == 2
    left = {s.id: s.state for s in await runtime.list_containers()}
    assert left == {ids[2]: "exited", ids[3]: "running"}, "the newest exit stays for --previous"
    assert sorted(p.name for p in logs.iterdir()) == [
        "2.log", "2.log.20260101-000000", "3.log", "3.log.20260101-000000"
    ]  # fmt: skip
    # a finished pod under disk pressure loses its dead containers too
    pods[0]["status"]["phase"] = "Failed"
    assert await gc.collect(terminated_pods=True) == 1
    assert [s.id for s in await runtime.list_containers()] == [ids[3]]
    # the log directory of a pod that is gone goes
    (tmp_path / "logs" / "ns_gone_pod-2" / "c").mkdir(parents=True)
    await gc.collect()
    assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == ["ns_p_pod-1"]
