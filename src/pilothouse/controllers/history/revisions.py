"""ControllerRevisions without I/O (upstream's ``pkg/controller/history`` and the
revision helpers of the StatefulSet and DaemonSet controllers).

A revision records one state of an owner's pod template as a strategic merge patch,
``{"spec":{"template":{…,"$patch":"replace"}}}``, that puts the template back. Its
``revision`` number orders the history; rolling back to an old template reuses that
revision and gives it the next number. Revision names are ``<owner>-<hash>``:

* StatefulSets hash the patch bytes (FNV-32) with the collision count, label the
  revision ``controller.kubernetes.io/hash`` and their pods ``controller-revision-hash:
  <revision name>``;
* DaemonSets hash the pod template as Deployments do (``pod-template-hash``) and label
  the revision and their pods ``controller-revision-hash: <hash>``.

A name taken by a revision with other data is a collision: the owner's
``status.collisionCount`` goes up and the name is hashed again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from pilothouse.api import meta, patch
from pilothouse.api.meta import Obj
from pilothouse.controllers import podcontrol
from pilothouse.controllers.deployment import hash as template_hash
from pilothouse.controllers.history import gojson

CONTROLLER_REVISION_HASH_LABEL = "controller.kubernetes.io/hash"
"""On a StatefulSet's revisions: the hash of the revision's data."""
REVISION_LABEL = "controller-revision-hash"
"""On pods (and a DaemonSet's revisions): which revision they were made from."""
MAX_PREFIX = 223

_FNV32_OFFSET = 0x811C9DC5
_FNV32_PRIME = 0x01000193


def fnv32(data: bytes) -> int:
    """FNV-1 32-bit (``hash/fnv.New32``: multiply, then xor)."""
    h = _FNV32_OFFSET
    for byte in data:
        h = ((h * _FNV32_PRIME) & 0xFFFFFFFF) ^ byte
    return h


def hash_revision(data: bytes, probe: int | None) -> str:
    """``HashControllerRevision``: FNV-32 of the data and the decimal collision count."""
    h = fnv32(data)
    if probe is not None:
        for byte in str(probe).encode():
            h = ((h * _FNV32_PRIME) & 0xFFFFFFFF) ^ byte
    return template_hash.safe_encode_string(str(h))


def revision_name(prefix: str, hash_: str) -> str:
    """``<prefix>-<hash>``, the prefix cut to 223 bytes so the name stays ≤ 253."""
    return f"{prefix[:MAX_PREFIX]}-{hash_}"


# --- the patch a revision stores ----------------------------------------------------------
def template_patch(owner: Obj) -> Obj:
    """The patch that restores ``owner``'s pod template (upstream's ``getPatch``), keys
    sorted as encoding/json writes them."""
    template = gojson.with_struct_fields(
        gojson.POD_TEMPLATE_SPEC, ((owner.get("spec") or {}).get("template")) or {}
    )
    template = dict(template)
    template["$patch"] = "replace"
    result: Obj = gojson.sorted_copy({"spec": {"template": template}})
    return result


def data_bytes(revision: Obj) -> bytes:
    """A revision's ``data`` as encoding/json wrote it (its ``Data.Raw`` upstream)."""
    return gojson.marshal(revision.get("data"))


def template_of(revision: Obj) -> Obj:
    """The pod template a revision restores (its data without the directive)."""
    template = dict(((revision.get("data") or {}).get("spec") or {}).get("template") or {})
    template.pop("$patch", None)
    return template


def new_revision(
    owner: Obj,
    *,
    data: Obj,
    revision: int,
    labels: dict[str, str],
    name: str,
    annotations: dict[str, str] | None = None,
) -> Obj:
    """A ControllerRevision controlled by ``owner``."""
    md: Obj = {
        "name": name,
        "namespace": owner["metadata"].get("namespace", ""),
        "labels": dict(labels),
        "ownerReferences": [podcontrol.controller_ref(owner)],
    }
    if annotations:
        md["annotations"] = dict(annotations)
    return {
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": md,
        "data": data,
        "revision": revision,
    }


def new_hashed_revision(
    owner: Obj, *, revision: int, collision_count: int | None, template_labels: dict[str, str]
) -> Obj:
    """``NewControllerRevision`` (StatefulSets): named and labelled by the hash of its data,
    annotated with the owner's annotations."""
    data = template_patch(owner)
    hash_ = hash_revision(gojson.marshal(data), collision_count)
    labels = {**template_labels, CONTROLLER_REVISION_HASH_LABEL: hash_}
    return new_revision(
        owner,
        data=data,
        revision=revision,
        labels=labels,
        name=revision_name(owner["metadata"]["name"], hash_),
        annotations=owner["metadata"].get("annotations") or {},
    )


def rename_for_collisions(revision: Obj, owner_name: str, collision_count: int) -> Obj:
    """The same revision named (and labelled) for another collision count."""
    hash_ = hash_revision(data_bytes(revision), collision_count)
    out = meta.deep_copy(revision)
    out["metadata"]["name"] = revision_name(owner_name, hash_)
    labels = out["metadata"].setdefault("labels", {})
    if CONTROLLER_REVISION_HASH_LABEL in labels:
        labels[CONTROLLER_REVISION_HASH_LABEL] = hash_
    return out


# --- comparing and ordering ----------------------------------------------------------------
def _label_hash(revision: Obj) -> int | None:
    """The hash label as a 32-bit int when it parses as one (``strconv.ParseInt(…, 10, 32)``)."""
    text = ((revision.get("metadata") or {}).get("labels") or {}).get(
        CONTROLLER_REVISION_HASH_LABEL
    )
    if text is None:
        return None
    try:
        value = int(text, 10)
    except ValueError:
        return None
    return value & 0xFFFFFFFF if -(2**31) <= value < 2**31 else None


def equal_revision(lhs: Obj | None, rhs: Obj | None) -> bool:
    """Both absent, or both holding the same data (``EqualRevision``)."""
    if lhs is None or rhs is None:
        return lhs is rhs
    lh, rh = _label_hash(lhs), _label_hash(rhs)
    if lh is not None and rh is not None and lh != rh:
        return False
    return data_bytes(lhs) == data_bytes(rhs)


def find_equal_revisions(revisions: Iterable[Obj], needle: Obj) -> list[Obj]:
    return [r for r in revisions if equal_revision(r, needle)]


def number(revision: Obj) -> int:
    return int(revision.get("revision") or 0)


def _created(obj: Obj) -> float:
    return meta.parse_time(obj["metadata"].get("creationTimestamp")) or 0.0


def sort_revisions(revisions: Iterable[Obj]) -> list[Obj]:
    """By revision; equal revisions by creation time, then name (``byRevision``)."""
    return sorted(revisions, key=lambda r: (number(r), _created(r), r["metadata"]["name"]))


def next_revision(sorted_revisions: list[Obj]) -> int:
    """One more than the highest revision (1 for an empty history)."""
    return number(sorted_revisions[-1]) + 1 if sorted_revisions else 1


def max_revision(revisions: Iterable[Obj]) -> int:
    return max((number(r) for r in revisions), default=0)


def apply_revision(owner: Obj, revision: Obj) -> Obj:
    """``owner`` with the revision's patch applied (upstream's ``ApplyRevision``)."""
    group, _, version = str(owner.get("apiVersion", "apps/v1")).partition("/")
    result: Obj = patch.apply_strategic_merge_patch(
        owner, revision.get("data") or {}, group=group, version=version, kind=owner["kind"]
    )
    return result


def history_to_delete(
    sorted_revisions: list[Obj],
    *,
    live: set[str],
    limit: int | None,
    key: Callable[[Obj], str] | None = None,
    live_counts: bool = False,
) -> list[Obj]:
    """The oldest revisions that are not ``live`` and exceed ``limit``, oldest first.

    ``key`` picks what ``live`` holds for a revision (its name by default). StatefulSets
    keep ``limit`` revisions besides the live ones (``truncateHistory``); DaemonSets
    (``live_counts``) count live old revisions against the limit but never delete them
    (``cleanupHistory``)."""
    if limit is None or limit < 0:
        return []
    pick = key or (lambda r: str(r["metadata"]["name"]))
    if live_counts:
        to_kill = len(sorted_revisions) - limit
        out = []
        for r in sorted_revisions:
            if to_kill <= 0:
                break
            if pick(r) in live:
                continue
            out.append(r)
            to_kill -= 1
        return out
    historic = [r for r in sorted_revisions if pick(r) not in live]
    if len(historic) <= limit:
        return []
    return historic[: len(historic) - limit]
