"""Resource quantities: upstream's grammar, rounding and canonical spelling."""

from __future__ import annotations

import decimal

import pytest

from pilothouse.api import quantity

D = decimal.Decimal


@pytest.mark.parametrize(
    ("text", "value", "canonical"),
    [
        ("0", D(0), "0"),
        ("0.5", D("0.5"), "500m"),
        ("1.5Gi", D(1610612736), "1536Mi"),
        ("1e3", D(1000), "1e3"),
        ("1E3", D(1000), "1E3"),
        ("12e6", D(12000000), "12e6"),
        ("1.5e3", D(1500), "1500"),
        ("100m", D("0.1"), "100m"),
        ("128Mi", D(134217728), "128Mi"),
        ("1024Mi", D(1073741824), "1Gi"),
        ("1000", D(1000), "1k"),
        ("1000000", D(1000000), "1M"),
        ("2048", D(2048), "2048"),
        ("1Ki", D(1024), "1Ki"),
        ("0.5Ki", D(512), "512"),
        ("1.5Ki", D(1536), "1536"),
        ("0.1m", D("0.0001"), "100u"),
        ("0.1n", D("1e-9"), "1n"),
        ("5u", D("0.000005"), "5u"),
        ("-1.5", D("-1.5"), "-1500m"),
        ("+5", D(5), "+5"),
        ("1.500", D("1.5"), "1.500"),
        ("0.0", D(0), "0"),
        ("1E", D(10**18), "1E"),
        ("8Ei", D(2**63 - 1), "9223372036854775807"),
        ("  250m ", D("0.25"), "250m"),
        (3, D(3), "3"),
        (0.25, D("0.25"), "250m"),
    ],
)
def test_parse_and_canonical(
    text: str | int | float, value: decimal.Decimal, canonical: str
) -> None:
    parsed = quantity.parse(text)
    assert parsed.value == value
    assert str(parsed) == canonical
    assert quantity.canonicalize(text) == canonical


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", quantity.FORMAT_ERROR),
        ("abc", quantity.FORMAT_ERROR),
        ("1.2.3", quantity.FORMAT_ERROR),
        ("1Zi", quantity.FORMAT_ERROR),
        ("1 Gi", quantity.FORMAT_ERROR),
        ("1mi", quantity.SUFFIX_ERROR),
        ("1e", quantity.SUFFIX_ERROR),
        ("1KiB", quantity.FORMAT_ERROR),
        ("--1", quantity.SUFFIX_ERROR),
        (True, quantity.FORMAT_ERROR),
    ],
)
def test_invalid_quantities(text: object, error: str) -> None:
    with pytest.raises(quantity.QuantityError) as info:
        quantity.parse(text)  # type: ignore[arg-type]
    assert str(info.value) == error


def test_format_error_names_upstream_regex() -> None:
    assert quantity.FORMAT_ERROR == (
        "quantities must match the regular expression "
        "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    )


@pytest.mark.parametrize(
    ("text", "milli", "whole"),
    [
        ("1", 1000, 1),
        ("100m", 100, 1),
        ("1.5", 1500, 2),
        ("1n", 1, 1),
        ("-1.5", -1500, -2),
        ("1Ki", 1024000, 1024),
        ("0", 0, 0),
    ],
)
def test_milli_and_int_round_away_from_zero(text: str, milli: int, whole: int) -> None:
    assert quantity.milli(text) == milli
    assert quantity.to_int(text) == whole
    assert quantity.parse(text).milli_value() == milli


@pytest.mark.parametrize(
    ("text", "rounded"),
    [
        ("100u", "1m"),
        ("1.0001", "1001m"),
        ("1.500", "1.500"),
        ("0.5000", "500m"),
        ("2Gi", "2Gi"),
        ("1", "1"),
    ],
)
def test_resource_list_rounding(text: str, rounded: str) -> None:
    assert quantity.round_up_milli(text) == rounded


@pytest.mark.parametrize(
    ("value", "fmt", "text"),
    [
        (D("0.5"), quantity.DECIMAL_SI, "500m"),
        (D(1536 * 2**20), quantity.BINARY_SI, "1536Mi"),
        (D(1000), quantity.DECIMAL_EXPONENT, "1e3"),
        (D(1000), quantity.DECIMAL_SI, "1k"),
        (D(100), quantity.BINARY_SI, "100"),
        (D("1.5"), quantity.BINARY_SI, "1500m"),
        (D(0), quantity.BINARY_SI, "0"),
        (D("1e-12"), quantity.DECIMAL_SI, "1n"),
        (5, quantity.DECIMAL_SI, "5"),
    ],
)
def test_format_quantity(value: decimal.Decimal, fmt: str, text: str) -> None:
    assert quantity.format_quantity(value, fmt) == text


@pytest.mark.parametrize("text", ["1", "100m", "1Gi", "1536Mi", "1e3", "250u", "7k", "-3"])
def test_canonical_form_round_trips(text: str) -> None:
    once = quantity.canonicalize(text)
    assert quantity.canonicalize(once) == once
    assert quantity.parse(once).value == quantity.parse(text).value


def test_compare() -> None:
    assert quantity.compare("1", "1000m") == 0
    assert quantity.compare("1Gi", "1G") == 1
    assert quantity.compare("500m", "0.6") == -1
