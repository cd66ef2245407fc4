"""The pods each ReplicaSet controls, counted as pod events arrive.

A ReplicaSet's sync needs, for its set: how many of the pods it controls are
active and still selected (``status.replicas``, and how many to create or
delete), how many of those carry the template's labels, are ready and are
available; and which active pods it controls but no longer selects (to
release). Upstream recounts all of this over every pod of the set, and claims
over every pod of the namespace, on each sync. Syncs come as fast as pod
events do, so that work per pod grows with the number of pods: at 10,000 pods
it was more than half of the server's CPU.

Here each set's pods form a :class:`Group`, found through the pod informer's
controller-UID index when the set is first synced and kept up to date by
:meth:`OwnedPods.observe` from the pod informer's events after that, so a sync
reads its counts in constant time. What a pod counts for depends on the set's
spec (its selector, its template's labels, whether ``minReadySeconds`` is set):
a :class:`View` of it; a group whose set's spec changed is counted again from
the index, once.

Concurrency: everything here runs on the event loop's one thread — the
informer's handlers call :meth:`OwnedPods.observe`, the controller's workers
call :meth:`OwnedPods.group` and :meth:`Group.snapshot` between awaits — so no
lock is needed; a sync works from a :class:`Counts` snapshot taken at one
instant, as upstream works from the pod list it claimed.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pilothouse.api import meta, selectors
from pilothouse.client import lister
from pilothouse.controllers import podcontrol

Obj = dict[str, Any]


def controller_uid(pod: Obj) -> str:
    """The uid of the pod's controller ("" for none): the group it belongs to."""
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid") or "")
    return ""


@dataclass(frozen=True, slots=True)
class Facts:
    """What one pod counts for in its set (under the set's :class:`View`)."""

    active: bool  # neither finished nor being deleted
    selected: bool  # the set's selector matches its labels
    labeled: bool  # it carries every label of the set's template
    ready: bool
    since: float | None  # when Ready turned True, kept only when minReadySeconds is set

    @property
    def counted(self) -> bool:
        return self.active and self.selected


@dataclass(frozen=True, slots=True)
class View:
    """The parts of a set's spec its pods' :class:`Facts` depend on."""

    key: str  # what tells one view from another (see :func:`view_key`)
    selector: selectors.LabelSelector
    template_labels: dict[str, str]
    min_ready: bool

    def facts(self, pod: Obj) -> Facts:
        labels = (pod.get("metadata") or {}).get("labels") or {}
        cond = podcontrol.ready_condition(pod)
        since = None
        if cond is not None and self.min_ready:
            since = meta.parse_time(cond.get("lastTransitionTime"))
        return Facts(
            active=podcontrol.is_active(pod),
            # An empty selector selects nothing here (validation never lets one through).
            selected=not self.selector.empty and self.selector.matches(labels),
            labeled=all(labels.get(k) == v for k, v in self.template_labels.items()),
            ready=cond is not None,
            since=since,
        )


def view_key(rs: Obj) -> str:
    """A string that changes whenever what the set's pods count for may change."""
    spec = rs.get("spec") or {}
    template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    return json.dumps(
        [spec.get("selector"), template_labels, bool(int(spec.get("minReadySeconds") or 0))],
        sort_keys=True,
    )


@dataclass(frozen=True, slots=True)
class Counts:
    """One set's counts at one instant (a sync's snapshot)."""

    replicas: int
    fully_labeled: int
    ready: int
    # When each ready pod turned ready, sorted (one whose lastTransitionTime does not
    # parse is never available); None when minReadySeconds is not set.
    ready_since: tuple[float, ...] | None

    def available(self, min_ready_seconds: int, now: float) -> int:
        """Ready pods ready for at least ``min_ready_seconds`` (podcontrol.pod_available)."""
        if min_ready_seconds <= 0 or self.ready_since is None:
            return self.ready
        # The first index whose ``since + min_ready_seconds`` is past ``now``, searched with
        # pod_available's own comparison (not ``now - min``: rounding could differ).
        lo, hi = 0, len(self.ready_since)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.ready_since[mid] + min_ready_seconds <= now:
                lo = mid + 1
            else:
                hi = mid
        return lo


@dataclass(eq=False)
class Group:
    """The pods one set controls (by controller uid), with running counts."""

    view: View
    members: dict[str, Facts] = field(default_factory=dict)  # pod key → facts
    replicas: int = 0
    fully_labeled: int = 0
    ready: int = 0
    _since: list[float] = field(default_factory=list)  # sorted
    unselected: set[str] = field(default_factory=set)  # active pods it must release

    def add(self, key: str, facts: Facts) -> None:
        self.remove(key)
        self.members[key] = facts
        self._count(key, facts, 1)

    def remove(self, key: str) -> None:
        facts = self.members.pop(key, None)
        if facts is not None:
            self._count(key, facts, -1)

    def _count(self, key: str, facts: Facts, sign: int) -> None:
        if not facts.active:
            return
        if not facts.selected:
            if sign > 0:
                self.unselected.add(key)
            else:
                self.unselected.discard(key)
            return
        self.replicas += sign
        self.fully_labeled += sign if facts.labeled else 0
        if not facts.ready:
            return
        self.ready += sign
        if facts.since is None:
            return
        if sign > 0:
            bisect.insort(self._since, facts.since)
        else:
            del self._since[bisect.bisect_left(self._since, facts.since)]

    def counted_keys(self) -> Iterator[str]:
        """The keys of the active, selected pods (a walk over the set: for scaling down)."""
        return (k for k, f in self.members.items() if f.counted)

    def snapshot(self, extra: Iterable[tuple[str, Obj]] = ()) -> Counts:
        """The counts now, with ``extra`` pods (just adopted, perhaps not yet seen by the
        informer) counted too unless they already are."""
        replicas, labeled, ready = self.replicas, self.fully_labeled, self.ready
        since = list(self._since) if self.view.min_ready else None
        for key, pod in extra:
            known = self.members.get(key)
            if known is not None and known.counted:
                continue
            facts = self.view.facts(pod)
            if not facts.counted:
                continue
            replicas += 1
            labeled += 1 if facts.labeled else 0
            if facts.ready:
                ready += 1
                if since is not None and facts.since is not None:
                    bisect.insort(since, facts.since)
        return Counts(
            replicas=replicas,
            fully_labeled=labeled,
            ready=ready,
            ready_since=tuple(since) if since is not None else None,
        )


class OwnedPods:
    """Groups of pods by their controller's uid, for the sets synced so far.

    Pods whose controller has no group (not a set of this controller, or one not
    synced yet) cost one dict lookup per event and are kept nowhere."""

    def __init__(self, pods: lister.Indexer) -> None:
        # The pod informer's cache, indexed by lister.OWNER_UID_INDEX (controller uid).
        self._pods = pods
        self._groups: dict[str, Group] = {}

    def __len__(self) -> int:
        return len(self._groups)

    def group(self, uid: str, key: str, make_view: Callable[[], View]) -> Group:
        """The group of the set with ``uid`` whose view has ``key`` (see :func:`view_key`),
        counted afresh from the index when new or when the view changed."""
        group = self._groups.get(uid)
        if group is not None and group.view.key == key:
            return group
        view = make_view()
        group = Group(view)
        for pod in self._pods.by_index(lister.OWNER_UID_INDEX, uid):
            group.add(lister.key_of(pod), view.facts(pod))
        self._groups[uid] = group
        return group

    def forget(self, uid: str) -> None:
        """The set is gone: drop its group (a set made again has a new uid)."""
        self._groups.pop(uid, None)

    def observe(self, old: Obj | None, new: Obj | None) -> None:
        """A pod was added (``old`` None), changed, or deleted (``new`` None)."""
        pod = new if new is not None else old
        if pod is None:
            return
        key = lister.key_of(pod)
        if old is not None:
            group = self._groups.get(controller_uid(old))
            if group is not None:
                group.remove(key)
        if new is not None:
            group = self._groups.get(controller_uid(new))
            if group is not None:
                group.add(key, group.view.facts(new))
