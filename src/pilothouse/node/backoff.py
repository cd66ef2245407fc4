"""Restart and image-pull back-off, as upstream's kubelet applies it.

The first restart after a failure is immediate; each later failure waits
10 s, then 20 s, 40 s … up to 5 minutes, counted from when the container
finished. A container that ran for 10 minutes without failing starts over at
10 s. Image pulls back off the same way (ImagePullBackOff).
"""

from __future__ import annotations

from dataclasses import dataclass

INITIAL_S = 10.0
MAX_S = 300.0
RESET_AFTER_S = 600.0


@dataclass
class _Entry:
    delay: float
    last: float


class Backoff:
    def __init__(
        self,
        *,
        initial: float = INITIAL_S,
        maximum: float = MAX_S,
        reset_after: float = RESET_AFTER_S,
    ) -> None:
        self.initial = initial
        self.maximum = maximum
        self.reset_after = reset_after
        self._entries: dict[str, _Entry] = {}

    def remaining(self, key: str, since: float, now: float) -> float:
        """Seconds ``key`` must still wait when its last failure was at ``since`` (0: go)."""
        entry = self._entries.get(key)
        if entry is None:
            return 0.0
        return max(0.0, entry.delay - (now - since))

    def next(self, key: str, now: float) -> float:
        """Record an attempt after a failure; returns the delay the next failure will cost."""
        entry = self._entries.get(key)
        if entry is None or now - entry.last >= self.reset_after:
            delay = self.initial
        else:
            delay = min(self.maximum, entry.delay * 2)
        self._entries[key] = _Entry(delay, now)
        return delay

    def delay(self, key: str) -> float:
        entry = self._entries.get(key)
        return entry.delay if entry is not None else 0.0

    def forget_prefix(self, prefix: str) -> None:
        for key in [k for k in self._entries if k.startswith(prefix)]:
            del self._entries[key]
