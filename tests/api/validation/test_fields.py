"""Semantic equality of JSON values, as upstream's ``apiequality.Semantic.DeepEqual``."""

from __future__ import annotations

from typing import Any

import pytest

from pilothouse.api.validation import fields


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("uid-1", "uid-1"),
        (None, None),
        ({"a": [1, {"b": "c"}]}, {"a": [1, {"b": "c"}]}),
        # Empty and zero values are the same as absent ones.
        ({"a": 0, "b": "", "c": [], "d": {}, "e": False}, {}),
        (None, ""),
        ({"x": {"y": None}}, None),
        (0, False),
        ([], None),
    ],
)
def test_equal_values(a: Any, b: Any) -> None:
    assert fields.semantic_equal(a, b)
    assert fields.semantic_equal(b, a)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("uid-1", "uid-2"),
        ("x", None),
        ({"a": 1}, {}),
        ({"a": [1, 2]}, {"a": [2, 1]}),
        ("2026-12-06T12:00:00Z", "2026-12-06T12:00:01Z"),
    ],
)
def test_unequal_values(a: Any, b: Any) -> None:
    assert not fields.semantic_equal(a, b)
    assert not fields.semantic_equal(b, a)
