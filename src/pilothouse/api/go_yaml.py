"""YAML read as go-yaml v2 reads it, then converted as sigs.k8s.io/yaml converts it.

A PyYAML loader (libyaml's C parser when available) with go-yaml v2's scalar
resolution and sigs.k8s.io/yaml's YAML-to-JSON conversion rules; see
:mod:`pilothouse.api.decode` for the list. Aliases are expanded into
independent copies, with a budget against alias bombs. Repeated keys are noted
with the mapping they occur in, so their paths can be worked out afterwards.

libyaml words parse errors exactly as go-yaml (a Go port of it) does;
:func:`yaml_message` adds go-yaml's ``line N:`` rule and rewords the few
problems the pure-Python parser words differently.

No I/O here: this module is part of the bottom ``api`` layer.
"""

from __future__ import annotations

import datetime
import math
import re
import struct
from typing import Any

import yaml

# Containers cloned while expanding YAML aliases, per document.
ALIAS_BUDGET = 1_000_000


class ConversionError(ValueError):
    """YAML that cannot become JSON; the message is go-yaml's or Go's json's."""


_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_BOOL = {
    **dict.fromkeys(
        ("y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"), True
    ),
    **dict.fromkeys(
        ("n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"), False
    ),
}
_SPECIAL_FLOATS = {
    **dict.fromkeys((".nan", ".NaN", ".NAN"), math.nan),
    **dict.fromkeys((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), math.inf),
    **dict.fromkeys(("-.inf", "-.Inf", "-.INF"), -math.inf),
}
_GO_INT = re.compile(r"[-+]?(?:0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)\Z")
_YAML_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?\Z")
_INT64_MIN, _UINT64_MAX = -(1 << 63), (1 << 64) - 1
_TAG = "tag:yaml.org,2002:"

# libyaml (and so CSafeLoader) already words problems as go-yaml, its Go port,
# does; the pure-Python loader words a few differently.
_PY_PROBLEMS = {
    "mapping values are not allowed here": "mapping values are not allowed in this context",
    "expected <block end>, but found": "did not find expected key",
    "expected ',' or '}', but got": "did not find expected ',' or '}'",
    "expected ',' or ']', but got": "did not find expected ',' or ']'",
    "found character '\\t' that cannot start any token": "found character that cannot start any token",
}


def _go_number(text: str) -> Any:
    """go-yaml v2's reading of a plain scalar that starts like a number.

    It may still be a string (``1:20``, ``2024-01-02``, ``12ab``).
    """
    if text in _SPECIAL_FLOATS:
        return _SPECIAL_FLOATS[text]
    if text[0] == ".":
        try:
            return float(text)
        except ValueError:
            return text
    plain = text.replace("_", "")
    if _GO_INT.match(plain):
        sign, digits = (plain[0], plain[1:]) if plain[0] in "+-" else ("", plain)
        if len(digits) > 1 and digits[0] == "0" and digits[1].isdigit():
            number = int(digits, 8)  # Go's base-0 parsing reads a leading 0 as octal
        else:
            number = int(digits, 0)
        number = -number if sign == "-" else number
        if _INT64_MIN <= number <= _UINT64_MAX:
            return number
    if _YAML_FLOAT.match(plain):
        return float(plain)
    return text


def _go_float32_key(value: float) -> str:
    """``strconv.FormatFloat(v, 'g', -1, 32)``: how sigs.k8s.io/yaml names a float key."""
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    if value == 0:
        return "-0" if math.copysign(1, value) < 0 else "0"
    single = struct.unpack("f", struct.pack("f", value))[0]
    for precision in range(9):
        text = f"{single:.{precision}e}"
        if struct.unpack("f", struct.pack("f", float(text)))[0] == single:
            break
    mantissa, _, exponent = text.partition("e")
    negative = mantissa.startswith("-")
    digits = mantissa.lstrip("-").replace(".", "").rstrip("0") or "0"
    exp = int(exponent)
    nd, dp = len(digits), exp + 1
    eprec = nd if 6 > nd >= dp else 6
    if exp < -4 or exp >= eprec:
        body = digits[0] + ("." + digits[1:] if nd > 1 else "")
        out = f"{body}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    elif dp <= 0:
        out = "0." + "0" * -dp + digits
    elif dp >= nd:
        out = digits + "0" * (dp - nd)
    else:
        out = digits[:dp] + "." + digits[dp:]
    return "-" + out if negative else out


def _json_key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, int):
        return str(key)
    if isinstance(key, float):
        return _go_float32_key(key)
    if key is None:
        raise ConversionError("unsupported map key of type: %!s(<nil>), key: <nil>")
    raise ConversionError(f"yaml: invalid map key: {key!r}")


def json_value(value: Any) -> Any:
    """A YAML value as Go's JSON encoder would write it (and we would read it back)."""
    if type(value) is float:
        if not math.isfinite(value):
            shown = "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
            raise ConversionError(f"json: unsupported value: {shown}")
        # Go writes integral floats without a fraction: 1.0 is read back as 1.
        if value.is_integer() and abs(value) < 1e21:
            return int(value)
    return value


class _GoYAMLLoader(_BaseLoader):  # type: ignore[misc,valid-type]
    """A safe loader reading YAML as go-yaml v2 and sigs.k8s.io/yaml do."""

    yaml_implicit_resolvers: dict[Any, Any] = {}
    yaml_constructors = dict(_BaseLoader.yaml_constructors)

    def __init__(self, stream: bytes, *, find_duplicates: bool) -> None:
        super().__init__(stream)
        self.find_duplicates = find_duplicates
        self.duplicates: list[tuple[dict[str, Any], str]] = []
        self.alias_budget = ALIAS_BUDGET

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        cached = self.constructed_objects.get(node, _MISSING)
        if cached is _MISSING:
            return super().construct_object(node, deep)
        # An alias: every use gets its own copy, as with go-yaml, so that
        # later changes to one place do not show up in another.
        if isinstance(cached, dict | list):
            return self.clone(cached)
        return cached

    def clone(self, value: Any) -> Any:
        self.alias_budget -= 1
        if self.alias_budget < 0:
            raise ConversionError("yaml: document contains excessive aliasing")
        if isinstance(value, dict):
            return {k: self.clone(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.clone(v) for v in value]
        return value


_MISSING = object()


def _construct_number(loader: _GoYAMLLoader, node: yaml.ScalarNode) -> Any:
    text = loader.construct_scalar(node)
    return _go_number(text) if text else text


def _construct_bool(loader: _GoYAMLLoader, node: yaml.ScalarNode) -> Any:
    text = loader.construct_scalar(node)
    return _BOOL.get(text, text)


def _construct_null(loader: _GoYAMLLoader, node: yaml.ScalarNode) -> None:
    return None


def _construct_str(loader: _GoYAMLLoader, node: yaml.ScalarNode) -> Any:
    return loader.construct_scalar(node)


def _construct_binary(loader: _GoYAMLLoader, node: yaml.ScalarNode) -> str:
    raw: bytes = yaml.constructor.SafeConstructor.construct_yaml_binary(loader, node)
    return raw.decode("utf-8", errors="replace")


def _construct_timestamp(loader: _GoYAMLLoader, node: yaml.ScalarNode) -> str:
    # Only an explicit !!timestamp gets here; Go's encoder writes RFC 3339.
    value = yaml.constructor.SafeConstructor.construct_yaml_timestamp(loader, node)
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            return value.isoformat() + "Z"
        return value.isoformat().replace("+00:00", "Z")
    return f"{value.isoformat()}T00:00:00Z"


def _construct_map(loader: _GoYAMLLoader, node: yaml.MappingNode) -> dict[str, Any]:
    explicit = sum(1 for key, _ in node.value if key.tag != _TAG + "merge")
    loader.flatten_mapping(node)  # merged pairs first, so explicit keys win
    pairs = node.value
    first_explicit = len(pairs) - explicit
    out: dict[str, Any] = {}
    seen: set[str] | None = set() if loader.find_duplicates else None
    for index, (key_node, value_node) in enumerate(pairs):
        key = _json_key(loader.construct_object(key_node, deep=True))
        if seen is not None and index >= first_explicit:
            if key in seen:
                loader.duplicates.append((out, key))
            seen.add(key)
        out[key] = json_value(loader.construct_object(value_node, deep=True))
    return out


def _construct_seq(loader: _GoYAMLLoader, node: yaml.SequenceNode) -> list[Any]:
    return [json_value(loader.construct_object(child, deep=True)) for child in node.value]


def _construct_set(loader: _GoYAMLLoader, node: yaml.MappingNode) -> dict[str, Any]:
    return {_json_key(loader.construct_object(k, deep=True)): None for k, _ in node.value}


def _construct_untagged(loader: _GoYAMLLoader, node: yaml.Node) -> Any:
    # go-yaml ignores tags it does not know (``!Ref x`` reads as "x").
    if isinstance(node, yaml.MappingNode):
        return _construct_map(loader, node)
    if isinstance(node, yaml.SequenceNode):
        return _construct_seq(loader, node)
    return loader.construct_scalar(node)


def _install() -> None:
    cls = _GoYAMLLoader
    cls.add_implicit_resolver(
        _TAG + "bool", re.compile("^(?:" + "|".join(_BOOL) + ")$"), list("yYnNtTfFoO")
    )
    cls.add_implicit_resolver(
        _TAG + "null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""]
    )
    # Everything that starts like a number goes to one constructor mirroring
    # go-yaml's resolve(), which may still decide that it is a string.
    cls.add_implicit_resolver(
        _TAG + "int", re.compile(r"^[-+.0-9].*$", re.S), list("-+.0123456789")
    )
    cls.add_implicit_resolver(_TAG + "merge", re.compile(r"^(?:<<)$"), ["<"])
    for tag, constructor in (
        ("int", _construct_number),
        ("float", _construct_number),
        ("bool", _construct_bool),
        ("null", _construct_null),
        ("str", _construct_str),
        ("binary", _construct_binary),
        ("timestamp", _construct_timestamp),
        ("map", _construct_map),
        ("omap", _construct_seq),
        ("pairs", _construct_seq),
        ("seq", _construct_seq),
        ("set", _construct_set),
    ):
        cls.add_constructor(_TAG + tag, constructor)
    cls.add_constructor(None, _construct_untagged)


_install()


_ALIAS = re.compile(r"\*([^\s,\[\]{}]+)")


def yaml_message(exc: yaml.YAMLError, body: bytes) -> str:
    """go-yaml's wording for a parse error: ``yaml: line 3: <problem>``."""
    if isinstance(exc, yaml.reader.ReaderError):
        return f"yaml: {exc.reason}"
    if not isinstance(exc, yaml.MarkedYAMLError):
        return f"yaml: {exc}"
    problem = exc.problem or exc.context or "unknown problem parsing YAML content"
    if problem.startswith("found undefined alias"):
        # go-yaml names the anchor and gives no line.
        at = exc.problem_mark.index if exc.problem_mark is not None else 0
        found = _ALIAS.match(body.decode("utf-8", errors="replace"), at)
        return f"yaml: unknown anchor '{found.group(1) if found else ''}' referenced"
    for python_words, go_words in _PY_PROBLEMS.items():
        if problem.startswith(python_words):
            problem = go_words
            break
    # go-yaml prints the problem line; a parser's (0-based) line is printed as is,
    # a scanner's is one more, and a problem on line 0 falls back to the context.
    line = 0
    problem_mark, context_mark = exc.problem_mark, exc.context_mark
    if problem_mark is not None and problem_mark.line != 0:
        line = problem_mark.line + (1 if isinstance(exc, yaml.scanner.ScannerError) else 0)
    elif context_mark is not None:
        line = context_mark.line
    where = f"line {line}: " if line else ""
    return f"yaml: {where}{problem}"


def load(
    body: bytes, *, find_duplicates: bool
) -> tuple[list[Any], list[tuple[dict[str, Any], str]]]:
    """The non-empty documents in ``body`` and the repeated keys (with their mapping).

    Raises :class:`ConversionError`, or :class:`yaml.YAMLError` for text that is
    not YAML (word it with :func:`yaml_message`). Stops after a second document.
    """
    loader = _GoYAMLLoader(body, find_duplicates=find_duplicates)
    documents: list[Any] = []
    try:
        while loader.check_data() and len(documents) < 2:
            document = loader.get_data()
            if document is not None:
                documents.append(json_value(document))
    except RecursionError as exc:
        raise ConversionError("yaml: exceeded max depth") from exc
    finally:
        loader.dispose()
    return documents, loader.duplicates
