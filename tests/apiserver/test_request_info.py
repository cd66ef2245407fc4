"""``request.parse_once``: a request's path is parsed once, whoever asks."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest

from pilothouse.api import errors, resources
from pilothouse.apiserver import request as request_info


def test_a_request_is_parsed_once_whoever_asks() -> None:
    req: dict[str, Any] = {}
    with mock.patch.object(request_info, "parse", wraps=request_info.parse) as parse:
        first = request_info.parse_once(
            req, "/api/v1/namespaces/ns/pods/p/status", resources.DEFAULT
        )
        again = request_info.parse_once(
            req, "/api/v1/namespaces/ns/pods/p/status/", resources.DEFAULT
        )
        assert parse.call_count == 1
        assert again is first
        assert (first.resource.plural, first.namespace, first.name, first.subresource) == (
            "pods",
            "ns",
            "p",
            "status",
        )
        # Another path (a request rewritten on its way) or registry is parsed afresh.
        other = request_info.parse_once(req, "/api/v1/namespaces/ns/pods/q", resources.DEFAULT)
        assert other.name == "q" and parse.call_count == 2


def test_a_failed_parse_is_raised_each_time() -> None:
    req: dict[str, Any] = {}
    for _ in range(2):
        with pytest.raises(errors.StatusError) as exc:
            request_info.parse_once(req, "/api/v1/namespaces/ns/nothings/x", resources.DEFAULT)
        assert exc.value.code == 404
    with pytest.raises(request_info.NotAResource):
        request_info.parse_once(req, "/api/v1", resources.DEFAULT)
