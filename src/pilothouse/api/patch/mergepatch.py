"""JSON merge patch (RFC 7386), as the Kubernetes API server applies it.

Upstream applies ``application/merge-patch+json`` with ``evanphx/json-patch.v4``'s
``MergePatch``, which follows the RFC with these differences a client can see:

* a ``null`` patch is refused (400 ``Invalid JSON Patch``) rather than producing
  ``null``, and so is a string, number or boolean patch; under
  ``fieldValidation=Strict`` or ``Warn`` (the default) any patch that is not an
  object is refused while decoding (400 ``error decoding patch: json: cannot
  unmarshal array into Go value of type map[string]interface {}``);
* ``null`` members are also removed inside objects nested in arrays the patch
  adds — except where an array replaces an existing object;
* a member whose current value is ``null`` counts as absent.

No I/O here: part of the bottom ``api`` layer.
"""

from __future__ import annotations

from typing import Any

import orjson

from pilothouse.api.patch import errors, gofmt, values

_STRICT_MODES = frozenset({"Strict", "Warn"})
BAD_PATCH = "Invalid JSON Patch"


def apply_merge_patch(
    original: dict[str, Any], patch_body: Any, *, field_validation: str = "Warn"
) -> dict[str, Any]:
    """Apply a decoded ``application/merge-patch+json`` body to ``original``.

    ``field_validation`` is the request's ``fieldValidation`` (upstream's default
    is ``Warn``). Returns a new object; neither argument is modified.
    """
    kind = type(patch_body)
    if field_validation in _STRICT_MODES and patch_body is not None and kind is not dict:
        raise errors.bad_request(
            f"error decoding patch: json: cannot unmarshal {gofmt.json_kind(patch_body)} "
            "into Go value of type map[string]interface {}"
        )
    if kind is list:
        # Upstream returns the array as the new document, which then fails to decode.
        replacement = values.deep_copy(patch_body)
        _prune_array_nulls(replacement)
        raise errors.not_an_object(
            orjson.dumps(replacement).decode(),
            "couldn't get version/kind; json parse error: json: cannot unmarshal array into "
            'Go value of type struct { APIVersion string "json:\\"apiVersion,omitempty\\""; '
            'Kind string "json:\\"kind,omitempty\\"" }',
        )
    if kind is not dict:
        raise errors.bad_request(BAD_PATCH)
    document: dict[str, Any] = values.deep_copy(original)
    merge_objects(document, values.deep_copy(patch_body))
    return document


def merge_objects(document: dict[str, Any], patch: dict[str, Any]) -> None:
    """Merge ``patch`` into ``document`` in place (both are owned by the caller)."""
    for key, change in patch.items():
        if change is None:
            document.pop(key, None)
            continue
        current = document.get(key)
        if current is None:
            _prune_nulls(change)
            document[key] = change
        else:
            document[key] = _merge(current, change)


def _merge(current: Any, change: Any) -> Any:
    if type(current) is not dict:
        _prune_nulls(change)
        return change
    if type(change) is not dict:
        return change  # upstream keeps nulls inside an array replacing an object
    merge_objects(current, change)
    return current


def _prune_nulls(value: Any) -> None:
    kind = type(value)
    if kind is dict:
        for key in [k for k, item in value.items() if item is None]:
            del value[key]
        for item in value.values():
            _prune_nulls(item)
    elif kind is list:
        _prune_array_nulls(value)


def _prune_array_nulls(items: list[Any]) -> None:
    for item in items:
        if item is not None:
            _prune_nulls(item)
