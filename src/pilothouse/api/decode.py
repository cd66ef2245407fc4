"""Request bodies to JSON-shaped values, the way the Kubernetes API server reads them.

Two decoders, each returning ``(value, duplicate_paths)``:

* :func:`decode_json` — orjson on the fast path; with ``find_duplicates`` the
  stdlib parser with an ``object_pairs_hook`` notes repeated keys, and their
  paths (``metadata.name``, ``spec.containers[0].image``) are worked out only
  when there is one. Upstream reports each as ``duplicate field "<path>"``.
* :func:`decode_yaml` — YAML as ``sigs.k8s.io/yaml`` converts it to JSON, which
  follows go-yaml v2, i.e. YAML 1.1 scalars: ``y``/``yes``/``on`` (and ``n``/``no``/
  ``off``, any of three casings) are booleans, ``0755`` is octal, ``1e3`` is a
  number, timestamps stay strings, ``1:20`` is a string (PyYAML would read
  base 60), non-string keys become strings (``8080`` → ``"8080"``,
  ``yes`` → ``"true"``), floats with an integral value become integers (Go's
  JSON encoder writes ``1.0`` as ``1``), ``.nan``/``.inf`` values are errors.
  A body holding more than one non-empty document is an error: every endpoint
  that reads one takes a single object (go-yaml would silently keep the first).
  Aliases are expanded into independent copies, with a budget against alias
  bombs. A body that is JSON (what kubectl's server-side apply sends as
  ``application/apply-patch+yaml``) takes the JSON path, 20 times faster.

Malformed input raises :class:`DecodeError`, worded as upstream words it:
``couldn't get version/kind; json parse error: invalid character '}' looking
for beginning of object key string`` and ``error converting YAML to JSON:
yaml: line 3: mapping values are not allowed in this context``.

Upstream reports duplicate YAML keys in go-yaml's words (``yaml: unmarshal
errors: line 4: key "replicas" already set in map``); pilothouse reports them
as field paths for both formats, so clients see one wording.

No I/O here: this module is part of the bottom ``api`` layer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import orjson
import yaml

from pilothouse.api import go_yaml, json_syntax

__all__ = ["DecodeError", "decode_json", "decode_yaml"]

JSON_PREFIX = "couldn't get version/kind; json parse error: "
YAML_PREFIX = "error converting YAML to JSON: "


class DecodeError(ValueError):
    """A request body that is not well-formed JSON or YAML."""


# --- JSON -------------------------------------------------------------------------


class _Dups(dict[str, Any]):
    """A decoded object that had repeated keys; ``order`` keeps every key in
    document order, flagged when it repeats an earlier one."""

    __slots__ = ("order",)

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        super().__init__(pairs)
        seen: set[str] = set()
        self.order: list[tuple[str, bool]] = []
        for key, _ in pairs:
            self.order.append((key, key in seen))
            seen.add(key)


def _pairs_hook(found: list[bool]) -> Callable[[list[tuple[str, Any]]], dict[str, Any]]:
    """An ``object_pairs_hook`` that marks objects with repeated keys (and notes
    in ``found`` that there was one, so clean bodies are never walked again)."""

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) == len(pairs):
            return obj
        found.append(True)
        return _Dups(pairs)

    return hook


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def _lenient_json(body: bytes, hook: Callable[[list[tuple[str, Any]]], Any] | None) -> Any:
    """Parse what orjson refused: Go's verdict first, then the stdlib parser for what
    Go accepts and orjson does not (invalid UTF-8, lone surrogates, huge numbers)."""
    message = json_syntax.syntax_error(body)
    if message is not None:
        raise DecodeError(JSON_PREFIX + message)
    text = body.decode("utf-8", errors="replace")
    try:
        value = json.loads(text, object_pairs_hook=hook, parse_constant=_reject_constant)
    except RecursionError as exc:
        # Go allows 10000 levels; Python's parser stops near 1000.
        raise DecodeError(JSON_PREFIX + "exceeded max depth") from exc
    except ValueError as exc:  # pragma: no cover - Go's scanner agreed it is valid
        raise DecodeError(JSON_PREFIX + str(exc)) from exc
    if "\\ud" in text.lower():
        value = _replace_surrogates(value)
    return value


_SURROGATE = re.compile("[\ud800-\udfff]")


def _replace_surrogates(value: Any) -> Any:
    # Go decodes an unpaired surrogate escape as U+FFFD.
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_replace_surrogates(v) for v in value]
    if isinstance(value, dict):
        out = {_replace_surrogates(k): _replace_surrogates(v) for k, v in value.items()}
        if isinstance(value, _Dups):
            fixed = _Dups(list(out.items()))
            fixed.order = [(_replace_surrogates(k), repeated) for k, repeated in value.order]
            return fixed
        return out
    return value


def _canonical_json(body: bytes) -> Any | None:
    """The value of a body that is exactly orjson's own compact encoding of it, else None.

    Such a body cannot repeat a key: the decoded value keeps one member per key, so
    encoding it again would come out shorter. Bodies from pilothouse's own clients
    (orjson) and compact ones from Go's encoding/json mostly are; the test costs an
    encode and a compare, against a parse with a Python hook on every object (about a
    fifth of the time). Anything else takes the duplicate-finding parse.
    """
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(value, dict | list):
        return None
    try:
        again = orjson.dumps(value)
    except orjson.JSONEncodeError:  # pragma: no cover - what orjson decoded it encodes
        return None
    return value if again == body.strip() else None


def decode_json(body: bytes, *, find_duplicates: bool) -> tuple[Any, list[str]]:
    """Parse a JSON body; with ``find_duplicates`` also list repeated keys' paths."""
    if not find_duplicates:
        try:
            return orjson.loads(body), []
        except orjson.JSONDecodeError:
            return _lenient_json(body, None), []
    value = _canonical_json(body)
    if value is not None:
        return value, []
    found: list[bool] = []
    hook = _pairs_hook(found)
    try:
        value = json.loads(body, object_pairs_hook=hook, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        value = _lenient_json(body, hook)
    if not found:
        return value, []
    paths: list[str] = []
    # Replace every _Dups with a plain dict, noting its repeated keys' paths.
    return _strip_dups(value, "", paths), paths


def _strip_dups(value: Any, path: str, found: list[str]) -> Any:
    if type(value) is _Dups:
        # In document order: a repeat is reported where it occurs.
        out: dict[str, Any] = {}
        for key, repeated in value.order:
            if repeated:
                found.append(_join(path, key))
            else:
                out[key] = _strip_dups(value[key], _join(path, key), found)
        return out
    if isinstance(value, dict):
        return {k: _strip_dups(v, _join(path, k), found) for k, v in value.items()}
    if isinstance(value, list):
        return [_strip_dups(v, f"{path}[{i}]", found) for i, v in enumerate(value)]
    return value


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


# --- YAML -------------------------------------------------------------------------


def decode_yaml(body: bytes, *, find_duplicates: bool) -> tuple[Any, list[str]]:
    """Parse a YAML body as Kubernetes does; with ``find_duplicates`` also list
    repeated keys' paths."""
    if body.lstrip()[:1] == b"{":
        # JSON is YAML, and what kubectl sends as YAML (server-side apply) is
        # JSON: parse it as such, then read numbers as the YAML path would.
        try:
            value, duplicates = decode_json(body, find_duplicates=find_duplicates)
        except DecodeError:
            pass  # not JSON after all (``{a: 1}``): the YAML parser decides
        else:
            return _yaml_numbers(value), duplicates
    try:
        documents, repeated = go_yaml.load(body, find_duplicates=find_duplicates)
    except yaml.YAMLError as exc:
        raise DecodeError(YAML_PREFIX + go_yaml.yaml_message(exc, body)) from exc
    except go_yaml.ConversionError as exc:
        raise DecodeError(YAML_PREFIX + str(exc)) from exc
    if len(documents) > 1:
        raise DecodeError(YAML_PREFIX + "yaml: expected a single document in the stream")
    value = documents[0] if documents else None
    if not repeated:
        return value, []
    return value, _duplicate_paths(value, repeated)


def _yaml_numbers(value: Any) -> Any:
    """Integral floats as integers, as a YAML-to-JSON round trip through Go leaves them."""
    if type(value) is float:
        try:
            return go_yaml.json_value(value)
        except go_yaml.ConversionError as exc:  # pragma: no cover - JSON has no NaN
            raise DecodeError(YAML_PREFIX + str(exc)) from exc
    if type(value) is dict:
        for key, item in value.items():
            if type(item) in (dict, list, float):
                value[key] = _yaml_numbers(item)
    elif type(value) is list:
        for index, item in enumerate(value):
            if type(item) in (dict, list, float):
                value[index] = _yaml_numbers(item)
    return value


def _duplicate_paths(value: Any, duplicates: list[tuple[dict[str, Any], str]]) -> list[str]:
    paths: dict[int, str] = {}

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            paths[id(node)] = path
            for key, child in node.items():
                if isinstance(child, dict | list):
                    walk(child, _join(path, key))
        elif isinstance(node, list):
            for index, child in enumerate(node):
                if isinstance(child, dict | list):
                    walk(child, f"{path}[{index}]")

    walk(value, "")
    return [_join(paths[id(obj)], key) for obj, key in duplicates if id(obj) in paths]
