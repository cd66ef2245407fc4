"""The prober's lateness window and its Prometheus summary."""

from __future__ import annotations

import prometheus_client

from pilothouse.node import probe_lateness


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_quantiles_cover_only_the_recent_window() -> None:
    clock = Clock()
    lateness = probe_lateness.Lateness(window=60, clock=clock)
    assert lateness.quantiles() == {}
    for _ in range(50):
        lateness.observe(5.0)  # a bad minute…
    clock.now += 120
    for i in range(100):
        lateness.observe(i / 1000)  # …long gone: 0 … 99 ms now
    lateness.observe(-0.5)  # early counts as on time
    q = lateness.quantiles()
    assert q[0.5] == 0.049 and q[0.99] == 0.098 and q[1.0] == 0.099
    assert lateness.count == 151 and round(lateness.total, 3) == 254.95


def test_the_summary_is_exposed_in_prometheus_text() -> None:
    clock = Clock()
    lateness = probe_lateness.Lateness(clock=clock)
    for ms in (1, 2, 3, 250):
        lateness.observe(ms / 1000)
    registry = prometheus_client.CollectorRegistry()
    registry.register(probe_lateness.Collector(lateness))
    text = prometheus_client.generate_latest(registry).decode()
    assert "# TYPE pilothouse_prober_probe_lateness_seconds summary" in text
    assert 'pilothouse_prober_probe_lateness_seconds{quantile="0.99"} 0.25' in text
    assert "pilothouse_prober_probe_lateness_seconds_count 4.0" in text


class _Runtime:
    """Just enough runtime for exec probes: every command succeeds at once."""

    async def exec_sync(
        self, container_id: str, command: list[str], *, timeout: float
    ) -> tuple[int, bytes, bytes]:
        return 0, b"", b""


async def test_the_prober_measures_every_run() -> None:
    import asyncio
    import time
    from typing import Any, cast

    from pilothouse import supervisor
    from pilothouse.node import prober
    from pilothouse.node.runtime import protocol

    sup = supervisor.Supervisor("agent")
    manager = prober.ProbeManager(
        runtime=cast(protocol.Runtime, _Runtime()),
        recorder=cast(Any, None),  # only failures record events
        supervisor=sup,
        on_change=lambda _uid: None,
        restart=cast(Any, None),
    )
    container = {"name": "c", "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1}}
    pod = {"metadata": {"uid": "u1", "name": "p", "namespace": "n"}, "spec": {}}
    status = protocol.ContainerStatus(
        id="c1", sandbox_id="s", name="c", attempt=0, image_id="", image_ref="",
        state="running", started_at=time.time(),
    )  # fmt: skip
    manager.ensure(pod, container, status, "10.42.0.9")
    try:
        await asyncio.sleep(2.3)  # runs at 0, 1 and 2 s
        assert manager.ready("u1", container, "c1")
    finally:
        await manager.close()
        await sup.stop()
    assert manager.lateness.count == 3
    assert 0 <= manager.lateness.quantiles()[1.0] < 0.2
