"""Lists and resource versions: list options and pages, continue tokens, and the
resourceVersion errors upstream returns (shared by list and watch); and the LIST
itself (:func:`list_page`), from the watch cache or from the store at a revision.

Many lists run concurrently on the event loop; each pages through one snapshot (the
cache's, or the store's at one revision), so none holds up the writes."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from pilothouse.api import errors
from pilothouse.api.meta import Obj
from pilothouse.apiserver import cacheentry, listsnapshots, resourcecache, watchcache
from pilothouse.storage import interface as storage

Match = Callable[[Obj], bool]


@dataclass(slots=True)
class ListOptions:
    match: Match | None = None
    limit: int = 0
    continue_token: str = ""
    resource_version: str = ""
    resource_version_match: str = ""


@dataclass(slots=True)
class ListPage:
    entries: list[cacheentry.Entry]
    resource_version: str
    continue_token: str = ""
    remaining: int | None = None


def parse_rv(value: str, what: str = "resourceVersion") -> int:
    if value in ("", "0"):
        return 0
    try:
        rv = int(value)
    except ValueError:
        raise errors.bad_request(f"invalid {what}: {value!r}: must be an integer") from None
    if rv < 0:
        raise errors.bad_request(f"invalid {what}: {value!r}: must be non-negative")
    return rv


EXPIRED_CONTINUE = (
    "The provided continue parameter is too old to display a consistent list result. "
    "You can start a new list without the continue parameter, or use the continue token "
    "in this response to retrieve the remainder of the results. Continuing with the provided "
    "token results in an inconsistent list - objects that were created, modified, or deleted "
    "between the time the first chunk was returned and now may show up in the list."
)


def encode_continue(revision: int, start: str) -> str:
    raw = orjson.dumps({"v": "meta.k8s.io/v1", "rv": revision, "start": start})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_continue(token: str) -> tuple[int, str]:
    try:
        padded = token + "=" * (-len(token) % 4)
        data = orjson.loads(base64.urlsafe_b64decode(padded))
        if data.get("v") != "meta.k8s.io/v1":
            raise ValueError("unknown version")
        rv, start = int(data["rv"]), str(data["start"])
        if rv <= 0 or start.startswith("/") or ".." in start:
            raise ValueError("bad fields")
    except (ValueError, KeyError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise errors.bad_request("continue key is not valid: invalid continue token") from None
    return rv, start


def too_large_rv(requested: int, current: int) -> errors.StatusError:
    return errors.StatusError(
        504,
        errors.TIMEOUT,
        f"Too large resource version: {requested}, current: {current}",
        details={
            "causes": [
                {"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}
            ],
            "retryAfterSeconds": 1,
        },
    )


def list_metadata(page: ListPage) -> dict[str, Any]:
    out: dict[str, Any] = {"resourceVersion": page.resource_version}
    if page.continue_token:
        out["continue"] = page.continue_token
        if page.remaining is not None:
            out["remainingItemCount"] = page.remaining
    return out


def page_of(
    snap: listsnapshots.Snapshot,
    prefix: str,
    start_key: str,
    opts: ListOptions,
    revision: int,
) -> ListPage:
    """Up to ``opts.limit`` matching objects of ``snap`` from ``start_key`` on; a
    continue token when another matching object follows. The count of what
    remains is given without a selector only (upstream's rule: with one it is
    not known without reading everything)."""
    entries = snap.entries
    i, hi = snap.bounds(prefix, start_key)
    match = opts.match
    limit = opts.limit
    if match is None:
        end = min(hi, i + limit)
        out = entries[i:end]
        if end >= hi:
            return ListPage(out, str(revision))
        token = encode_continue(revision, out[-1].key[len(prefix) :] + "\x00")
        return ListPage(out, str(revision), token, hi - end)
    out = []
    while i < hi and len(out) < limit:
        entry = entries[i]
        i += 1
        if match(entry.obj):
            out.append(entry)
    while i < hi and not match(entries[i].obj):
        i += 1
    if i >= hi:
        return ListPage(out, str(revision))
    token = encode_continue(revision, out[-1].key[len(prefix) :] + "\x00")
    return ListPage(out, str(revision), token)


async def list_page(
    *,
    store: storage.Store,
    watch_cache: watchcache.WatchCache,
    cache: resourcecache.ResourceCache,
    prefix: str,
    opts: ListOptions,
) -> ListPage:
    """A LIST of ``prefix`` for :meth:`.store.ResourceStore.list`: from the watch cache
    (after it caught up, for a consistent read), or from the store at the revision a
    continue token or an exact ``resourceVersionMatch`` names."""
    if opts.continue_token:
        revision, start = decode_continue(opts.continue_token)
        snap = cache.snapshot_at(revision)
        if snap is not None and revision >= store.compacted_revision():
            return page_of(snap, prefix, prefix + start, opts, revision)
        return await list_from_store(store, prefix, opts, revision, prefix + start)
    rv = parse_rv(opts.resource_version)
    if opts.resource_version_match == "Exact":
        if not rv:
            raise errors.bad_request(
                'resourceVersionMatch: Forbidden: resourceVersionMatch "Exact" is forbidden for resourceVersion "0"'
            )
        return await list_from_store(store, prefix, opts, rv, prefix)
    if opts.resource_version_match not in ("", "NotOlderThan"):
        raise errors.bad_request(
            f'resourceVersionMatch: Unsupported value: "{opts.resource_version_match}": '
            'supported values: "Exact", "NotOlderThan"'
        )
    if opts.resource_version == "":
        await watch_cache.consistent(linearizable=True)
    elif rv and not await watch_cache.wait_for(rv):
        raise too_large_rv(rv, watch_cache.revision)
    revision = watch_cache.revision
    if opts.limit:
        return page_of(cache.list_snapshot(), prefix, prefix, opts, revision)
    entries = cache.snapshot(prefix)
    if opts.match is not None:
        match = opts.match
        entries = [e for e in entries if match(e.obj)]
    return ListPage(entries, str(revision))


async def list_from_store(
    store: storage.Store, prefix: str, opts: ListOptions, revision: int, start_key: str
) -> ListPage:
    """A page of ``prefix`` read from the store as of ``revision``, from ``start_key`` on:
    an exact read, or a continue token whose snapshot the cache no longer holds."""
    if revision < store.compacted_revision():
        raise errors.expired(
            EXPIRED_CONTINUE
            if opts.continue_token
            else f"too old resource version: {revision} ({store.compacted_revision()})"
        )
    limit = opts.limit
    out: list[cacheentry.Entry] = []
    key = start_key
    while True:
        try:
            page = await store.list(prefix, at_revision=revision, limit=limit, start_key=key)
        except storage.CompactedError:
            raise errors.expired(EXPIRED_CONTINUE) from None
        except storage.FutureRevisionError as exc:
            raise too_large_rv(revision, exc.current) from None
        for kv in page.items:
            entry = cacheentry.decode(kv)
            if opts.match is None or opts.match(entry.obj):
                out.append(entry)
        if not page.more or (limit and len(out) >= limit) or not page.items:
            break
        key = page.items[-1].key + "\x00"
    if limit and (len(out) > limit or page.more):
        out = out[:limit]
        token = encode_continue(revision, out[-1].key[len(prefix) :] + "\x00")
        remaining = page.remaining if opts.match is None else None
        return ListPage(out, str(revision), token, remaining)
    return ListPage(out, str(revision))
