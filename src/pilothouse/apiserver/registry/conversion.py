"""Conversion between API versions that share one storage resource.

``events.k8s.io/v1`` Events are the same objects as core ``v1`` Events, stored
in the core shape (as upstream stores them); this module maps the renamed
fields both ways (upstream: ``pkg/apis/events/v1/conversion.go``).
``autoscaling/v1`` HorizontalPodAutoscalers are stored as ``autoscaling/v2``
(:mod:`pilothouse.api.autoscaling_v1`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from pilothouse.api import autoscaling_v1, resources
from pilothouse.api.meta import Obj

# events.k8s.io/v1 field -> core/v1 field
_EVENT_FIELDS = {
    "regarding": "involvedObject",
    "note": "message",
    "reportingController": "reportingComponent",
    "deprecatedSource": "source",
    "deprecatedFirstTimestamp": "firstTimestamp",
    "deprecatedLastTimestamp": "lastTimestamp",
    "deprecatedCount": "count",
}
_SHARED_EVENT_FIELDS = (
    "eventTime",
    "series",
    "reportingInstance",
    "action",
    "reason",
    "related",
    "type",
)


def _rename(obj: Obj, mapping: dict[str, str], api_version: str) -> Obj:
    out: dict[str, Any] = {"apiVersion": api_version, "kind": "Event"}
    if "metadata" in obj:
        out["metadata"] = obj["metadata"]
    for src, dst in mapping.items():
        if src in obj:
            out[dst] = obj[src]
    for field in _SHARED_EVENT_FIELDS:
        if field in obj:
            out[field] = obj[field]
    return out


class Converter(Protocol):
    def to_storage(self, obj: Obj) -> Obj: ...

    def to_api(self, obj: Obj) -> Obj: ...


class RemoteConverter(Protocol):
    """Conversion that needs I/O (a CRD's conversion webhook): whole lists at once."""

    async def to_storage(self, obj: Obj) -> Obj: ...

    async def to_api(self, objs: list[Obj]) -> list[Obj]: ...


@dataclass(frozen=True)
class RenamingConverter:
    to_storage_map: dict[str, str]
    storage_api_version: str
    api_version: str

    def to_storage(self, obj: Obj) -> Obj:
        return _rename(obj, self.to_storage_map, self.storage_api_version)

    def to_api(self, obj: Obj) -> Obj:
        back = {v: k for k, v in self.to_storage_map.items()}
        return _rename(obj, back, self.api_version)


class _HPAV1:
    def to_storage(self, obj: Obj) -> Obj:
        return autoscaling_v1.to_v2(obj)

    def to_api(self, obj: Obj) -> Obj:
        return autoscaling_v1.to_v1(obj)


_EVENTS_V1 = RenamingConverter(_EVENT_FIELDS, "v1", "events.k8s.io/v1")
_HPA_V1 = _HPAV1()


def for_resource(resource: resources.Resource) -> Converter | None:
    """The converter for a resource stored in another version's shape, or None."""
    if resource.group == "events.k8s.io":
        return _EVENTS_V1
    if (resource.group, resource.version, resource.kind) == (
        "autoscaling",
        "v1",
        "HorizontalPodAutoscaler",
    ):
        return _HPA_V1
    return None
