"""An adaptive seat limit: every priority level's seats shrink while the event loop lags.

Why: the server is one asyncio event loop. Flow control's seats bound how many of a
level's requests are admitted at once, not how much of the loop they use; at upstream's
600 seats a flood's admitted creates fill the loop's ready queue, and a GET of another
level — admitted at once, its level nearly empty — still waits its turn behind them in
that queue. Its latency grows with the loop's backlog whatever its priority.

So the limit follows the loop's *lag*, the time a timer fires late (how long a ready
callback waits for the loop): :class:`LagMonitor` samples it every ``interval`` and
:class:`AdaptiveLimit` turns the samples into a scale in [``floor``, 1] applied to the
nominal seats of every level but leader election's and node heartbeats'
(``flowcontrol.ADAPTIVE_LEVELS``), as a TCP congestion window follows round-trip times (the
gradient of Netflix's concurrency-limits, with the target lag in the role of the
no-load RTT):

* a sample over ``target`` shrinks the scale by the gradient ``target / lag`` (at
  least 0.5), smoothed — a long stall shrinks it fast, a short blip a little;
* a sample under ``target`` grows it by ``growth`` (additive, also smoothed), so it
  climbs back to 1 within seconds once the loop is idle.

Of those, a level whose seats are not in use is not affected in practice (its limit stays above
what it uses); a level that fills its seats — the flood — is the one held back, and what
it offers beyond them waits in its queue or gets 429 with ``Retry-After`` before any
other work is done for it. Exempt requests (``system:masters``, health probes) and
long-running ones never take a seat, so they are never limited.

Concurrency: :meth:`LagMonitor.run` is one supervised loop on the server's event loop;
:class:`AdaptiveLimit` is plain arithmetic on what it is given (a test drives it with
synthetic lags and no clock at all).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_TARGET = 0.005  # seconds a timer may fire late before seats shrink
DEFAULT_INTERVAL = 0.01  # seconds between samples while requests hold seats


@dataclass
class AdaptiveLimit:
    """The scale of every level's seats, from event-loop lag samples; see the module
    docstring. ``observe`` returns the new scale."""

    target: float = DEFAULT_TARGET
    floor: float = 0.05  # at upstream's 600 seats: 30, every level at least one
    smoothing: float = 0.2
    growth: float = 0.02
    scale: float = 1.0

    def observe(self, lag: float) -> float:
        if lag > self.target:
            proposed = self.scale * max(0.5, self.target / lag)
        else:
            proposed = self.scale + self.growth
        smoothed = (1 - self.smoothing) * self.scale + self.smoothing * proposed
        self.scale = min(1.0, max(self.floor, smoothed))
        return self.scale


class LagMonitor:
    """Samples the event loop's lag and hands each sample to ``observe``.

    Each sample is two figures: how late the timer fired (wall clock), and the part of
    that the loop's own work made — at most the CPU time the loop's thread used beyond
    the interval (``cpu``: the thread's CPU clock). A timer late while the thread used
    no CPU (the process waited for a core another process had) says nothing about what
    the server admitted; flow control holds the cluster's own components back only for
    the second figure (see :meth:`pilothouse.apiserver.flowcontrol.FlowControl.observe_lag`).

    While nothing holds a seat and the scale is back at 1 there is nothing to control:
    the monitor then sleeps until ``busy`` is set (by flow control, when it admits a
    request), so an idle server does not wake a hundred times a second.
    """

    def __init__(
        self,
        observe: Callable[[float, float], None],
        *,
        idle: Callable[[], bool],
        busy: asyncio.Event,
        interval: float = DEFAULT_INTERVAL,
        cpu: Callable[[], float] = time.thread_time,
    ) -> None:
        self.observe = observe
        self.idle = idle
        self.busy = busy
        self.interval = interval
        self.cpu = cpu

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if self.idle():
                self.busy.clear()
                await self.busy.wait()
            due = loop.time() + self.interval
            used = self.cpu()
            await asyncio.sleep(self.interval)
            late = max(0.0, loop.time() - due)
            own = self.cpu() - used - self.interval
            self.observe(late, max(0.0, min(late, own)))
