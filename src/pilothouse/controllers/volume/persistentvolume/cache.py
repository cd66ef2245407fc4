"""The binder's own view of volumes and claims: informer events and its own writes,
newest resourceVersion wins (upstream's ``storeObjectUpdate``).

Binding writes four objects in turn (the volume, its status, the claim, its
status); the informer delivers them later, one by one. Reading the informer
alone, the next sync would see the volume still unbound and try again, to be
refused with 409. Keeping what was just written — unless the informer already
has something newer — lets the next sync see the world as it now is.
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]


def _rv(obj: Obj) -> int:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


class VersionedStore:
    """Objects by key (``namespace/name`` or ``name``), each the newest seen."""

    def __init__(self) -> None:
        self.objects: dict[str, Obj] = {}

    @staticmethod
    def key(obj: Obj) -> str:
        md = obj.get("metadata") or {}
        ns = md.get("namespace")
        return f"{ns}/{md.get('name', '')}" if ns else str(md.get("name", ""))

    def store(self, obj: Obj) -> bool:
        """Keep ``obj`` unless a newer version is known; True when it was kept."""
        key = self.key(obj)
        old = self.objects.get(key)
        if old is not None and _rv(obj) < _rv(old):
            return False
        self.objects[key] = obj
        return True

    def delete(self, obj: Obj) -> None:
        self.objects.pop(self.key(obj), None)

    def get(self, key: str) -> Obj | None:
        return self.objects.get(key)

    def list(self) -> list[Obj]:
        return list(self.objects.values())
