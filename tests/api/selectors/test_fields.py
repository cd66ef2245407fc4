"""Field selectors, with cases taken from apimachinery's pkg/fields/selector_test.go (v0.32)."""

from __future__ import annotations

import pytest

from pilothouse.api import selectors
from pilothouse.api.selectors import fields

# --- field selectors ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("x=a,y=b,z=c", "x=a,y=b,z=c"),
        ("", ""),
        ("x!=a,y=b", "x!=a,y=b"),
        (r"x=a||y\=b", r"x=a||y\=b"),
        (r"x=a\=\=b", r"x=a\=\=b"),
        ("b==x,a=y", "a=y,b=x"),
        (",a=b,", "a=b"),
        ("함=수,목=록", "목=록,함=수"),
        (r"k=\\\,", r"k=\\\,"),
    ],
)
def test_field_selector_canonical_string(text: str, canonical: str) -> None:
    assert str(selectors.parse_field_selector(text)) == canonical


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x=a||y=b", "invalid field selector: unescaped character in value: 61"),
        ("x==a==b", "invalid field selector: unescaped character in value: 61"),
        ("x=a,b", "invalid selector: 'x=a,b'; can't understand 'b'"),
        ("x in (a)", "invalid selector: 'x in (a)'; can't understand 'x in (a)'"),
        ("x in (a,b,c)", "invalid selector: 'x in (a,b,c)'; can't understand 'b'"),
        ("x", "invalid selector: 'x'; can't understand 'x'"),
        ("k=\\", "invalid field selector: invalid escape sequence: \\"),
        (r"k=\\\ ", "invalid field selector: invalid escape sequence: \\ "),
        (r"k=\a", "invalid field selector: invalid escape sequence: \\a"),
    ],
)
def test_field_selector_errors(text: str, message: str) -> None:
    with pytest.raises(selectors.SelectorError) as caught:
        selectors.parse_field_selector(text)
    assert str(caught.value) == message


def test_field_selector_requirements() -> None:
    sel = selectors.parse_field_selector(r"spec.nodeName==n1,status.phase!=Running,a=b\,c")
    assert sel.requirements == [
        ("a", "=", "b,c"),
        ("spec.nodeName", "=", "n1"),
        ("status.phase", "!=", "Running"),
    ]
    assert sel.requires_exact_match("spec.nodeName") == "n1"
    assert sel.requires_exact_match("status.phase") is None


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("", True),
        ("foo=bar", True),
        ("baz=blah", True),
        ("foo=bar,baz=blah", True),
        (r"foo=bar,baz=blah,complex=\=value\\\,\\", True),
        ("foo=blah", False),
        ("baz=bar", False),
        ("foo=bar,foobar=bar,baz=blah", False),
        ("missing=", True),
        ("missing!=", False),
        ("foo!=blah", True),
    ],
)
def test_field_selector_matches(text: str, want: bool) -> None:
    fieldset = {"foo": "bar", "baz": "blah", "complex": "=value\\,\\"}
    assert selectors.parse_field_selector(text).matches(fieldset) is want


@pytest.mark.parametrize(
    ("value", "escaped"),
    [("", ""), ("a", "a"), ("=", r"\="), (",", r"\,"), ("\\", "\\\\"), ("\\=\\,\\", r"\\\=\\\,\\")],
)
def test_escape_round_trip(value: str, escaped: str) -> None:
    assert fields.escape_value(value) == escaped
    assert fields.unescape_value(escaped) == value


def test_transform_drops_terms_mapped_to_nothing() -> None:
    sel = selectors.parse_field_selector("a=b,c=d,e=f")
    out = sel.transform(lambda f, v: ("", "") if f == "c" else (f, v))
    assert str(out) == "a=b,e=f"
    assert sel.transform(lambda f, v: ("", "")).empty
