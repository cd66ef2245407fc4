"""cel-go's strings extension (version 2) and Kubernetes' regex library.

``charAt``, ``indexOf``, ``lastIndexOf``, ``lowerAscii``, ``upperAscii``, ``replace``,
``split``, ``substring``, ``trim``, ``join``, ``format``, ``strings.quote``, and
``find``/``findAll`` (``k8s.io/apiserver/pkg/cel/library/regex.go``). Indices count
code points, as cel-go's do; errors are worded as cel-go words them.

No I/O here: this module is part of the bottom ``api`` layer.
"""

from __future__ import annotations

import datetime
import functools
import math
import re
from typing import Any

from pilothouse.api.cel.library import lists
from pilothouse.api.cel.library.lists import LibraryError
from pilothouse.api.cel.library.opaque import NoSuchOverload


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise NoSuchOverload()
    return value


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise NoSuchOverload()
    return value


def char_at(s: Any, i: Any) -> str:
    text, index = _str(s), _int(i)
    if index < 0 or index > len(text):
        raise LibraryError(f"index out of range: {index}")
    return text[index] if index < len(text) else ""


def index_of(s: Any, sub: Any, offset: Any = None) -> int:
    if isinstance(s, list):
        if offset is not None:
            raise NoSuchOverload()
        return lists.index_of(s, sub)
    text, needle = _str(s), _str(sub)
    start = 0 if offset is None else _int(offset)
    if start < 0 or start > len(text):
        raise LibraryError(f"index out of range: {start}")
    return text.find(needle, start)


def last_index_of(s: Any, sub: Any, offset: Any = None) -> int:
    if isinstance(s, list):
        if offset is not None:
            raise NoSuchOverload()
        return lists.last_index_of(s, sub)
    text, needle = _str(s), _str(sub)
    if offset is None:
        return text.rfind(needle)
    end = _int(offset)
    if end < 0 or end >= len(text):
        raise LibraryError(f"index out of range: {end}")
    return text.rfind(needle, 0, end + len(needle))


def lower_ascii(s: Any) -> str:
    return "".join(c.lower() if c.isascii() else c for c in _str(s))


def upper_ascii(s: Any) -> str:
    return "".join(c.upper() if c.isascii() else c for c in _str(s))


def replace(s: Any, old: Any, new: Any, n: Any = None) -> str:
    count = -1 if n is None else _int(n)
    return _str(s).replace(_str(old), _str(new), count)


def split(s: Any, sep: Any, n: Any = None) -> list[str]:
    text, separator = _str(s), _str(sep)
    limit = -1 if n is None else _int(n)
    if limit == 0:
        return []
    if separator == "":
        chars = list(text)
        if limit > 0 and len(chars) > limit:
            chars = [*chars[: limit - 1], "".join(chars[limit - 1 :])]
        return chars
    return text.split(separator, limit - 1 if limit > 0 else -1)


def substring(s: Any, start: Any, end: Any = None) -> str:
    text = _str(s)
    lo = _int(start)
    hi = len(text) if end is None else _int(end)
    if lo < 0 or lo > len(text):
        raise LibraryError(f"index out of range: {lo}")
    if hi < 0 or hi > len(text):
        raise LibraryError(f"index out of range: {hi}")
    if lo > hi:
        raise LibraryError(f"invalid substring range. start: {lo}, end: {hi}")
    return text[lo:hi]


def trim(s: Any) -> str:
    return _str(s).strip()


def join(items: Any, sep: Any = "") -> str:
    if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
        raise NoSuchOverload()
    return _str(sep).join(items)


def quote(s: Any) -> str:
    text = _str(s)
    out = ['"']
    for ch in text:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ch in "\a\b\f\v":
            out.append({"\a": "\\a", "\b": "\\b", "\f": "\\f", "\v": "\\v"}[ch])
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


_VERB = re.compile(r"%(?:\.(\d+))?([sdfeExXobb%])")


def _format_value(value: Any, verb: str, precision: int | None) -> str:
    if verb == "s":
        return _to_string(value)
    if verb == "d":
        if isinstance(value, bool) or not isinstance(value, int):
            raise LibraryError(
                "error during formatting: decimal clause can only be used on integers, "
                f"was given {_type_name(value)}"
            )
        return str(value)
    if verb in "fe":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise LibraryError(
                "error during formatting: fixed-point clause can only be used on doubles, "
                f"was given {_type_name(value)}"
            )
        digits = 6 if precision is None else precision
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return f"{value:.{digits}{verb}}"
    if verb in "xX":
        if isinstance(value, str):
            text = value.encode().hex()
        elif isinstance(value, bytes):
            text = value.hex()
        elif isinstance(value, int) and not isinstance(value, bool):
            text = format(value, "x")
        else:
            raise LibraryError(
                "error during formatting: only integers, byte buffers, and strings can be "
                f"formatted as hex, was given {_type_name(value)}"
            )
        return text.upper() if verb == "X" else text
    if verb == "o":
        return format(_int(value), "o")
    if verb == "b":
        if isinstance(value, bool):
            return "1" if value else "0"
        return format(_int(value), "b")
    return "%"


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "map"
    return type(value).__name__


def _to_string(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, float):
        return repr(value) if not value.is_integer() else f"{value:g}"
    if isinstance(value, datetime.datetime):
        return value.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, datetime.timedelta):
        seconds = value.total_seconds()
        return f"{seconds:g}s"
    if isinstance(value, list):
        return "[" + ", ".join(_to_string(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_to_string(k)}: {_to_string(v)}" for k, v in value.items()) + "}"
    return str(value)


def format_(template: Any, args: Any) -> str:
    text = _str(template)
    if not isinstance(args, list):
        raise NoSuchOverload()
    out: list[str] = []
    pos = 0
    index = 0
    for m in _VERB.finditer(text):
        out.append(text[pos : m.start()])
        pos = m.end()
        precision, verb = m.groups()
        if verb == "%":
            out.append("%")
            continue
        if index >= len(args):
            raise LibraryError(f"error during formatting: index {index} out of range")
        out.append(_format_value(args[index], verb, int(precision) if precision else None))
        index += 1
    out.append(text[pos:])
    return "".join(out)


@functools.lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise LibraryError(f"invalid regex: {exc}") from None


def find(s: Any, pattern: Any) -> str:
    m = _regex(_str(pattern)).search(_str(s))
    return m.group(0) if m else ""


def find_all(s: Any, pattern: Any, limit: Any = None) -> list[str]:
    n = -1 if limit is None else _int(limit)
    if n == 0:
        return []
    found = [m.group(0) for m in _regex(_str(pattern)).finditer(_str(s))]
    return found if n < 0 else found[:n]


def string_size(s: Any) -> int:
    """``size()`` of a string in code points (the engine counts bytes)."""
    return len(_str(s))
