"""The strategy of CustomResourceDefinitions (apiextensions' ``strategy.go``).

A new CRD starts with an empty status whose ``storedVersions`` is its storage
version; an update keeps the status and adds a new storage version to
``storedVersions``; ``metadata.generation`` counts spec changes. Validation and
defaulting are :mod:`pilothouse.api.apiextensions`'. Deleting a CRD first gives it
the cleanup finalizer and a ``Terminating`` condition (upstream's REST ``Delete``),
so its custom resources are deleted before it goes.
"""

from __future__ import annotations

from pilothouse.api import errors
from pilothouse.api.apiextensions import crd as crds
from pilothouse.api.apiextensions import defaults, validation
from pilothouse.api.meta import Obj
from pilothouse.apiserver.crd import finalizer
from pilothouse.apiserver.registry.strategy import Strategy


class CustomResourceDefinitionStrategy(Strategy):
    tracks_generation = True

    def prepare_for_create(self, obj: Obj) -> None:
        stored = crds.storage_version(obj)
        obj["status"] = {"storedVersions": [stored] if stored else []}

    def default(self, obj: Obj) -> None:
        defaults.apply(obj)

    def validate(self, obj: Obj) -> list[errors.FieldError]:
        return validation.validate_create(obj)

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        super().prepare_for_update(new, old)
        stored = crds.storage_version(new)
        if not stored:
            return
        status = dict(new.get("status") or {})
        versions = list(status.get("storedVersions") or [])
        if stored not in versions:
            status["storedVersions"] = [*versions, stored]
            new["status"] = status

    def validate_update(self, new: Obj, old: Obj) -> list[errors.FieldError]:
        return validation.validate_update(new, old)

    def validate_status_update(self, new: Obj, old: Obj) -> list[errors.FieldError]:
        return validation.validate_status_update(new, old)

    def prepare_for_delete(self, obj: Obj) -> Obj | None:
        return finalizer.mark_for_deletion(obj)
