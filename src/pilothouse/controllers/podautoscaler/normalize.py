"""From a metric's recommendation to the replica count the HPA sets (upstream's
``normalizeDesiredReplicas`` and ``normalizeDesiredReplicasWithBehaviors``).

Without ``behavior``: scale-downs are stabilized over five minutes (the highest
recommendation in the window wins) and a scale-up may at most double the replicas
(or reach 4). With ``behavior``: recommendations are stabilized in both directions
over their windows, then the scale-up and scale-down policies limit how much may
change per period, counting the changes already made in that period (``Max`` picks
the policy allowing the biggest change, ``Min`` the smallest, ``Disabled`` none).

:class:`History` keeps each HPA's recent recommendations and scale events in memory,
as upstream does; it is touched only from the controller's event loop. Returns the
replica count and the AbleToScale/ScalingLimited conditions' reasons and messages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]

DOWNSCALE_STABILIZATION_S = 300.0
SCALE_UP_LIMIT_FACTOR = 2.0
SCALE_UP_LIMIT_MINIMUM = 4.0


@dataclass
class _Recommendation:
    replicas: int
    at: float


@dataclass
class _ScaleEvent:
    change: int
    at: float
    outdated: bool = False


@dataclass
class Outcome:
    replicas: int
    able_reason: str
    able_message: str
    limited: bool
    limited_reason: str
    limited_message: str


@dataclass
class History:
    recommendations: dict[str, list[_Recommendation]] = field(default_factory=dict)
    scale_up: dict[str, list[_ScaleEvent]] = field(default_factory=dict)
    scale_down: dict[str, list[_ScaleEvent]] = field(default_factory=dict)

    def forget(self, key: str) -> None:
        for store in (self.recommendations, self.scale_up, self.scale_down):
            store.pop(key, None)

    def record_scale(self, key: str, behavior: Obj | None, old: int, new: int, now: float) -> None:
        """Remember a change, for the policies' periods (only with ``behavior``)."""
        if behavior is None or old == new:
            return
        up = new > old
        rules = behavior.get("scaleUp" if up else "scaleDown") or {}
        longest = max(
            (int(p.get("periodSeconds") or 0) for p in rules.get("policies") or []), default=0
        )
        events = (self.scale_up if up else self.scale_down).setdefault(key, [])
        for event in events:
            if event.at < now - longest:
                event.outdated = True
        event = _ScaleEvent(abs(new - old), now)
        for i, old_event in enumerate(events):
            if old_event.outdated:
                events[i] = event
                return
        events.append(event)


def _record(history: History, key: str, replicas: int, now: float, cutoff: float) -> None:
    recs = history.recommendations.setdefault(key, [])
    for rec in recs:
        if rec.at < cutoff:
            rec.replicas, rec.at = replicas, now
            return
    recs.append(_Recommendation(replicas, now))


def _limits_without_behavior(
    current: int, desired: int, minimum: int, maximum: int
) -> tuple[int, str, str]:
    scale_up_limit = int(max(SCALE_UP_LIMIT_FACTOR * current, SCALE_UP_LIMIT_MINIMUM))
    if maximum > scale_up_limit:
        allowed_max = scale_up_limit
        reason, message = (
            "ScaleUpLimit",
            "the desired replica count is increasing faster than the maximum scale rate",
        )
    else:
        allowed_max = maximum
        reason, message = (
            "TooManyReplicas",
            "the desired replica count is more than the maximum replica count",
        )
    if desired < minimum:
        return (
            minimum,
            "TooFewReplicas",
            "the desired replica count is less than the minimum replica count",
        )
    if desired > allowed_max:
        return allowed_max, reason, message
    return desired, "DesiredWithinRange", "the desired count is within the acceptable range"


def without_behavior(
    history: History,
    key: str,
    *,
    current: int,
    desired: int,
    minimum: int,
    maximum: int,
    now: float,
) -> Outcome:
    cutoff = now - DOWNSCALE_STABILIZATION_S
    stabilized = desired
    for rec in history.recommendations.get(key, []):
        if rec.at > cutoff:
            stabilized = max(stabilized, rec.replicas)
    _record(history, key, desired, now, cutoff)
    if stabilized != desired:
        able = (
            "ScaleDownStabilized",
            "recent recommendations were higher than current one, applying the highest recent recommendation",
        )
    else:
        able = ("ReadyForNewScale", "recommended size matches current size")
    replicas, reason, message = _limits_without_behavior(current, stabilized, minimum, maximum)
    return Outcome(replicas, *able, replicas != stabilized, reason, message)


def _change_in_period(events: list[_ScaleEvent], period: float, now: float) -> int:
    cutoff = now - period
    return sum(e.change for e in events if e.at > cutoff and not e.outdated)


def scale_up_limit(
    current: int, ups: list[_ScaleEvent], downs: list[_ScaleEvent], rules: Obj, now: float
) -> int:
    select = rules.get("selectPolicy") or "Max"
    if select == "Disabled":
        return current
    pick = min if select == "Min" else max
    result: int | None = None
    for policy in rules.get("policies") or []:
        period = float(policy.get("periodSeconds") or 0)
        start = (
            current - _change_in_period(ups, period, now) + _change_in_period(downs, period, now)
        )
        value = int(policy.get("value") or 0)
        if policy.get("type") == "Pods":
            proposed = start + value
        else:
            proposed = math.ceil(start * (1 + value / 100))
        result = proposed if result is None else pick(result, proposed)
    return current if result is None else result


def scale_down_limit(
    current: int, ups: list[_ScaleEvent], downs: list[_ScaleEvent], rules: Obj, now: float
) -> int:
    select = rules.get("selectPolicy") or "Max"
    if select == "Disabled":
        return current
    pick = max if select == "Min" else min
    result: int | None = None
    for policy in rules.get("policies") or []:
        period = float(policy.get("periodSeconds") or 0)
        start = (
            current - _change_in_period(ups, period, now) + _change_in_period(downs, period, now)
        )
        value = int(policy.get("value") or 0)
        if policy.get("type") == "Pods":
            proposed = start - value
        else:
            proposed = int(start * (1 - value / 100))
        result = proposed if result is None else pick(result, proposed)
    return current if result is None else result


def with_behavior(
    history: History,
    key: str,
    behavior: Obj,
    *,
    current: int,
    desired: int,
    minimum: int,
    maximum: int,
    now: float,
) -> Outcome:
    up_rules = behavior.get("scaleUp") or {}
    down_rules = behavior.get("scaleDown") or {}
    up_cutoff = now - float(up_rules.get("stabilizationWindowSeconds") or 0)
    down_cutoff = now - float(down_rules.get("stabilizationWindowSeconds") or 0)
    up_rec = down_rec = desired
    for rec in history.recommendations.get(key, []):
        if rec.at > up_cutoff:
            up_rec = min(up_rec, rec.replicas)
        if rec.at > down_cutoff:
            down_rec = max(down_rec, rec.replicas)
    stabilized = min(max(current, up_rec), down_rec)
    _record(history, key, desired, now, min(up_cutoff, down_cutoff))
    if stabilized != desired:
        if desired >= current:
            able = (
                "ScaleUpStabilized",
                "recent recommendations were lower than current one, applying the lowest recent recommendation",
            )
        else:
            able = (
                "ScaleDownStabilized",
                "recent recommendations were higher than current one, applying the highest recent recommendation",
            )
    else:
        able = ("ReadyForNewScale", "recommended size matches current size")
    ups, downs = history.scale_up.get(key, []), history.scale_down.get(key, [])
    replicas = stabilized
    reason, message = "DesiredWithinRange", "the desired count is within the acceptable range"
    if stabilized > current:
        limit = max(current, scale_up_limit(current, ups, downs, up_rules, now))
        if maximum > limit:
            allowed, why = (
                limit,
                (
                    "ScaleUpLimit",
                    "the desired replica count is increasing faster than the maximum scale rate",
                ),
            )
        else:
            allowed, why = (
                maximum,
                (
                    "TooManyReplicas",
                    "the desired replica count is more than the maximum replica count",
                ),
            )
        if stabilized > allowed:
            replicas, (reason, message) = allowed, why
    elif stabilized < current:
        limit = min(current, scale_down_limit(current, ups, downs, down_rules, now))
        if minimum < limit:
            allowed, why = (
                limit,
                (
                    "ScaleDownLimit",
                    "the desired replica count is decreasing faster than the maximum scale rate",
                ),
            )
        else:
            allowed, why = (
                minimum,
                (
                    "TooFewReplicas",
                    "the desired replica count is less than the minimum replica count",
                ),
            )
        if stabilized < allowed:
            replicas, (reason, message) = allowed, why
    return Outcome(replicas, *able, replicas != stabilized, reason, message)
