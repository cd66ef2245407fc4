"""Server-side apply and managedFields for every write, as upstream's FieldManager does.

:func:`update_managed_fields` is called on every create, update and non-apply
patch with the decoded, defaulted object the client sent (before the registry's
strategy resets anything), :func:`apply` on every apply patch. Both are pure:
they read their arguments, never change them, and return a new object that may
share unchanged parts with them (copy before changing it in place).

Timestamps are whatever the caller passes as ``now`` (RFC 3339, seconds, UTC:
``2024-05-01T12:00:00Z``), so a fake clock works in tests.

No I/O here: this module is part of the bottom ``api`` layer.
"""

from __future__ import annotations

import functools
import unicodedata
from typing import Any

from pilothouse.api.fieldmanager import (
    creation,
    fieldpath,
    kinds,
    lastapplied,
    managed,
    types,
    updater,
    validation,
)
from pilothouse.api.fieldmanager.conflict import ApplyConflict, ApplyError
from pilothouse.api.fieldmanager.managed import Managed

FIELD_MANAGER_MAX_LENGTH = 128


@functools.lru_cache(maxsize=256)
def default_manager(user_agent: str) -> str:
    """The manager name of a request without ``fieldManager`` (upstream's prefixFromUserAgent).

    The user agent up to its first ``/`` (``kubectl/v1.32.0 (linux/amd64) …`` →
    ``kubectl``), without unprintable characters, at most 128 bytes. An empty
    result is recorded as ``unknown``.
    """
    out: list[str] = []
    size = 0
    for ch in user_agent.split("/", 1)[0]:
        if not _printable(ch):
            continue
        width = len(ch.encode())
        if size + width > FIELD_MANAGER_MAX_LENGTH:
            break
        out.append(ch)
        size += width
    return "".join(out)


def _printable(ch: str) -> bool:
    # Go's unicode.IsPrint: letters, marks, numbers, punctuation, symbols and ' '.
    return ch == " " or unicodedata.category(ch)[0] in "LMNPS"


def _metadata(obj: Any) -> dict[str, Any]:
    found = obj.get("metadata") if isinstance(obj, dict) else None
    return found if isinstance(found, dict) else {}


def _without_managed(obj: dict[str, Any]) -> dict[str, Any]:
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict) or "managedFields" not in metadata:
        return obj
    out = dict(obj)
    out["metadata"] = {k: v for k, v in metadata.items() if k != "managedFields"}
    return out


def _with_managed(obj: dict[str, Any], entries: Managed) -> dict[str, Any]:
    out = dict(obj)
    if not entries and "managedFields" not in _metadata(obj):
        return out
    metadata = dict(_metadata(obj))
    if entries:
        metadata["managedFields"] = managed.encode(entries)
    else:
        metadata.pop("managedFields", None)
    out["metadata"] = metadata
    return out


def _decode_or_empty(entries: Any) -> Managed:
    try:
        return managed.decode(entries)
    except managed.DecodeError:
        return {}


def _context(
    api_version: str,
    kind: str,
    subresource: str,
    now: str,
    status_subresource: bool | None,
    typ: types.Type | None = None,
) -> updater.Context:
    group, version = types.split_api_version(api_version)
    if status_subresource is None:
        status_subresource = kinds.has_status_subresource(group, version, kind)
    ignored = kinds.reset_fields(group, kind, subresource, status_subresource=status_subresource)
    return updater.Context(
        typ=typ if typ is not None else types.for_kind(group, version, kind),
        api_version=api_version,
        subresource=subresource,
        now=now,
        ignored=ignored,
    )


def _zero(api_version: str, kind: str) -> dict[str, Any]:
    group, version = types.split_api_version(api_version)
    return kinds.zero_object(group, version, kind)


def update_managed_fields(
    *,
    live: dict[str, Any] | None,
    new: dict[str, Any],
    manager: str,
    api_version: str,
    subresource: str = "",
    now: str,
    status_subresource: bool | None = None,
    typ: types.Type | None = None,
) -> dict[str, Any]:
    """``new`` with managedFields after a create, update or non-apply patch (operation Update).

    The fields that changed from ``live`` to ``new`` (every field on create,
    ``live=None``) become ``manager``'s and leave every other manager; fields
    ``new`` removed leave everyone; managers left with nothing are dropped; at
    most 10 Update entries are kept (older ones fold into ``ancient-changes``).

    managedFields the client sent are taken as the starting point (on the main
    resource only); ``[]`` or ``[{}]`` clears them, and an existing object
    without managedFields is then no longer tracked until an apply.
    ``status_subresource`` says whether the kind serves ``/status`` (then the main
    resource owns no ``status``); None looks the built-in kinds up.
    """
    kind = str(new.get("kind") or (live or {}).get("kind") or "")
    new_metadata = _metadata(new)
    live_entries = _metadata(live).get("managedFields") if live is not None else None
    if subresource:
        current = _decode_or_empty(live_entries)
    elif managed.is_reset(new_metadata.get("managedFields")):
        current = {}
    else:
        current = _decode_or_empty(new_metadata.get("managedFields"))
        if not current:
            current = _decode_or_empty(live_entries)
    creating = live is None or not _metadata(live).get("uid")
    new_body = _without_managed(new)
    if not current and not creating:
        return _with_managed(new_body, {})
    ctx = _context(api_version, kind, subresource, now, status_subresource, typ)
    live_body = _zero(api_version, kind) if live is None else _without_managed(live)
    if not current:
        # Nobody owns anything yet (every create): the writer gets what it set.
        return _with_managed(new_body, _first_entry(live_body, new_body, manager, ctx))
    current = updater.update(
        live_body, new_body, current, manager, ctx, keep_time=subresource == "scale"
    )
    return _with_managed(new_body, managed.cap_update_managers(current))


def _first_entry(
    live_body: dict[str, Any], new_body: dict[str, Any], manager: str, ctx: updater.Context
) -> Managed:
    """What :func:`updater.update` makes of no managers at all, without its set algebra.

    Only one entry can come out, so it is built directly, its fieldsV1 already
    encoded (:func:`.creation.changed_fields`)."""
    fields = creation.changed_fields(
        live_body,
        new_body,
        ctx.typ,
        ignored=ctx.ignored.body if ctx.ignored else None,
        stripped=kinds.STRIPPED.body,
    )
    if not fields:
        return {}
    key = managed.ManagerKey.of(
        manager or "unknown", managed.UPDATE, ctx.api_version, ctx.subresource
    )
    # A scale write keeps the writer's previous time, and there is none.
    time = None if ctx.subresource == "scale" else ctx.now
    return {key: managed.Entry(fieldpath.Set(fields, _encoded=fields), ctx.api_version, time)}


def _gvk_string(obj: dict[str, Any]) -> str:
    api_version = obj.get("apiVersion")
    group, version = types.split_api_version(api_version if isinstance(api_version, str) else "")
    kind = obj.get("kind")
    return f"{group}/{version}, Kind={kind if isinstance(kind, str) else ''}"


def _check_config(config: dict[str, Any], api_version: str, kind: str, typ: types.Type) -> None:
    if config.get("apiVersion") != api_version or config.get("kind") != kind:
        raise ApplyError(f"invalid object type: {_gvk_string(config)}")
    if isinstance(_metadata(config).get("managedFields"), list):
        raise ApplyError("metadata.managedFields must be nil")
    problems = validation.validate(config, typ)
    if problems:
        metadata = _metadata(config)
        where = f"{metadata.get('namespace') or ''}/{metadata.get('name') or ''}"
        text = problems[0] if len(problems) == 1 else "errors:\n  " + "\n  ".join(problems)
        raise ApplyError(
            f"failed to create typed patch object ({where}; {_gvk_string(config)}): {text}",
            code=500,
            reason="",
        )


def apply(
    *,
    live: dict[str, Any] | None,
    config: dict[str, Any],
    manager: str,
    api_version: str,
    force: bool,
    subresource: str = "",
    now: str,
    kind: str | None = None,
    status_subresource: bool | None = None,
    typ: types.Type | None = None,
) -> dict[str, Any]:
    """Server-side apply (operation Apply): the merged object with its managedFields.

    ``live=None`` creates the object. Raises :class:`ApplyConflict` when the
    configuration sets fields other managers own to other values, unless
    ``force`` (then they change hands); :class:`ApplyError` for configurations
    upstream refuses. Fields ``manager`` applied before and omits now are removed
    unless another manager owns them too. ``kind`` is the endpoint's kind
    (default: the live object's, else the configuration's).

    Left to the caller, as upstream's handler and registry do it: checking the
    merged object's name and namespace against the URL, defaulting it, the
    strategy's resets and validation.
    """
    expected_kind = kind or str((live or {}).get("kind") or config.get("kind") or "")
    live_entries = _metadata(live).get("managedFields") if live is not None else None
    try:
        current = managed.decode(live_entries)
    except managed.DecodeError as problem:
        raise ApplyError(
            f"failed to decode managed fields: {problem}", code=500, reason=""
        ) from problem
    ctx = _context(api_version, expected_kind, subresource, now, status_subresource, typ)
    _check_config(config, api_version, expected_kind, ctx.typ)
    live_body = _without_managed(live) if live is not None else {}

    def attempt(forced: bool) -> tuple[dict[str, Any], Managed]:
        entries = current
        if not entries and live is not None:
            # Upstream credits what is already there to "before-first-apply".
            entries = updater.update(
                _zero(api_version, expected_kind),
                live_body,
                entries,
                managed.BEFORE_FIRST_APPLY,
                ctx,
            )
            entries = managed.cap_update_managers(entries)
        result, entries, _ = updater.apply_config(
            live_body, config, entries, manager, ctx, force=forced
        )
        return result, entries

    try:
        result, entries = attempt(force)
    except updater.Conflicts as failed:
        if manager != lastapplied.KUBECTL:
            raise ApplyConflict(failed.conflicts) from None
        allowed = lastapplied.allowed_conflicts(live_body, ctx.typ, api_version)
        if allowed is None or failed.paths() - allowed:
            remaining = [c for c in failed.conflicts if allowed is None or not allowed.has(c.path)]
            raise ApplyConflict(remaining) from None
        result, entries = attempt(True)
    if manager == lastapplied.KUBECTL:
        result = lastapplied.update_annotation(result, config)
    return _with_managed(result, entries)
