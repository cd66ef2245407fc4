"""Who owns what after a write: structured-merge-diff's ``Updater`` with upstream's wrappers.

:func:`update` records a non-apply write (create, update, patch): the fields it
changed move to the writer and leave every other manager; fields it removed
leave everyone. :func:`apply_config` merges an applied configuration, prunes
what the applier let go, and fails with the conflicting fields unless forced.

Both follow the chain upstream builds (``NewDefaultFieldManager``): the reset
fields of the endpoint are never owned, stripped metadata is never owned, a
writer that took no field keeps its old entry and time, and the time of an
entry moves only when its manager changed something.

No I/O here: this module is part of the bottom ``api`` layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pilothouse.api.fieldmanager import fieldpath, kinds, merge, typed
from pilothouse.api.fieldmanager.conflict import Conflict
from pilothouse.api.fieldmanager.managed import APPLY, UPDATE, Entry, Managed, ManagerKey
from pilothouse.api.fieldmanager.types import Type


class Conflicts(Exception):
    """The fields an apply would take from other managers."""

    def __init__(self, conflicts: list[Conflict]) -> None:
        super().__init__(f"{len(conflicts)} conflicts")
        self.conflicts = conflicts

    def paths(self) -> fieldpath.Set:
        return fieldpath.Set.of(*(c.path for c in self.conflicts))


@dataclass(frozen=True, slots=True)
class Context:
    """What every write of one request shares."""

    typ: Type
    api_version: str
    subresource: str
    now: str
    ignored: fieldpath.Set | None  # the endpoint's reset fields


def _strip(fields: fieldpath.Set) -> fieldpath.Set:
    return fields - kinds.STRIPPED


def _take(
    managed: Managed,
    comparison: typed.Comparison,
    *,
    skip: ManagerKey | None,
    force: bool,
) -> Managed:
    """Remove changed fields from other managers (or raise when not forced)."""
    changed = comparison.modified | comparison.added
    conflicts: dict[ManagerKey, fieldpath.Set] = {}
    if changed:
        for key, entry in managed.items():
            if key == skip:
                continue
            taken = entry.fields & changed
            if taken:
                conflicts[key] = taken
    if conflicts and not force:
        raise Conflicts(
            [
                Conflict(key, managed[key].api_version, path)
                for key, taken in conflicts.items()
                for path in taken.paths()
            ]
        )
    out: Managed = {}
    for key, entry in managed.items():
        fields = entry.fields
        if key != skip:
            if key in conflicts:
                fields = fields - conflicts[key]
            if comparison.removed:
                fields = fields - comparison.removed
        if fields:
            out[key] = entry.with_fields(fields)
    return out


def update(
    live: Any, new: Any, managed: Managed, manager: str, ctx: Context, *, keep_time: bool = False
) -> Managed:
    """The managers after ``manager`` wrote ``new`` over ``live`` (not by apply).

    ``keep_time`` leaves the writer's time as it was (upstream's scale handler
    carries the parent's times over, so scale entries get none of their own).
    """
    comparison = typed.compare(live, new, ctx.typ).filtered(ctx.ignored)
    if not comparison:
        # Upstream drops managers that own nothing on every write.
        return {key: entry for key, entry in managed.items() if entry.fields}
    out = _take(managed, comparison, skip=None, force=True)
    taken = _strip(comparison.modified | comparison.added)
    if not taken:
        return out
    key = ManagerKey.of(manager or "unknown", UPDATE, ctx.api_version, ctx.subresource)
    previous = out.get(key)
    if previous is not None:
        taken = taken | previous.fields
    before = managed.get(key)
    if before is not None and taken == before.fields:
        # The writer changed only fields it already owned (a Lease renewal, a node's
        # status report): its set is the one it had, whose encoding is already made.
        taken = before.fields
    time = (previous.time if previous else None) if keep_time else ctx.now
    out[key] = Entry(taken, ctx.api_version, time)
    return out


def apply_config(
    live: Any, config: Any, managed: Managed, manager: str, ctx: Context, *, force: bool
) -> tuple[Any, Managed, bool]:
    """Merge ``config`` into ``live``: the new object, the managers, whether it changed."""
    key = ManagerKey.of(manager or "unknown", APPLY, ctx.api_version, ctx.subresource)
    new = merge.merge(live, config, ctx.typ)
    previous = managed.get(key)
    applied = typed.to_field_set(config, ctx.typ)
    if ctx.ignored:
        applied = applied.recursive_difference(ctx.ignored)
    out = dict(managed)
    out[key] = Entry(applied, ctx.api_version, previous.time if previous else None)
    new = merge.prune(
        new,
        last_applied=previous.fields if previous else None,
        applied=applied,
        owned=[entry.fields for entry in out.values()],
        typ=ctx.typ,
    )
    comparison = typed.compare(live, new, ctx.typ).filtered(ctx.ignored)
    out = _take(out, comparison, skip=key, force=force)
    changed = live != new
    entry = out.get(key)
    if entry is not None:
        stripped = _strip(entry.fields)
        if not stripped:
            del out[key]
        else:
            out[key] = Entry(stripped, entry.api_version, ctx.now if changed else entry.time)
    return (new if changed else live), out, changed
