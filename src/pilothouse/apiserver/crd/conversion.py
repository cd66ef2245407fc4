"""Custom resources between their stored version and the version a request speaks.

A CRD stores every object in its storage version and serves each served version as
a view of it. With conversion strategy ``None`` (the default) the view differs only
in ``apiVersion``, as upstream's ``nopConverter``; reading also applies the served
version's schema defaults, since upstream defaults objects read from storage (a
default added to a schema later shows on old objects). The ``Webhook`` strategy is
:mod:`.webhook`'s.

Converters are plain values built per CRD snapshot, shared by concurrent requests.
"""

from __future__ import annotations

from typing import Any

from pilothouse.api import meta
from pilothouse.api.apiextensions import defaulting
from pilothouse.api.meta import Obj


class NoneConverter:
    """``apiVersion`` rewriting (and defaulting on read) between two versions of one group."""

    def __init__(
        self, *, group: str, storage_version: str, version: str, schema: dict[str, Any] | None
    ) -> None:
        self.storage_api_version = f"{group}/{storage_version}"
        self.api_version = f"{group}/{version}"
        self.plan = defaulting.Plan(schema) if schema and defaulting.has_defaults(schema) else None

    def to_storage(self, obj: Obj) -> Obj:
        if obj.get("apiVersion") == self.storage_api_version:
            return obj
        out = dict(obj)
        out["apiVersion"] = self.storage_api_version
        return out

    def to_api(self, obj: Obj) -> Obj:
        if self.plan is None or not self.plan.missing(obj):
            if obj.get("apiVersion") == self.api_version:
                return obj
            out = dict(obj)
            out["apiVersion"] = self.api_version
            return out
        # Defaulting changes nested values: work on a copy of the cache's object.
        copy = meta.deep_copy(obj)
        copy["apiVersion"] = self.api_version
        self.plan.apply(copy)
        return copy


def needed(*, storage_version: str, version: str, schema: dict[str, Any] | None) -> bool:
    """Whether serving ``version`` needs a converter at all (lists can then reuse the
    cached encoding of every object)."""
    return version != storage_version or defaulting.has_defaults(schema)
