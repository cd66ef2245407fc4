"""IntOrString scaling (GetScaledValueFromIntOrPercent) and its errors."""

from __future__ import annotations

import pytest

from pilothouse.api import intstr


@pytest.mark.parametrize(
    ("value", "total", "round_up", "expected"),
    [
        (5, 10, True, 5),
        (5, 10, False, 5),
        ("25%", 10, True, 3),
        ("25%", 10, False, 2),
        ("25%", 4, True, 1),
        ("0%", 10, True, 0),
        ("100%", 7, False, 7),
        ("110%", 10, False, 11),
        ("33%", 100, True, 33),
        ("1%", 1, True, 1),
        ("1%", 1, False, 0),
        ("-10%", 15, True, -1),
        ("-10%", 15, False, -2),
    ],
)
def test_scaled_value(value: int | str, total: int, round_up: bool, expected: int) -> None:
    assert intstr.scaled_value(value, total, round_up) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "nil value for IntOrString"),
        ("25", "invalid value for IntOrString: invalid type: string is not a percentage"),
        (
            "abc%",
            'invalid value for IntOrString: invalid value "abc%": '
            'strconv.Atoi: parsing "abc": invalid syntax',
        ),
        (
            "1.5%",
            'invalid value for IntOrString: invalid value "1.5%": '
            'strconv.Atoi: parsing "1.5": invalid syntax',
        ),
        (2.5, "invalid value for IntOrString: invalid type: neither int nor percentage"),
    ],
)
def test_scaled_value_errors(value: object, message: str) -> None:
    with pytest.raises(intstr.IntOrStringError) as info:
        intstr.scaled_value(value, 10, True)  # type: ignore[arg-type]
    assert str(info.value) == message


def test_int_value_and_percent_value() -> None:
    assert intstr.int_value("42") == 42
    assert intstr.int_value("x") == 0
    assert intstr.int_value(7) == 7
    assert intstr.percent_value("25%") == 25
    assert intstr.percent_value("25") is None
    assert intstr.percent_value(25) is None
    assert not intstr.is_int(True)
