"""The errors of server-side apply, worded and shaped as upstream's.

* :class:`ApplyConflict` — fields another manager owns with another value: 409
  ``Conflict`` with one ``FieldManagerConflict`` cause per field.
* :class:`ApplyError` — an applied configuration the server cannot take (wrong
  kind or version, managedFields set, not fitting the schema).

No I/O here: this module is part of the bottom ``api`` layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pilothouse.api import errors
from pilothouse.api.fieldmanager import fieldpath
from pilothouse.api.fieldmanager.managed import ManagerKey

FIELD_MANAGER_CONFLICT = "FieldManagerConflict"


@dataclass(frozen=True, slots=True)
class Conflict:
    """One field another manager owns."""

    key: ManagerKey
    api_version: str
    path: fieldpath.Path

    @property
    def manager(self) -> str:
        return self.key.manager

    @property
    def field(self) -> str:
        return fieldpath.path_string(self.path)

    def describe(self) -> str:
        return self.key.describe(self.api_version)


class ApplyConflict(Exception):
    """Applying would change fields other managers own (and force was not given).

    ``conflicts`` lists ``(manager, field)`` pairs, the field as upstream prints
    paths (``.spec.replicas``); :attr:`details` keeps the full records.
    """

    def __init__(self, details: list[Conflict]) -> None:
        # Upstream groups by the manager's identifier; paths keep set order.
        self.details = sorted(details, key=lambda c: c.key.identifier())
        self.conflicts: list[tuple[str, str]] = [(c.manager, c.field) for c in self.details]
        super().__init__(self.message())

    def message(self) -> str:
        """``Apply failed with 1 conflict: conflict with "m" using apps/v1: .spec.replicas``."""
        if len(self.details) == 1:
            only = self.details[0]
            return f"Apply failed with 1 conflict: conflict with {only.describe()}: {only.field}"
        lines: list[str] = []
        current: ManagerKey | None = None
        for conflict in self.details:
            if conflict.key != current:
                current = conflict.key
                lines.append(f"conflicts with {conflict.describe()}:")
            lines.append(f"- {conflict.field}")
        return f"Apply failed with {len(self.details)} conflicts: " + "\n".join(lines)

    def causes(self) -> list[dict[str, Any]]:
        return [
            {
                "reason": FIELD_MANAGER_CONFLICT,
                "message": f"conflict with {c.describe()}",
                "field": c.field,
            }
            for c in self.details
        ]

    def status(self, *, kind: str = "", group: str = "", name: str = "") -> errors.StatusError:
        """The 409 upstream answers (``NewApplyConflict``).

        Upstream's details carry only the causes, not the object's name, group or
        kind; the arguments are accepted so callers can pass what they know, and
        are left out of the body to match upstream.
        """
        del kind, group, name
        return errors.StatusError(
            409, errors.CONFLICT, self.message(), details={"causes": self.causes()}
        )


class ApplyError(ValueError):
    """An applied configuration upstream refuses, with the status it answers."""

    def __init__(self, message: str, *, code: int = 400, reason: str = errors.BAD_REQUEST) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.reason = reason

    def status(self) -> errors.StatusError:
        """The status upstream answers (400 BadRequest, or 500 for schema mismatches)."""
        return errors.StatusError(self.code, self.reason, self.message)
