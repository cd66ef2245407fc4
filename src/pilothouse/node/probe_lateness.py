"""How late probes start against their schedule: the prober's own health under load.

Every probe run is due ``periodSeconds`` after the previous run started (the
first after ``initialDelaySeconds``); how far past that it actually starts is
its lateness — event-loop lag, a busy runtime, a starved agent. The
:class:`Lateness` window keeps the recent values so :class:`Collector` can show
quantiles over the last minute on the agent's ``/metrics`` as the summary
``pilothouse_prober_probe_lateness_seconds`` (not an upstream metric; the
benchmark in bench/probes.py reads it).

Everything runs on the agent's event loop: no locking.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Iterator

from prometheus_client import metrics_core

NAME = "pilothouse_prober_probe_lateness_seconds"
QUANTILES = (0.5, 0.9, 0.99, 1.0)


class Lateness:
    """Recent probe lateness samples (seconds), bounded by age and by count."""

    def __init__(
        self,
        *,
        window: float = 60.0,
        max_samples: int = 200_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window = window
        self.clock = clock
        self.count = 0
        self.total = 0.0
        self._samples: collections.deque[tuple[float, float]] = collections.deque(
            maxlen=max_samples
        )

    def observe(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        self.count += 1
        self.total += seconds
        self._samples.append((self.clock(), seconds))

    def recent(self) -> list[float]:
        cutoff = self.clock() - self.window
        while self._samples and self._samples[0][0] < cutoff:
            self._samples.popleft()
        return [s for _, s in self._samples]

    def quantiles(self, qs: tuple[float, ...] = QUANTILES) -> dict[float, float]:
        """Nearest-rank quantiles of the last ``window`` seconds (empty without samples)."""
        values = sorted(self.recent())
        if not values:
            return {}
        top = len(values) - 1
        return {q: values[min(top, max(0, round(q * top)))] for q in qs}


class Collector:
    """Shows a :class:`Lateness` as a Prometheus summary (register it on a registry)."""

    def __init__(self, lateness: Lateness) -> None:
        self.lateness = lateness

    def collect(self) -> Iterator[metrics_core.Metric]:
        metric = metrics_core.Metric(
            NAME,
            "How long after its scheduled time each probe started, over the last "
            f"{self.lateness.window:g} seconds.",
            "summary",
        )
        for q, value in self.lateness.quantiles().items():
            metric.add_sample(NAME, {"quantile": f"{q:g}"}, value)
        metric.add_sample(NAME + "_count", {}, self.lateness.count)
        metric.add_sample(NAME + "_sum", {}, self.lateness.total)
        yield metric
