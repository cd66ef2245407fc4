"""Extension points, statuses and cycle state (upstream ``framework/interface.go``).

Plugins here are vectorised: instead of being asked about one node at a time,
a Filter plugin answers for every node at once with a boolean mask over the
rows of the cache's :class:`~pilothouse.scheduler.nodetable.NodeTable`, and a
Score plugin scores an array of rows. Reasons are asked for only when a pod
fits nowhere (:meth:`FilterPlugin.explain`), so the common path builds no
per-node objects.

A plugin is a class with a ``name`` that subclasses the extension points it
implements; the framework finds them with ``isinstance``.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from pilothouse.scheduler.types import PodInfo

MAX_NODE_SCORE = 100
MIN_NODE_SCORE = 0

Mask = npt.NDArray[np.bool_]
Rows = npt.NDArray[np.intp]
Scores = npt.NDArray[np.int64]


class Code(enum.IntEnum):
    SUCCESS = 0
    ERROR = 1
    UNSCHEDULABLE = 2
    UNSCHEDULABLE_AND_UNRESOLVABLE = 3
    WAIT = 4
    SKIP = 5
    PENDING = 6


@dataclass(frozen=True, slots=True)
class Status:
    """The result of running a plugin: a code, reasons, and who said so."""

    code: Code = Code.SUCCESS
    reasons: tuple[str, ...] = ()
    plugin: str = ""

    @property
    def message(self) -> str:
        return ", ".join(self.reasons)

    def is_success(self) -> bool:
        return self.code == Code.SUCCESS

    def is_skip(self) -> bool:
        return self.code == Code.SKIP

    def is_rejected(self) -> bool:
        return self.code in (
            Code.UNSCHEDULABLE,
            Code.UNSCHEDULABLE_AND_UNRESOLVABLE,
            Code.PENDING,
        )

    def with_plugin(self, plugin: str) -> Status:
        return self if self.plugin == plugin else Status(self.code, self.reasons, plugin)


SUCCESS = Status()
SKIP = Status(Code.SKIP)


def unschedulable(*reasons: str) -> Status:
    return Status(Code.UNSCHEDULABLE, reasons)


def unresolvable(*reasons: str) -> Status:
    return Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, reasons)


def error(message: str) -> Status:
    return Status(Code.ERROR, (message,))


@dataclass
class CycleState:
    """Data plugins share during one scheduling cycle (PreFilter computes, Filter reads)."""

    data: dict[str, Any] = field(default_factory=dict)
    skip_filter: set[str] = field(default_factory=set)
    skip_score: set[str] = field(default_factory=set)

    def read(self, key: str) -> Any:
        return self.data.get(key)

    def write(self, key: str, value: Any) -> None:
        self.data[key] = value


@dataclass(frozen=True, slots=True)
class PreFilterResult:
    """Node names the pod can only go to (None: any node)."""

    node_names: frozenset[str] | None = None


# --- cluster events (what can make an unschedulable pod schedulable) --------------------
class ActionType(enum.IntFlag):
    ADD = 1
    DELETE = 2
    UPDATE_NODE_ALLOCATABLE = 4
    UPDATE_NODE_LABEL = 8
    UPDATE_NODE_TAINT = 16
    UPDATE_NODE_CONDITION = 32
    UPDATE_POD_LABEL = 64
    UPDATE_POD_SCALE_DOWN = 128
    UPDATE_POD_TOLERATION = 256
    UPDATE_POD_SCHEDULING_GATES = 512
    UPDATE = (
        UPDATE_NODE_ALLOCATABLE
        | UPDATE_NODE_LABEL
        | UPDATE_NODE_TAINT
        | UPDATE_NODE_CONDITION
        | UPDATE_POD_LABEL
        | UPDATE_POD_SCALE_DOWN
        | UPDATE_POD_TOLERATION
        | UPDATE_POD_SCHEDULING_GATES
    )
    ALL = ADD | DELETE | UPDATE


NODE = "Node"
POD = "Pod"  # assigned pods
UNSCHEDULED_POD = "UnscheduledPod"  # the pending pod itself changed
NAMESPACE = "Namespace"
PERSISTENT_VOLUME = "PersistentVolume"
PERSISTENT_VOLUME_CLAIM = "PersistentVolumeClaim"
STORAGE_CLASS = "StorageClass"
WILDCARD = "*"


@dataclass(frozen=True, slots=True)
class ClusterEvent:
    resource: str
    action: ActionType
    label: str = ""

    def matches(self, other: ClusterEvent) -> bool:
        """True if ``other`` (what happened) is covered by this registration."""
        if self.resource == WILDCARD:
            return True
        return self.resource == other.resource and bool(self.action & other.action)


EVENT_UNSCHEDULABLE_TIMEOUT = ClusterEvent(WILDCARD, ActionType.ALL, "UnschedulableTimeout")
EVENT_FORCE_ACTIVATE = ClusterEvent(WILDCARD, ActionType.ALL, "ForceActivate")


# --- extension points -------------------------------------------------------------------
class Plugin(abc.ABC):  # noqa: B024 - the extension points below hold the abstract methods
    """Base of every plugin: a name, and the events that may make a rejected pod fit."""

    name = ""

    def events_to_register(self) -> list[ClusterEvent]:
        return []


class QueueSortPlugin(Plugin):
    @abc.abstractmethod
    def sort_key(self, priority: int, timestamp: float) -> tuple[float, ...]: ...


class PreEnqueuePlugin(Plugin):
    @abc.abstractmethod
    def pre_enqueue(self, pod: PodInfo) -> Status: ...


class PreFilterPlugin(Plugin):
    @abc.abstractmethod
    def pre_filter(
        self, state: CycleState, pod: PodInfo
    ) -> tuple[PreFilterResult | None, Status]: ...


class FilterPlugin(Plugin):
    @abc.abstractmethod
    def filter(self, state: CycleState, pod: PodInfo) -> Mask | None:
        """A mask over node rows: True where the pod may go (None: everywhere)."""
        ...

    @abc.abstractmethod
    def explain(self, state: CycleState, pod: PodInfo, rows: Rows) -> list[Status]:
        """Why each of ``rows`` (which this plugin rejected) failed."""
        ...


class PostFilterPlugin(Plugin):
    @abc.abstractmethod
    def post_filter(
        self, state: CycleState, pod: PodInfo, node_status: dict[int, Status]
    ) -> Awaitable[tuple[str | None, Status]]:
        """Try to make the pod schedulable later; returns the nominated node name."""
        ...


class PreScorePlugin(Plugin):
    @abc.abstractmethod
    def pre_score(self, state: CycleState, pod: PodInfo, rows: Rows) -> Status: ...


class ScorePlugin(Plugin):
    @abc.abstractmethod
    def score(self, state: CycleState, pod: PodInfo, rows: Rows) -> Scores: ...

    def normalize(self, state: CycleState, pod: PodInfo, rows: Rows, scores: Scores) -> Scores:
        return scores


class ReservePlugin(Plugin):
    @abc.abstractmethod
    def reserve(self, state: CycleState, pod: PodInfo, node: str) -> Status: ...

    @abc.abstractmethod
    def unreserve(self, state: CycleState, pod: PodInfo, node: str) -> None: ...


class PreBindPlugin(Plugin):
    @abc.abstractmethod
    async def pre_bind(self, state: CycleState, pod: PodInfo, node: str) -> Status: ...


class BindPlugin(Plugin):
    @abc.abstractmethod
    async def bind(self, state: CycleState, pod: PodInfo, node: str) -> Status: ...


class PostBindPlugin(Plugin):
    @abc.abstractmethod
    def post_bind(self, state: CycleState, pod: PodInfo, node: str) -> None: ...


EXTENSION_POINTS: dict[str, type[Plugin]] = {
    "queueSort": QueueSortPlugin,
    "preEnqueue": PreEnqueuePlugin,
    "preFilter": PreFilterPlugin,
    "filter": FilterPlugin,
    "postFilter": PostFilterPlugin,
    "preScore": PreScorePlugin,
    "score": ScorePlugin,
    "reserve": ReservePlugin,
    "preBind": PreBindPlugin,
    "bind": BindPlugin,
    "postBind": PostBindPlugin,
}


def default_normalize(scores: Scores, *, reverse: bool = False) -> Scores:
    """Upstream's ``DefaultNormalizeScore``: scale to 0..100 by the maximum (integer math)."""
    if len(scores) == 0:
        return scores
    top = int(scores.max())
    if top <= 0:
        if reverse:
            return np.full(len(scores), MAX_NODE_SCORE, dtype=np.int64)
        return scores
    out = (MAX_NODE_SCORE * scores) // top
    if reverse:
        out = MAX_NODE_SCORE - out
    return out.astype(np.int64)
