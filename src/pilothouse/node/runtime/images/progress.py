"""Rate-limited pull progress: one PullProgress per 256 KiB or 100 ms per layer, and a last one."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from pilothouse.node.runtime import protocol

log = logging.getLogger(__name__)

EVERY_BYTES = 256 << 10
EVERY_SECONDS = 0.1


class LayerProgress:
    """Counts one layer's bytes and reports through ``callback`` now and then."""

    def __init__(
        self,
        callback: Callable[[protocol.PullProgress], None] | None,
        *,
        reference: str,
        layer: str,
        total: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._callback = callback
        self.reference = reference
        self.layer = layer
        self.total = total
        self.done = 0
        self._clock = clock
        self._last_bytes = 0
        self._last_time = clock()

    def add(self, n: int) -> None:
        self.done += n
        if self._callback is None:
            return
        now = self._clock()
        if self.done - self._last_bytes >= EVERY_BYTES or now - self._last_time >= EVERY_SECONDS:
            self._last_bytes = self.done
            self._last_time = now
            self._emit(finished=False)

    def finish(self) -> None:
        """The layer is ready (downloaded and unpacked, or already there)."""
        if self.done < self.total:
            self.done = self.total
        self._emit(finished=True)

    def _emit(self, *, finished: bool) -> None:
        if self._callback is None:
            return
        event = protocol.PullProgress(self.reference, self.layer, self.done, self.total, finished)
        try:
            self._callback(event)
        except Exception:
            # A broken display must not fail the pull.
            log.exception("pull progress callback failed")
