"""Which checks apply at a level and version, and the words of a verdict (upstream's
``policy/registry.go`` and ``policy/checks.go``).

The table of checks per version is built once: for every minor version from 1.0 to
the newest a check names, the form of each check in force then; restricted includes
baseline except what a restricted check overrides. Versions newer than the table
(and ``latest``) use its newest row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pilothouse.api.podsecurity import checks as checks_module
from pilothouse.api.podsecurity.checks import Check, VersionedCheck
from pilothouse.api.podsecurity.common import CheckFn, Forbidden
from pilothouse.api.podsecurity.levels import BASELINE, PRIVILEGED, RESTRICTED, LevelVersion

Obj = dict[str, Any]

UNKNOWN_REASON = "unknown forbidden reason"


@dataclass(frozen=True, slots=True)
class Result:
    """The aggregate of a pod's failed checks, in check order."""

    forbidden: tuple[Forbidden, ...] = ()

    @property
    def allowed(self) -> bool:
        return not self.forbidden

    def reason(self) -> str:
        """``host ports, privileged``: what a namespace-wide check reports per pod."""
        return ", ".join(f.reason or UNKNOWN_REASON for f in self.forbidden)

    def detail(self) -> str:
        """``hostPort (container "c" uses hostPort 80), privileged (…)``."""
        return ", ".join(
            f"{f.reason or UNKNOWN_REASON} ({f.detail})" if f.detail else f.reason or UNKNOWN_REASON
            for f in self.forbidden
        )


class Evaluator:
    """Evaluates pods against the checks in force at a level and version."""

    def __init__(self, all_checks: Sequence[Check] = checks_module.DEFAULT_CHECKS) -> None:
        self.max_minor = max(v.minimum.minor for c in all_checks for v in c.versions)
        order = sorted(c.id for c in all_checks if c.level == BASELINE) + sorted(
            c.id for c in all_checks if c.level == RESTRICTED
        )
        self._baseline: list[list[CheckFn]] = []
        self._restricted: list[list[CheckFn]] = []
        for minor in range(self.max_minor + 1):
            base: dict[str, VersionedCheck] = {}
            restricted: dict[str, VersionedCheck] = {}
            for check in all_checks:
                current = _in_force(check, minor)
                if current is not None:
                    (base if check.level == BASELINE else restricted)[check.id] = current
            overridden = {o for vc in restricted.values() for o in vc.overrides}
            for cid, vc in base.items():
                if cid not in overridden:
                    restricted[cid] = vc
            self._baseline.append([base[i].check for i in order if i in base])
            self._restricted.append([restricted[i].check for i in order if i in restricted])

    def _row(self, lv: LevelVersion) -> list[CheckFn]:
        v = lv.version
        minor = self.max_minor if v.latest or v.major > 1 else min(v.minor, self.max_minor)
        return (self._baseline if lv.level == BASELINE else self._restricted)[minor]

    def evaluate(self, lv: LevelVersion, meta: Obj, spec: Obj) -> Result:
        if lv.level == PRIVILEGED:
            return Result()
        found = []
        for fn in self._row(lv):
            verdict = fn(meta, spec)
            if verdict is not None:
                found.append(verdict)
        return Result(tuple(found))


def _in_force(check: Check, minor: int) -> VersionedCheck | None:
    current: VersionedCheck | None = None
    for vc in check.versions:
        if vc.minimum.minor <= minor:
            current = vc
    return current


DEFAULT = Evaluator()
