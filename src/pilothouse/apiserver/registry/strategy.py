"""What differs between kinds when objects are created, updated and deleted.

Upstream keeps one ``strategy.go`` per kind (``pkg/registry/<group>/<kind>``):
prepare-for-create, prepare-for-update, validate, and the status strategy that
lets only status change through ``/status``. :class:`Strategy` is the shared
default; kinds with their own rules subclass it in ``strategies/`` and are
listed there explicitly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pilothouse.api import defaults, errors, resources, schema, selectors, validation
from pilothouse.api.fieldmanager import types as field_types
from pilothouse.api.meta import Obj

if TYPE_CHECKING:
    from pilothouse.apiserver.table.model import Printer

# Top-level fields that are not part of an object's "spec" for generation
# tracking and status handling.
_META_FIELDS = frozenset({"apiVersion", "kind", "metadata", "status"})


class Strategy:
    """Default per-kind behaviour."""

    #: Bump ``metadata.generation`` when the spec changes (controllers report
    #: ``observedGeneration`` against it).
    tracks_generation = False
    #: PUT of a missing object creates it (Endpoints, Nodes… upstream).
    allow_create_on_update = False
    #: DELETE answers with the deleted object instead of a success Status
    #: (upstream's ``ReturnDeletedObject``; set per kind in ``strategies``).
    return_deleted_object = False
    #: The propagation policy of a DELETE that names none (upstream's
    #: DefaultGarbageCollectionPolicy): ``""`` background, or ``"Orphan"``.
    default_gc_policy = ""
    #: A Warning for a DELETE that falls back on ``default_gc_policy``.
    default_gc_warning = ""
    #: A ``Warning`` header on every answer (deprecated versions of custom resources).
    deprecation_warning: str | None = None

    def __init__(self, resource: resources.Resource) -> None:
        self.resource = resource
        self.has_status = resource.has("status")

    # --- create -----------------------------------------------------------
    def prepare_for_create(self, obj: Obj) -> None:
        """Clear what users may not set on create (status, for kinds with /status)."""
        if self.has_status:
            obj.pop("status", None)

    def default(self, obj: Obj) -> None:
        r = self.resource
        defaults.apply_defaults(r.group, r.version, r.kind, obj)

    def validate(self, obj: Obj) -> list[errors.FieldError]:
        r = self.resource
        return validation.validate_create(r.group, r.version, r.kind, obj)

    # --- update -----------------------------------------------------------
    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        """Writes to the main resource leave status alone (it has its own endpoint)."""
        if self.has_status:
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)

    def prepare_for_status_update(self, new: Obj, old: Obj) -> None:
        """Writes to ``/status`` change only status: everything else stays as it was."""
        for key in list(new):
            if key not in ("status", "metadata", "apiVersion", "kind"):
                del new[key]
        for key, value in old.items():
            if key not in ("status", "metadata"):
                new[key] = value
        meta = dict(old.get("metadata") or {})
        new_meta = new.get("metadata") or {}
        for field in ("resourceVersion", "managedFields"):
            if field in new_meta:
                meta[field] = new_meta[field]
        new["metadata"] = meta

    def validate_update(self, new: Obj, old: Obj) -> list[errors.FieldError]:
        r = self.resource
        return validation.validate_update(r.group, r.version, r.kind, new, old)

    def validate_status_update(self, new: Obj, old: Obj) -> list[errors.FieldError]:
        r = self.resource
        return validation.validate_status_update(r.group, r.version, r.kind, new, old)

    # --- delete -----------------------------------------------------------
    def grace_period(self, obj: Obj, requested: int | None) -> int | None:
        """Seconds the object may take to stop, or None if it is not deleted gracefully."""
        return None

    def before_delete(self, obj: Obj) -> None:
        """Refuse a DELETE of ``obj`` by raising a StatusError (namespaces still
        being emptied). Preconditions have been checked."""

    def has_other_finalizers(self, obj: Obj) -> bool:
        """Whether kind-specific finalizers outside metadata hold the object."""
        return False

    def mark_deleting(self, obj: Obj) -> None:
        """Adjust an object that is now being deleted (namespaces: phase Terminating)."""

    def prepare_for_delete(self, obj: Obj) -> Obj | None:
        """Before a delete is planned: a changed copy of ``obj`` to delete instead
        (CRDs gain their cleanup finalizer), or None for ``obj`` as it is."""
        return None

    # --- decoding and serving ----------------------------------------------
    def body_problems(self, obj: Obj) -> schema.FieldProblems | None:
        """Unknown fields of a request body of this kind, pruned from it (custom
        resources, by their schema); None: the built-in schemas decide."""
        return None

    #: Patch media types this kind accepts (custom resources: no strategic merge).
    patch_types: tuple[str, ...] | None = None

    def field_type(self) -> field_types.Type | None:
        """The type server-side apply merges with (None: the built-in schema's)."""
        return None

    def status_subresource(self) -> bool | None:
        """Whether the kind serves /status, for field ownership (None: built-in table)."""
        return None

    def convert_field_selector(
        self, fields: selectors.FieldSelector, requested: resources.Resource
    ) -> selectors.FieldSelector:
        """A request's field selector in stored form. ``requested`` is the resource the
        request named (events.k8s.io Events accept ``regarding.*``, stored as core)."""
        r = requested
        return selectors.convert_field_selector(r.group, r.version, r.kind, fields)

    def object_fields(self, obj: Obj, requested: resources.Resource) -> dict[str, str]:
        r = requested
        group = "" if r.group == "events.k8s.io" else r.group  # stored as core Events
        return selectors.object_fields(group, r.kind, obj)

    def to_scale(self, obj: Obj) -> Obj | None:
        """The autoscaling/v1 Scale of ``obj`` (None: the workloads' default)."""
        return None

    def apply_scale(self, obj: Obj, scale: Obj) -> Obj | None:
        """``obj`` with a Scale's replicas (None: the workloads' default)."""
        return None

    def printer(self) -> Printer | None:
        """The Table columns of the kind (None: the built-in printer of its kind)."""
        return None

    def check_create(self) -> None:
        """Refuse a create outright (a terminating CRD's resource); raises StatusError."""

    def spec_changed(self, new: Obj, old: Obj) -> bool:
        for key in set(new) | set(old):
            if key not in _META_FIELDS and new.get(key) != old.get(key):
                return True
        return False
