"""Pull progress is rate-limited per layer and always ends with a finished event."""

from __future__ import annotations

from pilothouse.node.runtime import protocol
from pilothouse.node.runtime.images import progress


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_reports_every_256_kib_or_100_ms_and_when_finished() -> None:
    events: list[protocol.PullProgress] = []
    clock = Clock()
    tracker = progress.LayerProgress(
        events.append, reference="r", layer="sha256:l", total=1 << 20, clock=clock
    )
    for _ in range(8):  # 8 x 64 KiB, no time passing: two reports (at 256 KiB and 512 KiB)
        tracker.add(64 << 10)
    assert [e.done_bytes for e in events] == [256 << 10, 512 << 10]
    tracker.add(1)
    assert len(events) == 2
    clock.now += 0.15  # time passes: the next chunk reports however small
    tracker.add(1)
    assert events[-1].done_bytes == (512 << 10) + 2
    tracker.finish()
    assert events[-1] == protocol.PullProgress("r", "sha256:l", 1 << 20, 1 << 20, True)


def test_a_failing_callback_does_not_fail_the_pull() -> None:
    def broken(_: protocol.PullProgress) -> None:
        raise RuntimeError("display gone")

    tracker = progress.LayerProgress(broken, reference="r", layer="l", total=10)
    tracker.add(1 << 20)
    tracker.finish()
    assert tracker.done == 1 << 20
