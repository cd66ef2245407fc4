"""Kubernetes' CEL URL library (``k8s.io/apiserver/pkg/cel/library/urls.go``).

``url('https://example.com:80/path?k=v')`` parses as Go's ``url.ParseRequestURI``
(an absolute URI or an absolute path); ``isURL``; and on URLs ``getScheme``,
``getHost`` (with the port, IPv6 in brackets), ``getHostname``, ``getPort``,
``getEscapedPath`` and ``getQuery`` (a map of lists).

No I/O here: this module is part of the bottom ``api`` layer.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

from pilothouse.api.cel.library import opaque
from pilothouse.api.cel.library.lists import LibraryError

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*$")


def _check(text: str) -> urllib.parse.SplitResult:
    problem = f'parse "{text}": invalid URI for request'
    if not text:
        raise LibraryError('URL parse error during conversion from string: parse "": empty url')
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise LibraryError(
            f'URL parse error during conversion from string: parse "{text}": net/url: invalid '
            "control character in URL"
        )
    if text.startswith("/"):
        return urllib.parse.urlsplit(text, allow_fragments=False)
    scheme, colon, _ = text.partition(":")
    if not colon or not _SCHEME.match(scheme):
        raise LibraryError(f"URL parse error during conversion from string: {problem}")
    parts = urllib.parse.urlsplit(text, allow_fragments=False)
    try:
        _ = parts.port  # a bad port is a parse error in Go
    except ValueError:
        raise LibraryError(
            f'URL parse error during conversion from string: parse "{text}": invalid port'
        ) from None
    return parts


def url(text: Any) -> dict[str, str]:
    if not isinstance(text, str):
        raise opaque.NoSuchOverload()
    _check(text)
    return opaque.wrap(opaque.URL, text)


def is_url(text: Any) -> bool:
    if not isinstance(text, str):
        raise opaque.NoSuchOverload()
    try:
        _check(text)
    except LibraryError:
        return False
    return True


def _parts(arg: Any) -> urllib.parse.SplitResult:
    return _check(opaque.unwrap(opaque.URL, arg))


def get_scheme(arg: Any) -> str:
    return _parts(arg).scheme


def get_host(arg: Any) -> str:
    return _parts(arg).netloc.rpartition("@")[2]


def get_hostname(arg: Any) -> str:
    host = get_host(arg)
    if host.startswith("["):
        return host[1 : host.find("]")]
    return host.partition(":")[0]


def get_port(arg: Any) -> str:
    host = get_host(arg)
    if host.startswith("["):
        rest = host[host.find("]") + 1 :]
        return rest[1:] if rest.startswith(":") else ""
    return host.partition(":")[2]


def get_escaped_path(arg: Any) -> str:
    return urllib.parse.quote(urllib.parse.unquote(_parts(arg).path), safe="/:@!$&'()*+,;=-._~")


def get_query(arg: Any) -> dict[str, list[str]]:
    return urllib.parse.parse_qs(_parts(arg).query, keep_blank_values=True)
