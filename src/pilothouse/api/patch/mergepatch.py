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
    is ``Warn``). Returns a new object; neither argument is modified. The new object
    shares with ``original`` whatever the patch leaves alone (only the dicts on the
    patch's paths are copied; a status patch no longer copies the whole pod): a
    caller that changes the result in place must own ``original`` too.
    """
    kind = type(patch_body)
    if field_validation in _STRICT_MODES and patch_body is not None and kind is not dict:
        raise errors.bad_request(
            f"error decoding patch: json: cannot unmarshal {gofmt.json_kind(patch_body)} "
            "into Go value of type map[string]interface {}"
        )
    if kind is list:
        # Upstream returns the array as the new document, which then fails to decode.
        replacement = _pruned(patch_body)
        raise errors.not_an_object(
            orjson.dumps(replacement).decode(),
            "couldn't get version/kind; json parse error: json: cannot unmarshal array into "
            'Go value of type struct { APIVersion string "json:\\"apiVersion,omitempty\\""; '
            'Kind string "json:\\"kind,omitempty\\"" }',
        )
    if kind is not dict:
        raise errors.bad_request(BAD_PATCH)
    return merged(original, patch_body)


def merged(document: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """``document`` with ``patch`` merged in (RFC 7386, with upstream's differences
    above): a new dict on every path the patch names, sharing the rest with
    ``document`` and nothing with ``patch``; neither is modified."""
    out = dict(document)
    for key, change in patch.items():
        if change is None:
            out.pop(key, None)
            continue
        current = out.get(key)
        if current is None or type(current) is not dict:
            out[key] = _pruned(change)
        elif type(change) is not dict:
            out[key] = values.deep_copy(change)  # nulls kept in an array replacing an object
        else:
            out[key] = merged(current, change)
    return out


def _pruned(value: Any) -> Any:
    """A copy of ``value`` without null object members, at any depth (null array
    elements stay, as upstream's)."""
    kind = type(value)
    if kind is dict:
        return {key: _pruned(item) for key, item in value.items() if item is not None}
    if kind is list:
        return [None if item is None else _pruned(item) for item in value]
    return value
