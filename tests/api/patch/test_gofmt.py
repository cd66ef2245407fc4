"""Go's printing of decoded JSON values and its stable sort, as the patch errors and orders need.

Expected strings are what Go 1.19+ prints for the same values.
"""

from __future__ import annotations

from typing import Any

import pytest

from pilothouse.api import gostrings
from pilothouse.api.patch import gofmt, ordering


@pytest.mark.parametrize(
    ("value", "printed"),
    [
        (1e6, "1e+06"),
        (123456.0, "123456"),
        (1234567.0, "1.234567e+06"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (1.5, "1.5"),
        (80.0, "80"),
        (-2.5e-7, "-2.5e-07"),
        (1e21, "1e+21"),
        (100000.0, "100000"),
    ],
)
def test_floats_print_as_go_v(value: float, printed: str) -> None:
    assert gofmt.v(value) == printed


def test_v_and_s_of_decoded_values() -> None:
    assert gofmt.v([{"name": "a", "n": None}, True, 1.5]) == "[map[n:<nil> name:a] true 1.5]"
    assert gofmt.s(5) == "%!s(int64=5)"
    assert gofmt.s(True) == "%!s(bool=true)"
    assert gofmt.s(None) == "%!s(<nil>)"
    assert gofmt.s({"b": 1, "a": "x"}) == "map[a:x b:%!s(int64=1)]"


def test_quote_like_strconv() -> None:
    assert gostrings.quote('tab\there "q" é \x01') == '"tab\\there \\"q\\" é \\x01"'
    assert gostrings.quote("\u2028") == '"\\u2028"'


def test_type_names() -> None:
    samples: list[Any] = [{}, [], "", 1, 1.0, True]
    assert [gofmt.type_name(v) for v in samples] == [
        "map[string]interface {}",
        "[]interface {}",
        "string",
        "int64",
        "float64",
        "bool",
    ]
    assert gofmt.type_name_s(None) == "%!s(<nil>)"


def _go_sorted(places: list[int]) -> list[int]:
    keyed: list[Any] = list(places)
    # upstream's comparison: "less" whenever either item is missing (-1)
    ordering.go_slice_stable(keyed, lambda a, b: not (a >= 0 and b >= 0) or a < b)
    return keyed


@pytest.mark.parametrize(
    ("places", "go"),
    [
        ([3, -1, 1, -1, 2], [-1, 1, 2, -1, 3]),
        ([-1, -1, 2, 1], [1, 2, -1, -1]),
        (
            [5, 4, 3, 2, 1, 0, -1, 7, 6, 5, 4, 3, 2, 1, 0, -1, 9, 8, 7, 6, 5, 4, 3, -1, 2, 1],
            [-1, -1, 0, 0, 1, 1, 1, 2, 2, 2, -1, 3, 3, 3, 4, 4, 4, 5, 5, 5, 6, 6, 7, 7, 8, 9],
        ),
    ],
)
def test_go_slice_stable_with_upstreams_inconsistent_comparison(
    places: list[int], go: list[int]
) -> None:
    assert _go_sorted(places) == go
