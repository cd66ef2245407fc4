"""Controller expectations: don't act twice on a stale cache (upstream's
ControllerExpectations / UIDTrackingControllerExpectations).

When a controller creates 3 pods it *expects* to see 3 additions in its
informer; until it has (or the expectations expire), its cache may not show
them yet and a sync would create them again. Deletions are tracked by pod key,
so a pod deleted by someone else still counts as the one we waited for.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pilothouse.client.clock import DEFAULT as DEFAULT_CLOCK
from pilothouse.client.clock import Clock

TTL_S = 300.0


@dataclass
class _Expectation:
    adds: int = 0
    deletes: set[str] = field(default_factory=set)
    stamp: float = 0.0


class Expectations:
    def __init__(self, clock: Clock = DEFAULT_CLOCK) -> None:
        self.clock = clock
        self._by_key: dict[str, _Expectation] = {}

    def satisfied(self, key: str) -> bool:
        exp = self._by_key.get(key)
        if exp is None:
            return True
        if exp.adds <= 0 and not exp.deletes:
            return True
        return self.clock.monotonic() - exp.stamp > TTL_S  # expired: sync anyway

    def expect_creations(self, key: str, count: int) -> None:
        exp = self._by_key.setdefault(key, _Expectation())
        exp.adds = count
        exp.stamp = self.clock.monotonic()

    def expect_deletions(self, key: str, pod_keys: list[str]) -> None:
        exp = self._by_key.setdefault(key, _Expectation())
        exp.deletes = set(pod_keys)
        exp.stamp = self.clock.monotonic()

    def creation_observed(self, key: str) -> None:
        exp = self._by_key.get(key)
        if exp is not None and exp.adds > 0:
            exp.adds -= 1

    def creations_failed(self, key: str, count: int) -> None:
        """Creations that will never be observed (the requests failed or were skipped)."""
        exp = self._by_key.get(key)
        if exp is not None:
            exp.adds = max(0, exp.adds - count)

    def deletion_observed(self, key: str, pod_key: str) -> None:
        exp = self._by_key.get(key)
        if exp is not None:
            exp.deletes.discard(pod_key)

    def forget(self, key: str) -> None:
        self._by_key.pop(key, None)
