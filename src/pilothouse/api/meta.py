"""Object metadata helpers: timestamps, uids, generated names, copies, wire order.

Kubernetes writes ``metav1.Time`` as RFC 3339 with second precision
(``2026-11-25T16:39:22Z``) and ``metav1.MicroTime`` with microseconds
(``2026-11-25T16:39:22.123456Z``). No I/O here.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime
from typing import Any

import orjson

Obj = dict[str, Any]

# Upstream's generateName alphabet: no vowels (no accidental words), no
# confusable characters (SimpleNameGenerator in apiserver/pkg/storage/names).
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_RANDOM_LENGTH = 5
MAX_GENERATED_NAME_LENGTH = 63 - _RANDOM_LENGTH


def format_time(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def format_micro_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now() -> str:
    return format_time(time.time())


def now_micro() -> str:
    return format_micro_time(time.time())


def parse_time(value: str | None) -> float | None:
    """Seconds since the epoch for an RFC 3339 timestamp; None if absent or bad."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


class _RandomPool:
    """Random bytes from the operating system's CSPRNG, drawn a block at a time.

    Every request takes a uid or an audit ID (and a created pod both, and a generated
    name): one ``getrandom`` system call each was ~2 % of a busy server's samples. The
    bytes are the same ``os.urandom`` bytes, each handed out once; the lock keeps that
    true for the server's few threads (uncontended, it costs ~50 ns), and a forked child
    starts from a block of its own rather than the rest of its parent's.
    """

    BLOCK = 4096

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._block = b""
        self._pos = 0

    def take(self, n: int) -> bytes:
        with self._lock:
            pos = self._pos
            if pos + n > len(self._block):
                self._block, pos = os.urandom(max(self.BLOCK, n)), 0
            self._pos = pos + n
            return self._block[pos : pos + n]


_RANDOM = _RandomPool()
_NAME_SPACE = len(_NAME_ALPHABET) ** _RANDOM_LENGTH


def random_uuid() -> str:
    """A random (version 4) UUID in its canonical text form, as ``str(uuid.uuid4())``."""
    raw = bytearray(_RANDOM.take(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def new_uid() -> str:
    return random_uuid()


def generate_name(base: str) -> str:
    """``base`` plus five random characters, trimmed as upstream trims it."""
    if len(base) > MAX_GENERATED_NAME_LENGTH:
        base = base[:MAX_GENERATED_NAME_LENGTH]
    # One draw of 64 bits read as five base-27 digits (the bias of the modulo is
    # below 1e-12).
    n = int.from_bytes(_RANDOM.take(8)) % _NAME_SPACE
    size = len(_NAME_ALPHABET)
    suffix = []
    for _ in range(_RANDOM_LENGTH):
        n, digit = divmod(n, size)
        suffix.append(_NAME_ALPHABET[digit])
    return base + "".join(suffix)


def deep_copy(obj: Obj) -> Obj:
    """A deep copy of a JSON-shaped object (faster than copy.deepcopy)."""
    result: Obj = orjson.loads(orjson.dumps(obj))
    return result


def namespaced_name(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{ns}/{meta.get('name')}" if ns else str(meta.get("name"))


# --- wire order ---------------------------------------------------------------------
#
# Upstream encodes objects from Go structs, so every response lists ``kind``,
# ``apiVersion``, ``metadata`` (in ObjectMeta's field order), the kind's own fields
# and ``status`` last, whatever order the client wrote them in. Clients that keep
# the raw JSON (the ``kubernetes`` client's untyped answers, ``kubectl get --raw``)
# see that order.

_OBJECT_META_ORDER = (
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
)
_META_RANK = {key: rank for rank, key in enumerate(_OBJECT_META_ORDER)}

# Kinds with several top-level fields besides spec/status, in their struct's order.
_KIND_FIELDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("v1", "ConfigMap"): ("immutable", "data", "binaryData"),
    ("v1", "Secret"): ("immutable", "data", "stringData", "type"),
    ("v1", "ServiceAccount"): ("secrets", "imagePullSecrets", "automountServiceAccountToken"),
    ("v1", "Event"): (
        "involvedObject",
        "reason",
        "message",
        "source",
        "firstTimestamp",
        "lastTimestamp",
        "count",
        "type",
        "eventTime",
        "series",
        "action",
        "related",
        "reportingComponent",
        "reportingInstance",
    ),
    ("events.k8s.io/v1", "Event"): (
        "eventTime",
        "series",
        "reportingController",
        "reportingInstance",
        "action",
        "reason",
        "regarding",
        "related",
        "note",
        "type",
        "deprecatedSource",
        "deprecatedFirstTimestamp",
        "deprecatedLastTimestamp",
        "deprecatedCount",
    ),
    ("discovery.k8s.io/v1", "EndpointSlice"): ("addressType", "endpoints", "ports"),
    ("storage.k8s.io/v1", "StorageClass"): (
        "provisioner",
        "parameters",
        "reclaimPolicy",
        "mountOptions",
        "allowVolumeExpansion",
        "volumeBindingMode",
        "allowedTopologies",
    ),
    ("scheduling.k8s.io/v1", "PriorityClass"): (
        "value",
        "globalDefault",
        "description",
        "preemptionPolicy",
    ),
    ("apps/v1", "ControllerRevision"): ("data", "revision"),
}


def _ordered_metadata(md: Any) -> Any:
    if not isinstance(md, dict):
        return md
    ranks = [_META_RANK.get(key, len(_META_RANK)) for key in md]
    if ranks == sorted(ranks):
        return md
    return {key: md[key] for _, key in sorted(zip(ranks, md, strict=True), key=lambda p: p[0])}


def with_managed_fields(obj: Obj, managed: Any, *, at: int) -> Obj:
    """A shallow copy of ``obj`` whose metadata (a copy too) carries ``managed`` as its
    ``managedFields``, as the ``at``-th metadata field (where it was: the watch cache
    keeps them apart from the objects it shares, and puts them back in place)."""
    md = obj.get("metadata") or {}
    items = list(md.items())
    items.insert(at, ("managedFields", managed))
    return {**obj, "metadata": dict(items)}


def wire_order(obj: Obj) -> Obj:
    """``obj`` with its top-level and metadata fields in upstream's order: the
    object itself when already so, else a shallow copy (nested values shared)."""
    metadata = obj.get("metadata")
    ordered_md = _ordered_metadata(metadata)
    fields = _KIND_FIELDS.get((str(obj.get("apiVersion")), str(obj.get("kind"))), ())
    keys = list(obj)
    head = [k for k in ("kind", "apiVersion", "metadata") if k in obj]
    rest = [k for k in keys if k not in ("kind", "apiVersion", "metadata", "status")]
    if fields:
        rank = {key: i for i, key in enumerate(fields)}
        rest.sort(key=lambda k: rank.get(k, len(rank)))
    want = head + rest + (["status"] if "status" in obj else [])
    if want == keys and ordered_md is metadata:
        return obj
    out = {key: obj[key] for key in want}
    if ordered_md is not metadata:
        out["metadata"] = ordered_md
    return out
