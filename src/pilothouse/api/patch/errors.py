"""The one error every patch engine raises, and how the API server answers it.

Upstream's PATCH handler (``apiserver/pkg/endpoints/handlers/patch.go``) answers
a failed patch in one of a few ways, and :class:`PatchError` carries which:

* 400 ``BadRequest`` with the error's own text — a patch document that cannot
  be decoded (``error decoding patch: json: cannot unmarshal object into Go
  value of type []handlers.jsonPatchOp``) and the malformed strategic-merge
  directives upstream singles out (``invalid patch format of retainKeys``);
* 422 ``Invalid`` with the fixed text ``the server rejected our request due to an
  error in our request`` — a JSON patch that does not apply (a failed ``test``,
  a missing path) and the strategic-merge errors ``lists of lists are not
  supported``; upstream keeps the real reason out of the response, so it is in
  :attr:`PatchError.message` only (log it);
* 413 ``RequestEntityTooLarge`` — a JSON patch of more than 10000 operations;
* 500 with an empty reason and the error's text — every other strategic-merge
  error (``map: map[image:x] does not contain declared merge key: name``), since
  upstream returns those as plain Go errors; and 500 ``InternalError`` where
  upstream's code would panic (comparing maps, a missing ``value`` in a ``test``).

No I/O here: part of the bottom ``api`` layer.
"""

from __future__ import annotations

from pilothouse.api import errors as api_errors

# What NewGenericServerResponse puts in the Status for a 422.
REJECTED = "the server rejected our request due to an error in our request"
# What the API server's panic recovery answers.
PANICKED = "This request caused apiserver to panic. Look in the logs for details."
UNKNOWN_REASON = ""  # metav1.StatusReasonUnknown


class PatchError(ValueError):
    """A patch that cannot be decoded or applied.

    ``code`` is the HTTP status the API answers (400, 413, 422 or 500), ``message``
    upstream's own error text, and :meth:`status_error` the exact ``Status``.
    """

    def __init__(
        self, message: str, *, code: int, status: api_errors.StatusError | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self._status = status

    @property
    def reason(self) -> str:
        return self.status_error().reason

    def status_error(self) -> api_errors.StatusError:
        """The ``metav1.Status`` error the API server answers for this failure."""
        if self._status is not None:
            return self._status
        if self.code == 400:
            return api_errors.StatusError(400, api_errors.BAD_REQUEST, self.message)
        if self.code == 422:
            return api_errors.StatusError(422, api_errors.INVALID, REJECTED)
        return api_errors.StatusError(self.code, UNKNOWN_REASON, self.message)

    def __repr__(self) -> str:
        return f"PatchError({self.code}, {self.message!r})"


def bad_request(message: str) -> PatchError:
    """400 ``BadRequest`` carrying ``message``."""
    return PatchError(message, code=400)


def rejected(message: str) -> PatchError:
    """422 ``Invalid`` with upstream's fixed text; ``message`` stays server-side."""
    return PatchError(message, code=422)


def plain(message: str) -> PatchError:
    """A plain Go error reaching the handler: 500 with an empty reason."""
    return PatchError(message, code=500)


def panic(message: str) -> PatchError:
    """Where upstream's code panics (``message`` is the runtime error it would log)."""
    status = api_errors.StatusError(
        500,
        api_errors.INTERNAL_ERROR,
        f'an error on the server ("{PANICKED}") has prevented the request from succeeding',
    )
    return PatchError(message, code=500, status=status)


def too_many_operations(count: int, limit: int) -> PatchError:
    """413 for a JSON patch with more than ``limit`` operations."""
    message = f"The allowed maximum operations in a JSON patch is {limit}, got {count}"
    status = api_errors.StatusError(
        413, api_errors.REQUEST_ENTITY_TOO_LARGE, f"Request entity too large: {message}"
    )
    return PatchError(message, code=413, status=status)


def not_an_object(patched_json: str, decode_error: str) -> PatchError:
    """422 for a patch whose result is no object (upstream fails decoding it)."""
    status = api_errors.invalid(
        "", "", "", [api_errors.invalid_value("patch", patched_json, decode_error)]
    )
    return PatchError(decode_error, code=422, status=status)
