"""JSON patch (RFC 6902), as the Kubernetes API server applies it.

Upstream applies ``application/json-patch+json`` with ``gopkg.in/evanphx/json-patch.v4``
(v4.12.0), whose behaviour departs from the RFC in ways clients can see, so it
is reproduced here rather than taken from a general-purpose library:

* ``replace`` of a missing object member adds it; ``replace`` of the whole
  document (path ``""``) with anything but an object or array does nothing;
* ``copy`` from a missing object member copies ``null``; ``test`` of a missing
  member against ``null`` passes; ``add`` without a ``value`` adds ``null``;
* negative array indexes count from the end; an index is parsed as Go's
  ``strconv.Atoi`` parses it (``+1`` and ``01`` are 1); ``-`` appends in ``add``;
* a path's first segment is never looked at (``a/b`` means ``/b``), and an
  object member that is ``null`` cannot be walked through;
* ``test`` compares numbers as written (``1`` is not ``1.0``);
* some patches crash upstream's code — ``test`` of arrays holding ``null``,
  walking through a ``null`` an earlier operation set, ``test`` without a
  ``value`` where nothing is — and are answered as the crash is (500);
  :mod:`.jsonnodes` has the details.

The API server answers a patch that does not apply with 422 ``Invalid`` and the
text ``the server rejected our request due to an error in our request``; the
library's own message (``testing value /spec/replicas failed: test failed``) is in
:attr:`PatchError.message`. Decoding problems are 400 ``BadRequest``; more than
10000 operations 413; copies adding more than 3 MiB fail like upstream's
default ``--json-patch-max-copy-bytes``.

One difference is deliberate: upstream compares strings in ``test`` byte for
byte as the server's JSON encoder wrote them (``&``, ``<`` and ``>`` escaped),
so there a value with those characters only matches when the client escaped
them the same way; here strings compare by content.

No I/O here: part of the bottom ``api`` layer.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from pilothouse.api.patch import errors, gofmt, jsonnodes, values
from pilothouse.api.patch.jsonnodes import ABSENT, MISSING_VALUE, OP_NULL, Failed, wrap

MAX_OPERATIONS = 10000
MAX_COPY_BYTES = 3 * 1024 * 1024
_STRICT_MODES = frozenset({"Strict", "Warn"})
_ESCAPE = re.compile(r"~[01]")
_NOT_AN_OBJECT = (
    "couldn't get version/kind; json parse error: json: cannot unmarshal array into "
    'Go value of type struct { APIVersion string "json:\\"apiVersion,omitempty\\""; '
    'Kind string "json:\\"kind,omitempty\\"" }'
)


def apply_json_patch(
    original: dict[str, Any], patch_body: Any, *, field_validation: str = "Warn"
) -> dict[str, Any]:
    """Apply a decoded ``application/json-patch+json`` body to ``original``.

    ``field_validation`` is the request's ``fieldValidation`` (upstream's default
    is ``Warn``); it changes how an undecodable body is worded. Returns a new
    object; neither argument is modified.
    """
    operations = _decode(patch_body, strict=field_validation in _STRICT_MODES)
    if len(operations) > MAX_OPERATIONS:
        raise errors.too_many_operations(len(operations), MAX_OPERATIONS)
    document = _Document(values.deep_copy(original))
    try:
        for operation in operations:
            document.apply(operation)
    except Failed as failure:
        raise errors.rejected(str(failure)) from None
    result = jsonnodes.to_json(document.root) if document.odd_nulls else document.root
    if type(result) is not dict:
        raise errors.not_an_object(orjson.dumps(result).decode(), _NOT_AN_OBJECT)
    return result


def strict_problems(patch_body: Any) -> list[str]:
    """Unknown fields in the operations, as upstream's strict decoding words them.

    Upstream reports these (``json patch unknown field "foo"``) with the object's
    own strict-decoding problems: as warnings under ``fieldValidation=Warn``, as
    a 422 under ``Strict``. The body must already have decoded.
    """
    problems: list[str] = []
    if type(patch_body) is not list:
        return problems
    for operation in patch_body:
        if type(operation) is dict:
            for key in operation:
                if key not in ("op", "path", "from", "value"):
                    problems.append(f'json patch unknown field "{key}"')
    return problems


def _decode(body: Any, *, strict: bool) -> list[dict[str, Any]]:
    """The operations of a body, or the 400 upstream's decoding answers."""
    if body is None:
        return []
    if strict:
        if type(body) is not list:
            raise errors.bad_request(
                f"error decoding patch: json: cannot unmarshal {gofmt.json_kind(body)} "
                "into Go value of type []handlers.jsonPatchOp"
            )
        for operation in body:
            problem = _strict_type_error(operation)
            if problem:
                raise errors.bad_request(f"error decoding patch: {problem}")
    elif type(body) is not list:
        raise errors.bad_request(
            f"json: cannot unmarshal {gofmt.json_kind(body)} into Go value of type jsonpatch.Patch"
        )
    operations: list[dict[str, Any]] = []
    for operation in body:
        if operation is None:
            operations.append({})
        elif type(operation) is dict:
            operations.append(operation)
        else:
            raise errors.bad_request(
                f"json: cannot unmarshal {gofmt.json_kind(operation)} "
                "into Go value of type jsonpatch.Operation"
            )
    return operations


def _strict_type_error(operation: Any) -> str:
    if operation is None:
        return ""
    if type(operation) is not dict:
        return (
            f"json: cannot unmarshal {gofmt.json_kind(operation)} "
            "into Go value of type handlers.jsonPatchOp"
        )
    # Go's decoder reports the first mistyped field in the order of the document.
    for field, item in operation.items():
        if field in ("op", "path", "from") and item is not None and type(item) is not str:
            return (
                f"json: cannot unmarshal {gofmt.json_kind(item)} into Go struct field "
                f"jsonPatchOp.{field} of type string"
            )
    return ""


def _decode_key(key: str) -> str:
    return _ESCAPE.sub(lambda m: "/" if m.group() == "~1" else "~", key)


def _path(op: dict[str, Any], field: str) -> str | Failed:
    """The ``path`` or ``from`` member, or the error Go's decoding gives for it."""
    item = op.get(field)
    if item is None:
        what = (
            "operation missing path field" if field == "path" else "operation, missing from field"
        )
        return wrap(what, MISSING_VALUE)
    if type(item) is not str:
        return Failed(
            f"json: cannot unmarshal {gofmt.json_kind(item)} into Go value of type string"
        )
    return str(item)


class _Document:
    """The document being patched, and the operations as v4.12.0 performs them."""

    def __init__(self, root: Any) -> None:
        self.root = root
        self.copied = 0
        self.odd_nulls = False  # whether any OP_NULL or COPIED_NULL went in

    def value(self, op: dict[str, Any]) -> Any:
        """The node an ``add`` or ``replace`` puts in (a copy of the value)."""
        if "value" not in op:
            return None
        if op["value"] is None:
            self.odd_nulls = True
            return OP_NULL
        return values.deep_copy(op["value"])

    def find(self, path: str) -> tuple[Any, str] | None:
        """``findObject``: the container of ``path``'s last segment, and that segment."""
        parts = path.split("/")
        if len(parts) < 2:
            return None
        container = self.root
        for part in parts[1:-1]:
            try:
                child = jsonnodes.get(container, _decode_key(part))
            except Failed:
                return None
            container = jsonnodes.as_container(child)
            if container is None:
                return None
        return container, _decode_key(parts[-1])

    def apply(self, operation: dict[str, Any]) -> None:
        kind = operation.get("op")
        handler = _HANDLERS.get(kind) if type(kind) is str else None
        if handler is None:
            raise Failed(f"Unexpected kind: {kind if type(kind) is str else 'unknown'}")
        handler(self, operation)

    def add(self, op: dict[str, Any]) -> None:
        path = _path(op, "path")
        if not isinstance(path, str):
            raise wrap("add operation failed to decode path", MISSING_VALUE)
        found = self.find(path)
        if found is None:
            raise wrap(
                f'add operation does not apply: doc is missing path: "{path}"', MISSING_VALUE
            )
        try:
            jsonnodes.add(found[0], found[1], self.value(op))
        except Failed as failure:
            raise wrap(f"error in add for path: '{path}'", failure) from None

    def remove(self, op: dict[str, Any]) -> None:
        path = _path(op, "path")
        if not isinstance(path, str):
            raise wrap("remove operation failed to decode path", MISSING_VALUE)
        found = self.find(path)
        if found is None:
            raise wrap(
                f'remove operation does not apply: doc is missing path: "{path}"', MISSING_VALUE
            )
        try:
            jsonnodes.remove(*found)
        except Failed as failure:
            raise wrap(f"error in remove for path: '{path}'", failure) from None

    def replace(self, op: dict[str, Any]) -> None:
        path = _path(op, "path")
        if isinstance(path, Failed):
            raise wrap("replace operation failed to decode path", path)
        if path == "":
            if "value" not in op:
                raise jsonnodes.nil_dereference()
            replacement = op["value"]
            if type(replacement) is dict or type(replacement) is list:
                self.root = values.deep_copy(replacement)
            return  # upstream silently ignores anything else
        found = self.find(path)
        if found is None:
            raise wrap(
                f"replace operation does not apply: doc is missing path: {path}", MISSING_VALUE
            )
        try:
            jsonnodes.get(*found)
        except Failed:
            raise wrap(
                f"replace operation does not apply: doc is missing key: {path}", MISSING_VALUE
            ) from None
        try:
            jsonnodes.set_(found[0], found[1], self.value(op))
        except Failed as failure:
            raise wrap(f"error in remove for path: '{path}'", failure) from None

    def move(self, op: dict[str, Any]) -> None:
        source = _path(op, "from")
        if isinstance(source, Failed):
            raise wrap("move operation failed to decode from", source)
        found = self.find(source)
        if found is None:
            raise wrap(
                f"move operation does not apply: doc is missing from path: {source}", MISSING_VALUE
            )
        container, key = found
        try:
            moved = jsonnodes.get(container, key)
            jsonnodes.remove(container, key)
        except Failed as failure:
            raise wrap(f"error in move for path: '{key}'", failure) from None
        path = _path(op, "path")
        if isinstance(path, Failed):
            raise wrap("move operation failed to decode path", path)
        target = self.find(path)
        if target is None:
            raise wrap(
                f"move operation does not apply: doc is missing destination path: {path}",
                MISSING_VALUE,
            )
        try:
            jsonnodes.add(target[0], target[1], moved)
        except Failed as failure:
            raise wrap(f"error in move for path: '{path}'", failure) from None

    def test(self, op: dict[str, Any]) -> None:
        path = _path(op, "path")
        if isinstance(path, Failed):
            raise wrap("test operation failed to decode path", path)
        expected = op.get("value", ABSENT)
        if path == "":
            if not jsonnodes.equal(self.root, expected):
                raise wrap(f"testing value {path} failed", "test failed")
            return
        found = self.find(path)
        if found is None:
            raise wrap(f"test operation does not apply: is missing path: {path}", MISSING_VALUE)
        try:
            actual = jsonnodes.get(*found)
        except Failed as failure:
            raise wrap(f"error in test for path: '{path}'", failure) from None
        if actual is None:
            if expected is ABSENT:
                raise jsonnodes.nil_dereference()
            passed = expected is None
        else:
            passed = expected is not ABSENT and jsonnodes.equal(actual, expected)
        if not passed:
            raise wrap(f"testing value {path} failed", "test failed")

    def copy(self, op: dict[str, Any]) -> None:
        source = _path(op, "from")
        if isinstance(source, Failed):
            raise wrap("copy operation failed to decode from", source)
        found = self.find(source)
        if found is None:
            raise wrap(
                f"copy operation does not apply: doc is missing from path: {source}", MISSING_VALUE
            )
        try:
            copied = jsonnodes.get(*found)
        except Failed as failure:
            raise wrap(f"error in copy for from: '{source}'", failure) from None
        path = _path(op, "path")
        if not isinstance(path, str):
            raise wrap("copy operation failed to decode path", MISSING_VALUE)
        target = self.find(path)
        if target is None:
            raise wrap(
                f"copy operation does not apply: doc is missing destination path: {path}",
                MISSING_VALUE,
            )
        copied, size = jsonnodes.copy_node(copied)
        if copied is jsonnodes.COPIED_NULL:
            self.odd_nulls = True
        self.copied += size
        if self.copied > MAX_COPY_BYTES:
            raise Failed(
                "Unable to complete the copy, the accumulated size increase of copy is "
                f"{self.copied}, exceeding the limit {MAX_COPY_BYTES}"
            )
        try:
            jsonnodes.add(target[0], target[1], copied)
        except Failed as failure:
            raise wrap("error while adding value during copy", failure) from None


_HANDLERS = {
    "add": _Document.add,
    "remove": _Document.remove,
    "replace": _Document.replace,
    "move": _Document.move,
    "test": _Document.test,
    "copy": _Document.copy,
}
