"""The Event table, for core/v1 Events and events.k8s.io/v1 Events alike.

Upstream converts both versions to one internal Event before printing, so both
print the same columns: LAST SEEN, TYPE, REASON, OBJECT, MESSAGE, and for wide
SUBOBJECT, SOURCE, FIRST SEEN, COUNT, NAME. The events.k8s.io field names map
onto the core ones as conversion does (``regarding`` is ``involvedObject``,
``note`` is ``message``, ``deprecatedFirstTimestamp`` is ``firstTimestamp``, …).
"""

from __future__ import annotations

from typing import Any

from pilothouse.apiserver.table import docs, timefmt
from pilothouse.apiserver.table.model import Cells, Object, Printer, column

_EMPTY: dict[str, Any] = {}

COLUMNS = (
    column("Last Seen", "string", docs.EVENT_LAST_TIMESTAMP),
    column("Type", "string", docs.EVENT_TYPE),
    column("Reason", "string", docs.EVENT_REASON),
    column("Object", "string", docs.EVENT_INVOLVED_OBJECT),
    column("Subobject", "string", docs.OBJECT_REFERENCE_FIELD_PATH, priority=1),
    column("Source", "string", docs.EVENT_SOURCE, priority=1),
    column("Message", "string", docs.EVENT_MESSAGE),
    column("First Seen", "string", docs.EVENT_FIRST_TIMESTAMP, priority=1),
    column("Count", "string", docs.EVENT_COUNT, priority=1),
    column("Name", "string", docs.NAME, format_="name", priority=1),
)

# Go's strings.TrimSpace trims Unicode White_Space; Python's str.strip() also
# trims the ASCII separators 0x1c-0x1f, which Go keeps.
_GO_SPACE = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)

# (core field, events.k8s.io field)
_CORE = (
    "involvedObject",
    "message",
    "source",
    "firstTimestamp",
    "lastTimestamp",
    "count",
    "reportingComponent",
)
_EVENTS = (
    "regarding",
    "note",
    "deprecatedSource",
    "deprecatedFirstTimestamp",
    "deprecatedLastTimestamp",
    "deprecatedCount",
    "reportingController",
)


def _is_events_api(event: Object) -> bool:
    api_version = event.get("apiVersion") or ""
    if api_version:
        return api_version.startswith("events.k8s.io/")
    return "regarding" in event or "note" in event


def format_source(component: str, host: str) -> str:
    """``formatEventSourceComponentInstance``: ``kubelet, node-1`` or ``kubelet``."""
    if not host:
        return component
    return f"{component}, {host}"


def event_cells(event: Object, now: float) -> Cells:
    names = _EVENTS if _is_events_api(event) else _CORE
    regarding_key, message_key, source_key, first_key, last_key, count_key, controller_key = names
    meta = event.get("metadata") or _EMPTY
    regarding = event.get(regarding_key) or _EMPTY
    source = event.get(source_key) or _EMPTY

    first = timefmt.parse_time(event.get(first_key))
    if first is None:
        first_text = timefmt.since(event.get("eventTime"), now)
    else:
        first_text = timefmt.human_duration(now - first)
    last = timefmt.parse_time(event.get(last_key))
    last_text = first_text if last is None else timefmt.human_duration(now - last)

    count = event.get(count_key) or 0
    series = event.get("series")
    if series is not None:
        last_text = timefmt.since(series.get("lastObservedTime"), now)
        count = series.get("count") or 0
    elif count == 0:
        count = 1  # singleton events carry no count in the new API

    kind = str(regarding.get("kind", "")).lower()
    name = regarding.get("name") or ""
    target = f"{kind}/{name}" if name else kind
    component = source.get("component") or event.get(controller_key) or ""
    host = source.get("host") or event.get("reportingInstance") or ""
    return [
        last_text,
        event.get("type", ""),
        event.get("reason", ""),
        target,
        regarding.get("fieldPath", ""),
        format_source(component, host),
        str(event.get(message_key) or "").strip(_GO_SPACE),
        first_text,
        count,
        meta.get("name", ""),
    ]


EVENT = Printer(COLUMNS, event_cells)

PRINTERS = {("", "Event"): EVENT, ("events.k8s.io", "Event"): EVENT}
