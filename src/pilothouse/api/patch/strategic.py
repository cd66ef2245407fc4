"""Kubernetes strategic merge patch, as the API server applies it.

A port of the server side of apimachinery's ``pkg/util/strategicpatch``
(``StrategicMergeMapPatch`` with ``MergeParallelList`` and ``IgnoreUnmatchedNulls``),
with the merge keys and strategies of the kind's Go struct taken from the 1.32
schemas (:mod:`.meta`). A JSON merge patch, except:

* lists whose field has strategy ``merge`` are merged — objects by the field's
  merge key (containers by ``name``, ports by ``containerPort``, conditions by
  ``type``, ownerReferences by ``uid``), primitives (``finalizers``) as a set —
  and ordered as the patch lists them; other lists are replaced;
* ``{"$patch": "replace"}`` in an object replaces it, ``{"$patch": "delete"}``
  empties it; in a merged list, ``{"<key>": v, "$patch": "delete"}`` removes the
  items with that key and ``{"$patch": "replace"}`` replaces the list;
* ``$retainKeys`` (fields with strategy ``retainKeys``: volumes, a Deployment's
  ``strategy``) drops every member of the object it does not name;
* ``$setElementOrder/<list>`` orders a merged list, as ``kubectl apply`` sends it;
* ``$deleteFromPrimitiveList/<list>`` removes values from a list of primitives;
* a field whose strategy is ``replace`` (a PodDisruptionBudget's selector) is
  replaced.

Kinds without a schema fall back to JSON merge patch. Custom resources never
get here upstream: their PATCH accepts only JSON patch, merge patch and apply
(415 for strategic merge, see :func:`strategic_merge_supported`).

Errors are upstream's, with its status codes (see :mod:`.errors`). Apart from
the few directive-format errors upstream answers 400 and the list-of-lists 422,
they are plain errors that the API server answers 500 with the text, as
``kubectl`` shows: ``Error from server: map: map[image:x] does not contain
declared merge key: name``.

No I/O here: part of the bottom ``api`` layer.
"""

from __future__ import annotations

from typing import Any

from pilothouse.api.patch import errors, gofmt, lists, mergepatch, meta, values
from pilothouse.api.patch.lists import REPLACE, remove_directives
from pilothouse.api.patch.meta import GoType
from pilothouse.api.patch.ordering import DELETE, DIRECTIVE

RETAIN_KEYS_STRATEGY = "retainKeys"
RETAIN_KEYS = "$retainKeys"
SET_ELEMENT_ORDER = lists.SET_ELEMENT_ORDER
DELETE_FROM_PRIMITIVE_LIST = "$deleteFromPrimitiveList"

# mergepatch's sentinel errors the handler answers 400 (interpretStrategicMergePatchError).
BAD_PRIMITIVE_LIST = "invalid patch format of primitive list"
BAD_RETAIN_KEYS = "invalid patch format of retainKeys"

UNSUPPORTED_MEDIA_TYPE = (
    "the body of the request was in an unknown format - accepted media types include: "
    "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
)
"""What upstream answers (415) for a strategic merge patch of a custom resource."""


def strategic_merge_supported(group: str, version: str, kind: str) -> bool:
    """Whether the kind has the schema strategic merge patch needs (custom resources don't)."""
    return meta.kind_type(group, version, kind) is not None


def apply_strategic_merge_patch(
    original: dict[str, Any], patch_body: Any, *, group: str, version: str, kind: str
) -> dict[str, Any]:
    """Apply a decoded ``application/strategic-merge-patch+json`` body to ``original``.

    Returns a new object; neither argument is modified.
    """
    root = meta.kind_type(group, version, kind)
    if root is None:
        return mergepatch.apply_merge_patch(original, patch_body)
    if patch_body is None:
        patch_body = {}  # decoding null into a map leaves it empty
    elif type(patch_body) is not dict:
        raise errors.bad_request(
            f"json: cannot unmarshal {gofmt.json_kind(patch_body)} "
            "into Go value of type map[string]interface {}"
        )
    document = values.deep_copy(original)
    patch = values.deep_copy(patch_body)
    return merge_map(document, patch, root)


# --- objects ----------------------------------------------------------------------


def merge_map(original: dict[str, Any], patch: dict[str, Any], t: GoType) -> dict[str, Any]:
    """``mergeMap``: merge ``patch`` into ``original`` (both owned, both changed)."""
    if DIRECTIVE in patch:
        return _map_directive(patch[DIRECTIVE], patch)
    _apply_retain_keys(original, patch)
    lists.merge_ordered_lists(original, patch, t, strategy_of=_strategy, merge_map=merge_map)
    for key, change in list(patch.items()):
        delete_list = False
        if key.startswith(DELETE_FROM_PRIMITIVE_LIST):
            delete_list = True
            stripped = _strip_prefix(key, DELETE_FROM_PRIMITIVE_LIST, BAD_PRIMITIVE_LIST)
            key = stripped or key  # upstream keeps the whole key when nothing follows "/"
        if change is None:
            original.pop(key, None)
            continue
        if key not in original or type(original[key]) is not type(change):
            if not delete_list:
                _discard_nulls(change)
                kept, keep = remove_directives(change)
                if keep:
                    original[key] = kept
                else:
                    original.pop(key, None)
            continue
        current = original[key]
        if type(current) is dict:
            field = meta.lookup_struct(t, key)
            strategy = _strategy(field.strategies)
            original[key] = (
                change if strategy == REPLACE else merge_map(current, change, field.type)
            )
        elif type(current) is list:
            field = meta.lookup_slice(t, key)
            original[key], _ = lists.merge_list_field(
                current,
                change,
                field,
                _strategy(field.strategies),
                delete_list=delete_list,
                merge_map=merge_map,
            )
        else:
            original[key] = change
    return original


def _map_directive(directive: Any, patch: dict[str, Any]) -> dict[str, Any]:
    if directive == REPLACE:
        del patch[DIRECTIVE]
        return patch
    if directive == DELETE:
        return {}
    raise errors.plain(f"unknown patch type: {gofmt.s(directive)} in map: {gofmt.v(patch)}")


def _apply_retain_keys(original: dict[str, Any], patch: dict[str, Any]) -> None:
    if RETAIN_KEYS not in patch:
        return
    retained = patch.pop(RETAIN_KEYS)
    if type(retained) is not list:
        raise errors.bad_request(BAD_RETAIN_KEYS)
    keys = {values.go_key(item) for item in retained}
    for key, change in patch.items():
        if change is None or key.startswith((DELETE_FROM_PRIMITIVE_LIST, SET_ELEMENT_ORDER)):
            continue
        if (str, key) not in keys:
            raise errors.bad_request(BAD_RETAIN_KEYS)
    for key in [k for k in original if (str, k) not in keys]:
        del original[key]


def _strategy(strategies: tuple[str, ...]) -> str:
    """``extractRetainKeysPatchStrategy``: the strategy besides ``retainKeys``."""
    if not strategies:
        return ""
    if len(strategies) == 1:
        return "" if strategies[0] == RETAIN_KEYS_STRATEGY else strategies[0]
    if len(strategies) == 2:
        if strategies[0] == RETAIN_KEYS_STRATEGY:
            return strategies[1]
        if strategies[1] == RETAIN_KEYS_STRATEGY:
            return strategies[0]
    raise errors.plain(f"unexpected patch strategy: {gofmt.v(list(strategies))}")


def _strip_prefix(key: str, prefix: str, problem: str) -> str:
    """``extractKey``: ``$prefix/field`` → ``field``."""
    head, slash, rest = key.partition("/")
    if not slash or head != prefix:
        raise errors.bad_request(problem)
    return rest


def _discard_nulls(value: Any) -> None:
    kind = type(value)
    if kind is dict:
        for key in [k for k, item in value.items() if item is None]:
            del value[key]
        for item in value.values():
            _discard_nulls(item)
    elif kind is list:
        for item in value:
            _discard_nulls(item)
