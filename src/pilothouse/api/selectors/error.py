"""The one error selectors raise, and the Go formatting its messages need.

Upstream builds selector errors from ``field.Error`` values aggregated into one
message; clients (and our tests) compare those strings, so they are rebuilt here
to the character: ``values[0][app]: Invalid value: "a b": …``, lists of several
problems in ``[…, …]``, Go's ``%q`` and ``%#v`` renderings.
"""

from __future__ import annotations

from pilothouse.api import errors, gostrings


class SelectorError(ValueError):
    """A label or field selector that cannot be parsed or is not supported.

    The message is worded as upstream words it; the API server answers it as a
    400 ``BadRequest`` (see :meth:`status_error`).
    """

    def status_error(self) -> errors.StatusError:
        """The ``BadRequest`` status the API server answers for this error."""
        return errors.bad_request(str(self))


def go_string_slice(values: list[str] | tuple[str, ...]) -> str:
    """Go's ``%#v`` of a ``[]string``: ``[]string{"a", "b"}``."""
    return "[]string{" + ", ".join(gostrings.quote(v) for v in values) + "}"


def invalid(path: str, shown_value: str, detail: str) -> str:
    """The text of a ``field.Invalid`` error (``shown_value`` already rendered)."""
    return f"{path}: Invalid value: {shown_value}: {detail}"


def aggregate(messages: list[str]) -> str:
    """``utilerrors.NewAggregate(...).Error()``: one message, or ``[a, b]`` without repeats."""
    unique = list(dict.fromkeys(messages))
    if len(unique) == 1:
        return unique[0]
    return "[" + ", ".join(unique) + "]"
