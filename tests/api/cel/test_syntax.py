"""The CEL parser: precedence, literals, macros and cel-go's error positions."""

from __future__ import annotations

import pytest

from pilothouse.api.cel import syntax


def test_precedence_and_associativity() -> None:
    tree = syntax.parse("a || b && c == d + e * -f")
    assert isinstance(tree, syntax.Call) and tree.function == "_||_"
    right = tree.args[1]
    assert isinstance(right, syntax.Call) and right.function == "_&&_"
    eq = right.args[1]
    assert isinstance(eq, syntax.Call) and eq.function == "_==_"
    add = eq.args[1]
    assert isinstance(add, syntax.Call) and add.function == "_+_"
    mul = add.args[1]
    assert isinstance(mul, syntax.Call) and mul.function == "_*_"
    assert isinstance(mul.args[1], syntax.Call) and mul.args[1].function == "-_"


def test_macros_become_comprehensions_and_has_a_test_only_select() -> None:
    tree = syntax.parse("self.items.all(x, has(x.name))")
    assert isinstance(tree, syntax.Comprehension)
    assert tree.macro == "all" and tree.var == "x"
    body = tree.args[0]
    assert isinstance(body, syntax.Select) and body.test_only and body.field == "name"


def test_literals() -> None:
    assert syntax.parse("0x1F").value == 31  # type: ignore[attr-defined]
    assert syntax.parse("7u").kind == "uint"  # type: ignore[attr-defined]
    assert syntax.parse("1e3").value == 1000.0  # type: ignore[attr-defined]
    assert syntax.parse("'\\u00e9'").value == "é"  # type: ignore[attr-defined]
    assert syntax.parse("b'\\xff'").value == b"\xff"  # type: ignore[attr-defined]
    with pytest.raises(syntax.SyntaxErrorCEL):
        syntax.parse("9223372036854775808")


def test_error_position_and_rendering() -> None:
    with pytest.raises(syntax.SyntaxErrorCEL) as err:
        syntax.parse("self.a +\n  ]")
    text = syntax.format_error("self.a +\n  ]", err.value.offset, err.value.message)
    assert text.startswith("ERROR: <input>:2:3: Syntax error:")
    assert text.endswith(" |   ]\n | ..^")


def test_reserved_words_are_refused() -> None:
    with pytest.raises(syntax.SyntaxErrorCEL) as err:
        syntax.parse("while")
    assert "reserved identifier: while" in err.value.message
