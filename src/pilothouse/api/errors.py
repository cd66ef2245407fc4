"""Kubernetes API errors, answered as ``metav1.Status`` objects.

Every error a client can cause is a :class:`StatusError` carrying the HTTP code,
the machine-readable ``reason`` and a message worded as upstream words it, so
``kubectl`` prints ``Error from server (<reason>): <message>`` exactly as it does
against Kubernetes. Field problems are :class:`FieldError` values collected by
validation and turned into one 422 ``Invalid`` status with ``details.causes``.

No I/O here: this module is part of the bottom ``api`` layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pilothouse.api import gostrings

# metav1.StatusReason values (k8s.io/apimachinery/pkg/apis/meta/v1/types.go)
BAD_REQUEST = "BadRequest"
UNAUTHORIZED = "Unauthorized"
FORBIDDEN = "Forbidden"
NOT_FOUND = "NotFound"
ALREADY_EXISTS = "AlreadyExists"
CONFLICT = "Conflict"
GONE = "Gone"
EXPIRED = "Expired"
INVALID = "Invalid"
METHOD_NOT_ALLOWED = "MethodNotAllowed"
NOT_ACCEPTABLE = "NotAcceptable"
UNSUPPORTED_MEDIA_TYPE = "UnsupportedMediaType"
REQUEST_ENTITY_TOO_LARGE = "RequestEntityTooLarge"
TOO_MANY_REQUESTS = "TooManyRequests"
INTERNAL_ERROR = "InternalError"
SERVICE_UNAVAILABLE = "ServiceUnavailable"
TIMEOUT = "Timeout"

# v1.NamespaceTerminatingCause: the cause the NamespaceLifecycle admission adds when a
# namespace being deleted refuses new content (controllers then stop creating there).
NAMESPACE_TERMINATING = "NamespaceTerminating"


class StatusError(Exception):
    """An API error with everything needed to render a ``metav1.Status``."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict[str, Any]:
        """The ``metav1.Status`` body for this error, its fields in the order of
        upstream's struct (``kind, apiVersion, metadata, status, message, reason,
        details, code``): clients compare these bodies as strings."""
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if self.details:
            body["details"] = ordered_details(self.details)
        body["code"] = self.code
        return body

    def __repr__(self) -> str:
        return f"StatusError({self.code}, {self.reason!r}, {self.message!r})"


# metav1.StatusDetails in the order of its Go struct.
_DETAILS_ORDER = ("name", "group", "kind", "uid", "causes", "retryAfterSeconds")


def ordered_details(details: dict[str, Any]) -> dict[str, Any]:
    """``details`` with its fields in upstream's order (unknown ones last)."""
    out = {k: details[k] for k in _DETAILS_ORDER if k in details}
    if len(out) != len(details):
        out.update((k, v) for k, v in details.items() if k not in out)
    return out


def _details(name: str | None, group: str, kind: str, **more: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if name:
        out["name"] = name
    if group:
        out["group"] = group
    out["kind"] = kind
    out.update(more)
    return out


def qualified(plural: str, group: str) -> str:
    """``deployments.apps`` for grouped resources, ``pods`` for core ones."""
    return f"{plural}.{group}" if group else plural


def not_found(plural: str, group: str, name: str) -> StatusError:
    return StatusError(
        404,
        NOT_FOUND,
        f'{qualified(plural, group)} "{name}" not found',
        details=_details(name, group, plural),
    )


def already_exists(plural: str, group: str, name: str) -> StatusError:
    return StatusError(
        409,
        ALREADY_EXISTS,
        f'{qualified(plural, group)} "{name}" already exists',
        details=_details(name, group, plural),
    )


def conflict(plural: str, group: str, name: str, why: str) -> StatusError:
    return StatusError(
        409,
        CONFLICT,
        f'Operation cannot be fulfilled on {qualified(plural, group)} "{name}": {why}',
        details=_details(name, group, plural),
    )


OBJECT_MODIFIED = (
    "the object has been modified; please apply your changes to the latest version and try again"
)


def stale_update(plural: str, group: str, name: str) -> StatusError:
    return conflict(plural, group, name, OBJECT_MODIFIED)


def bad_request(message: str) -> StatusError:
    return StatusError(400, BAD_REQUEST, message)


def forbidden(plural: str, group: str, name: str, why: str) -> StatusError:
    who = f'{qualified(plural, group)} "{name}"' if name else qualified(plural, group)
    return StatusError(
        403, FORBIDDEN, f"{who} is forbidden: {why}", details=_details(name, group, plural)
    )


def method_not_allowed(what: str) -> StatusError:
    return StatusError(
        405,
        METHOD_NOT_ALLOWED,
        f"the server does not allow this method on the requested resource{what}",
    )


def not_acceptable(accept: str) -> StatusError:
    return StatusError(
        406,
        NOT_ACCEPTABLE,
        f"only the following media types are accepted: application/json, application/yaml; got {accept}",
    )


def unsupported_media_type(content_type: str, supported: list[str]) -> StatusError:
    return StatusError(
        415,
        UNSUPPORTED_MEDIA_TYPE,
        f"the body of the request was in an unknown format - accepted media types include: {', '.join(supported)}"
        + (f" (got {content_type!r})" if content_type else ""),
    )


def too_large(limit: int) -> StatusError:
    """A request body over ``limit`` bytes (upstream's limitedReadBody)."""
    return StatusError(413, REQUEST_ENTITY_TOO_LARGE, f"Request entity too large: limit is {limit}")


def expired(message: str) -> StatusError:
    return StatusError(410, EXPIRED, message)


def too_old_resource_version(requested: int, oldest: int) -> StatusError:
    return StatusError(410, EXPIRED, f"too old resource version: {requested} ({oldest})")


def internal(message: str) -> StatusError:
    return StatusError(500, INTERNAL_ERROR, f"Internal error occurred: {message}")


def unauthorized() -> StatusError:
    return StatusError(401, UNAUTHORIZED, "Unauthorized")


def service_unavailable(message: str) -> StatusError:
    return StatusError(503, SERVICE_UNAVAILABLE, message)


def too_many_requests(message: str, *, retry_after: int = 1) -> StatusError:
    return StatusError(429, TOO_MANY_REQUESTS, message, details={"retryAfterSeconds": retry_after})


# --- predicates (client-go's apierrors.IsNotFound & co.) ---------------------
#
# Callers ask what an error *means* instead of comparing codes or searching
# messages. As upstream: the reason decides; the code decides only when the
# server sent no reason this module knows.

_REASON_CODES = {
    NOT_FOUND: 404,
    ALREADY_EXISTS: 409,
    CONFLICT: 409,
    GONE: 410,
    EXPIRED: 410,
    INVALID: 422,
    FORBIDDEN: 403,
    UNAUTHORIZED: 401,
    TOO_MANY_REQUESTS: 429,
    BAD_REQUEST: 400,
    METHOD_NOT_ALLOWED: 405,
    SERVICE_UNAVAILABLE: 503,
    TIMEOUT: 504,
    INTERNAL_ERROR: 500,
    REQUEST_ENTITY_TOO_LARGE: 413,
}


def reason_of(exc: BaseException) -> str:
    """The Status reason of ``exc`` (``""`` for anything that is not a StatusError)."""
    if not isinstance(exc, StatusError):
        return ""
    if exc.reason in _REASON_CODES:
        return exc.reason
    # An unknown or empty reason: fall back to the code, as client-go's ReasonForError.
    for reason, code in _REASON_CODES.items():
        if exc.code == code and reason not in (ALREADY_EXISTS, EXPIRED):
            return reason
    return exc.reason


def is_not_found(exc: BaseException) -> bool:
    return reason_of(exc) == NOT_FOUND


def is_already_exists(exc: BaseException) -> bool:
    return reason_of(exc) == ALREADY_EXISTS


def is_conflict(exc: BaseException) -> bool:
    """A write lost an optimistic-concurrency race (409 Conflict, not AlreadyExists)."""
    return reason_of(exc) == CONFLICT


def is_gone(exc: BaseException) -> bool:
    """A resourceVersion too old to serve (410: reason Expired or Gone)."""
    return reason_of(exc) in (GONE, EXPIRED)


def is_invalid(exc: BaseException) -> bool:
    return reason_of(exc) == INVALID


def is_forbidden(exc: BaseException) -> bool:
    return reason_of(exc) == FORBIDDEN


def is_unauthorized(exc: BaseException) -> bool:
    return reason_of(exc) == UNAUTHORIZED


def is_too_many_requests(exc: BaseException) -> bool:
    return reason_of(exc) == TOO_MANY_REQUESTS


def is_method_not_allowed(exc: BaseException) -> bool:
    return reason_of(exc) == METHOD_NOT_ALLOWED


def is_server_unavailable(exc: BaseException) -> bool:
    """The server could not serve now (503, 504, 500): worth retrying later."""
    return reason_of(exc) in (SERVICE_UNAVAILABLE, TIMEOUT, INTERNAL_ERROR)


def has_cause(exc: BaseException, cause_type: str, *, field: str | None = None) -> bool:
    """``details.causes`` holds a cause of ``cause_type`` (and ``field``, when given)."""
    if not isinstance(exc, StatusError) or not exc.details:
        return False
    for cause in exc.details.get("causes") or ():
        if cause.get("reason") == cause_type and (field is None or cause.get("field") == field):
            return True
    return False


def retry_after(exc: BaseException) -> int | None:
    """``details.retryAfterSeconds`` of a 429 or 5xx, as the server asked."""
    if isinstance(exc, StatusError) and exc.details:
        value = exc.details.get("retryAfterSeconds")
        if isinstance(value, int) and value > 0:
            return value
    return None


# --- field errors (k8s.io/apimachinery/pkg/util/validation/field) -------------

REQUIRED = "FieldValueRequired"
INVALID_VALUE = "FieldValueInvalid"
NOT_SUPPORTED = "FieldValueNotSupported"
DUPLICATE = "FieldValueDuplicate"
FIELD_FORBIDDEN = "FieldValueForbidden"
TOO_LONG = "FieldValueTooLong"
TOO_MANY = "FieldValueTooMany"
TYPE_INVALID = "FieldValueTypeInvalid"
FIELD_NOT_FOUND = "FieldValueNotFound"

_DETAIL = {
    REQUIRED: "Required value",
    INVALID_VALUE: "Invalid value",
    NOT_SUPPORTED: "Unsupported value",
    DUPLICATE: "Duplicate value",
    FIELD_FORBIDDEN: "Forbidden",
    TOO_LONG: "Too long",
    TOO_MANY: "Too many",
    TYPE_INVALID: "Invalid value",
    FIELD_NOT_FOUND: "Not found",
}

_NO_VALUE = object()

OMITTED: Any = _NO_VALUE
"""Pass as a field error's value to leave the value out of the message (Go's ``omitValue``)."""


@dataclass(frozen=True, slots=True)
class GoValue:
    """A value already rendered as upstream prints it (e.g. ``map[string]string{"a":"b"}``)."""

    text: str

    def __repr__(self) -> str:
        return self.text


def go_string_map(value: Any, type_name: str = "map[string]string") -> GoValue:
    """``map[string]string{"a":"b"}`` as Go's ``%#v`` prints a string map (keys sorted)."""
    if not isinstance(value, dict):
        return GoValue(f"{type_name}(nil)")
    inner = ", ".join(
        f"{gostrings.quote(str(k))}:{gostrings.quote(str(v))}" for k, v in sorted(value.items())
    )
    return GoValue(f"{type_name}{{{inner}}}")


def go_string_list(value: Any, type_name: str = "[]string") -> GoValue:
    """``[]string{"a", "b"}`` as Go's ``%#v`` prints a string slice."""
    if not isinstance(value, list):
        return GoValue(f"{type_name}(nil)")
    return GoValue(type_name + "{" + ", ".join(gostrings.quote(str(v)) for v in value) + "}")


def go_repr(value: Any) -> str:
    """Render a value the way upstream's field errors print it (Go ``%#v``-ish)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return gostrings.quote(value)
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict):
        inner = ", ".join(f"{go_repr(k)}:{go_repr(v)}" for k, v in sorted(value.items()))
        return f"map[string]interface {{}}{{{inner}}}"
    if isinstance(value, list):
        return "[]interface {}{" + ", ".join(go_repr(v) for v in value) + "}"
    return repr(value)


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem with one field, like upstream's ``field.Error``."""

    type: str
    field: str
    detail: str = ""
    value: Any = _NO_VALUE
    supported: tuple[str, ...] = ()

    def message(self) -> str:
        what = _DETAIL[self.type]
        if self.type in (REQUIRED, FIELD_FORBIDDEN, TOO_LONG) or self.value is _NO_VALUE:
            text = f"{self.field}: {what}"
        else:
            text = f"{self.field}: {what}: {go_repr(self.value)}"
        if self.type == NOT_SUPPORTED and self.supported:
            text += ": supported values: " + ", ".join(f'"{s}"' for s in self.supported)
        elif self.detail:
            text += f": {self.detail}"
        return text

    def cause(self) -> dict[str, Any]:
        message = self.message()
        prefix = f"{self.field}: "
        if message.startswith(prefix):
            message = message[len(prefix) :]
        return {"reason": self.type, "message": message, "field": self.field}


def required(field: str, detail: str = "") -> FieldError:
    return FieldError(REQUIRED, field, detail)


def invalid_value(field: str, value: Any, detail: str = "") -> FieldError:
    return FieldError(INVALID_VALUE, field, detail, value)


def not_supported(field: str, value: Any, supported: list[str] | tuple[str, ...]) -> FieldError:
    return FieldError(NOT_SUPPORTED, field, "", value, tuple(supported))


def duplicate(field: str, value: Any) -> FieldError:
    return FieldError(DUPLICATE, field, "", value)


def field_forbidden(field: str, detail: str) -> FieldError:
    return FieldError(FIELD_FORBIDDEN, field, detail)


def too_long(field: str, limit: int) -> FieldError:
    return FieldError(TOO_LONG, field, f"may not be more than {limit} bytes")


def too_many(field: str, actual: int, limit: int) -> FieldError:
    return FieldError(TOO_MANY, field, f"must have at most {limit} items", actual)


def field_not_found(field: str, value: Any, detail: str = "") -> FieldError:
    """``Not found``: a reference to something that does not exist (e.g. a volume name)."""
    return FieldError(FIELD_NOT_FOUND, field, detail, value)


def invalid(kind: str, group: str, name: str, errors: list[FieldError]) -> StatusError:
    """The 422 ``Invalid`` status for a set of field errors."""
    # Like upstream's aggregate: the message lists each distinct error once,
    # while the causes keep every entry.
    messages = list(dict.fromkeys(e.message() for e in errors))
    joined = messages[0] if len(messages) == 1 else "[" + ", ".join(messages) + "]"
    kind_label = f"{kind}.{group}" if group else kind
    return StatusError(
        422,
        INVALID,
        f'{kind_label} "{name}" is invalid: {joined}',
        details=_details(name, group, kind, causes=[e.cause() for e in errors]),
    )
