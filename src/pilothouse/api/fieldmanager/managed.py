"""The ``metadata.managedFields`` list: decoding, encoding, capping.

Upstream identifies a manager by the entry without its fields and time, and,
for appliers, without its ``apiVersion`` (an applier stays the same manager
across versions): a :class:`ManagerKey`. When a list names one manager twice,
the later entry wins, as upstream's decoding into a map does.

Entries are written back sorted as upstream sorts them: ``Apply`` before
``Update``, then by time (seconds; no time counts as 0), manager, apiVersion and
subresource; in each entry the keys come in ``ManagedFieldsEntry`` order, and
``fieldsV1`` in structured-merge-diff's order.

No I/O here: this module is part of the bottom ``api`` layer.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from pilothouse.api import gostrings
from pilothouse.api.fieldmanager import fieldpath, gotext

APPLY = "Apply"
UPDATE = "Update"
FIELDS_V1 = "FieldsV1"
MAX_UPDATE_MANAGERS = 10
ANCIENT_CHANGES = "ancient-changes"
BEFORE_FIRST_APPLY = "before-first-apply"


class DecodeError(ValueError):
    """A managedFields list upstream could not decode."""


@dataclass(frozen=True, slots=True)
class ManagerKey:
    """Who a managedFields entry belongs to."""

    manager: str
    operation: str
    api_version: str = ""  # only for Update: appliers keep their identity across versions
    subresource: str = ""

    @classmethod
    def of(cls, manager: str, operation: str, api_version: str, subresource: str) -> ManagerKey:
        return cls(manager, operation, api_version if operation == UPDATE else "", subresource)

    def identifier(self) -> str:
        """The JSON upstream uses as the manager's name (and sorts conflicts by)."""
        parts = []
        if self.manager:
            parts.append('"manager":' + gotext.json_string(self.manager))
        if self.operation:
            parts.append('"operation":' + gotext.json_string(self.operation))
        if self.api_version:
            parts.append('"apiVersion":' + gotext.json_string(self.api_version))
        if self.subresource:
            parts.append('"subresource":' + gotext.json_string(self.subresource))
        return "{" + ",".join(parts) + "}"

    def describe(self, api_version: str) -> str:
        """``"kubectl" with subresource "scale" using apps/v1``, as conflicts print it."""
        text = gostrings.quote(self.manager)
        if self.subresource:
            text += f" with subresource {gostrings.quote(self.subresource)}"
        if self.operation == UPDATE:
            text += f" using {api_version}"
        return text


@dataclass(frozen=True, slots=True)
class Entry:
    """The fields one manager owns, the version it spoke and when it last changed them."""

    fields: fieldpath.Set
    api_version: str
    time: str | None = None

    def with_fields(self, fields: fieldpath.Set) -> Entry:
        return self if fields is self.fields else replace(self, fields=fields)


Managed = dict[ManagerKey, Entry]


def is_reset(entries: Any) -> bool:
    """Whether a client asked to clear managedFields: ``[]`` or ``[{}]``."""
    if not isinstance(entries, list):
        return False
    return not entries or (len(entries) == 1 and entries[0] == {})


def decode(entries: Any) -> Managed:
    """The managers of a managedFields list (DecodeError when upstream would fail)."""
    managed: Managed = {}
    if entries is None:
        return managed
    if not isinstance(entries, list):
        raise DecodeError("managedFields must be a list")
    for position, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise DecodeError(f"invalid managed fields entry {position}")
        operation = entry.get("operation")
        if operation not in (APPLY, UPDATE):
            raise DecodeError("operation must be `Apply` or `Update`")
        api_version = entry.get("apiVersion")
        if not isinstance(api_version, str) or not api_version:
            raise DecodeError("apiVersion must not be empty")
        fields_type = entry.get("fieldsType")
        if not fields_type:
            raise DecodeError(f"missing fieldsType in managed fields entry {position}")
        if fields_type != FIELDS_V1:
            raise DecodeError(
                f"invalid fieldsType {fields_type!r} in managed fields entry {position}"
            )
        manager = entry.get("manager") or ""
        subresource = entry.get("subresource") or ""
        time = entry.get("time")
        if not isinstance(manager, str) or not isinstance(subresource, str):
            raise DecodeError(f"invalid managed fields entry {position}")
        try:
            fields = fieldpath.Set.from_fields(entry.get("fieldsV1") or {})
        except (ValueError, TypeError) as problem:
            raise DecodeError(f"error decoding set: {problem}") from problem
        key = ManagerKey.of(manager, operation, api_version, subresource)
        managed[key] = Entry(fields, api_version, time if isinstance(time, str) else None)
    return managed


def _sort_key(item: tuple[ManagerKey, Entry]) -> tuple[Any, ...]:
    key, entry = item
    return (
        key.operation,
        fieldpath.unix_seconds(entry.time),
        key.manager,
        entry.api_version,
        key.subresource,
    )


def encode(managed: Managed) -> list[dict[str, Any]]:
    """The managedFields list of these managers, in upstream's order."""
    out = []
    for key, entry in sorted(managed.items(), key=_sort_key):
        encoded: dict[str, Any] = {}
        if key.manager:
            encoded["manager"] = key.manager
        encoded["operation"] = key.operation
        encoded["apiVersion"] = entry.api_version
        if entry.time:
            encoded["time"] = entry.time
        encoded["fieldsType"] = FIELDS_V1
        encoded["fieldsV1"] = entry.fields.to_fields()
        if key.subresource:
            encoded["subresource"] = key.subresource
        out.append(encoded)
    return out


def cap_update_managers(managed: Managed, limit: int = MAX_UPDATE_MANAGERS) -> Managed:
    """Merge the oldest Update entries into ``ancient-changes`` until at most ``limit``.

    Upstream's capmanagers: the oldest updaters (by time, then identifier) are
    folded into one ``ancient-changes`` entry per apiVersion, which takes the time
    of the last entry folded into it.
    """
    updaters = [key for key in managed if key.operation == UPDATE]
    if len(updaters) <= limit:
        return managed
    out = dict(managed)
    updaters.sort(key=lambda k: (fieldpath.unix_seconds(managed[k].time), k.identifier()))
    first_of_version: dict[str, ManagerKey] = {}
    remaining = len(updaters)
    for key in updaters:
        if remaining <= limit:
            break
        entry = managed[key]
        version = entry.api_version
        bucket = ManagerKey(ANCIENT_CHANGES, UPDATE, version)
        first = first_of_version.get(version)
        if first is None:
            first_of_version[version] = key
            continue
        if bucket not in out:
            out[bucket] = out.pop(first)
        out[bucket] = Entry(entry.fields | out[bucket].fields, version, entry.time)
        del out[key]
        remaining -= 1
    return out
