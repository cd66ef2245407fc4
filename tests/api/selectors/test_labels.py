"""Label selectors, with cases taken from apimachinery's pkg/labels/selector_test.go (v0.32)."""

from __future__ import annotations

from typing import Any

import pytest

from pilothouse.api import errors, selectors
from pilothouse.api.selectors import labels

# --- label selectors: parse and print ----------------------------------------

# (input, canonical string): upstream's TestSelectorParse good strings print back
# without spaces; the rest are from TestSetSelectorParser.
CANONICAL = [
    ("x=a,y=b,z=c", "x=a,y=b,z=c"),
    ("", ""),
    ("x!=a,y=b", "x!=a,y=b"),
    ("x=", "x="),
    ("x= ", "x="),
    ("x=,z= ", "x=,z="),
    ("x= ,z= ", "x=,z="),
    ("!x", "!x"),
    ("x>1", "x>1"),
    ("x>1,z<5", "x>1,z<5"),
    ("\rx", "x"),
    ("this-is-a-dns.domain.com/key-with-dash", "this-is-a-dns.domain.com/key-with-dash"),
    (
        "0.1.2.domain/99 notin (10.10.100.1, tick.tack.clock)",
        "0.1.2.domain/99 notin (10.10.100.1,tick.tack.clock)",
    ),
    ("foo  in\t (abc)", "foo in (abc)"),
    ("x notin\n (abc)", "x notin (abc)"),
    ("x  notin\t\t\t(abc,def)", "x notin (abc,def)"),
    ("x in (abc,)", "x in (,abc)"),
    ("x in ()", "x in ()"),
    ("x notin (abc,,def),bar,z in (),w", "bar,w,x notin (,abc,def),z in ()"),
    ("x,y in (a)", "x,y in (a)"),
    ("x=a,y!=b,z in (h,i,j)", "x=a,y!=b,z in (h,i,j)"),
    ("x notin ( )", "x notin ()"),
    ("x notin (, a)", "x notin (,a)"),
    ("a ", "a"),
    ("a in (x,y,notin, z,in)", "a in (in,notin,x,y,z)"),
    ("x==a", "x==a"),
    ("notin=in", "notin=in"),
    ("b in (z,a),a=1", "a=1,b in (a,z)"),
]


@pytest.mark.parametrize(("text", "canonical"), CANONICAL)
def test_label_selector_canonical_string(text: str, canonical: str) -> None:
    assert str(selectors.parse_label_selector(text)) == canonical


def test_label_selector_parse_is_deterministic() -> None:
    assert str(selectors.parse_label_selector("x=a,a=x")) == str(
        selectors.parse_label_selector("a=x,x=a")
    )
    assert selectors.parse_label_selector("x=a,a=x") == selectors.parse_label_selector("a=x,x=a")


VALUE_RULE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or "
    "'12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
NAME_RULE = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
    "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
OPERATORS = "in, notin, =, ==, !=, gt, lt"

# Bad strings from upstream's tests, with the message the grammar gives.
BAD = [
    ("x=a||y=b", f'unable to parse requirement: values[0][x]: Invalid value: "a||y": {VALUE_RULE}'),
    ("x==a==b", "found '==', expected: ',' or 'end of string'"),
    ("!x=a", "found '=', expected: ',' or 'end of string'"),
    (
        "x<a",
        'unable to parse requirement: values[0]: Invalid value: "a": '
        "for 'Gt', 'Lt' operators, the value must be an integer",
    ),
    ("x,,y", "found ',', expected: identifier after ','"),
    (",x,y", "found ',', expected: !, identifier, or 'end of string'"),
    ("x nott in (y)", f"unable to parse requirement: found 'nott', expected: {OPERATORS}"),
    ("a in (xyz),", "found '', expected: identifier after ','"),
    ("a in (xyz)b notin ()", "found 'b', expected: ',' or 'end of string'"),
    ("a in (xyz abc)", "unable to parse requirement: found 'abc', expected: ',' or ')'"),
    ("a notin(", "unable to parse requirement: found '', expected: ',', ')' or identifier"),
    ("a (", f"unable to parse requirement: found '(', expected: {OPERATORS}"),
    ("(", "found '(', expected: !, identifier, or 'end of string'"),
    ("x in a", "unable to parse requirement: found 'a' expected: '('"),
    ("x=(", "unable to parse requirement: found '(', expected: identifier"),
    ("!", "unable to parse requirement: found '', expected: identifier"),
    ("x=a b", "found 'b', expected: ',' or 'end of string'"),
    ("A_=b", f'unable to parse requirement: <nil>: Invalid value: "A_": {NAME_RULE}'),
    (
        "x in (A_,B_)",
        f'unable to parse requirement: [values[0][x]: Invalid value: "A_": {VALUE_RULE}, '
        f'values[1][x]: Invalid value: "B_": {VALUE_RULE}]',
    ),
    ("x>-1", f'unable to parse requirement: values[0][x]: Invalid value: "-1": {VALUE_RULE}'),
    (
        "x=" + "a" * 64,
        "unable to parse requirement: values[0][x]: Invalid value: "
        f'"{"a" * 64}": must be no more than 63 characters',
    ),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_label_selector_errors_are_worded_as_upstream(text: str, message: str) -> None:
    with pytest.raises(selectors.SelectorError) as caught:
        selectors.parse_label_selector(text)
    assert str(caught.value) == message


def test_selector_error_is_a_value_error_answered_as_bad_request() -> None:
    with pytest.raises(ValueError, match="unable to parse requirement") as caught:
        selectors.parse_label_selector("x<a")
    assert isinstance(caught.value, selectors.SelectorError)
    status = caught.value.status_error()
    assert isinstance(status, errors.StatusError)
    assert (status.code, status.reason) == (400, errors.BAD_REQUEST)
    assert status.message == str(caught.value)


def test_key_longer_than_a_dns_subdomain_is_rejected() -> None:
    key = "a" * 254 + "/x"
    with pytest.raises(
        selectors.SelectorError, match="prefix part must be no more than 253 characters"
    ):
        selectors.parse_label_selector(key)


def test_nul_reads_as_end_of_input_where_a_token_starts_as_in_go() -> None:
    # Go's lexer reads a NUL byte as 0, its end-of-input mark: at the start of a
    # token it ends the input, right after a token it is swallowed.
    assert selectors.parse_label_selector("\0x").empty
    assert str(selectors.parse_label_selector("x\0,y")) == "x,y"
    with pytest.raises(
        selectors.SelectorError, match=r"^found '', expected: identifier after ','$"
    ):
        selectors.parse_label_selector("x, \0y")


# --- label selectors: matching --------------------------------------------------

MATCHES = [
    ("", {"x": "y"}, True),
    ("x=y", {"x": "y"}, True),
    ("x=y,z=w", {"x": "y", "z": "w"}, True),
    ("x!=y,z!=w", {"x": "z", "z": "a"}, True),
    ("notin=in", {"notin": "in"}, True),
    ("x", {"x": "z"}, True),
    ("!x", {"y": "z"}, True),
    ("x>1", {"x": "2"}, True),
    ("x<1", {"x": "0"}, True),
    ("x=z", {}, False),
    ("x=y", {"x": "z"}, False),
    ("x=y,z=w", {"x": "w", "z": "w"}, False),
    ("x!=y,z!=w", {"x": "z", "z": "w"}, False),
    ("x", {"y": "z"}, False),
    ("!x", {"x": "z"}, False),
    ("x>1", {"x": "0"}, False),
    ("x<1", {"x": "2"}, False),
    ("foo=bar,baz=blah", {"foo": "bar", "baz": "blah"}, True),
    ("foo=bar,foobar=bar,baz=blah", {"foo": "bar", "baz": "blah"}, False),
    # TestRequirementSelectorMatching
    ("x in (foo),y notin (alpha)", {"x": "foo", "y": "baz"}, True),
    ("x in (foo),y in (alpha)", {"x": "foo", "y": "baz"}, False),
    ("x notin (),y", {"y": ""}, True),
    ("!x,y", {"y": ""}, True),
    ("x notin (),!y", {"y": ""}, False),
    ("x in ()", {"y": "baz"}, False),
    ("x in ()", {"x": ""}, True),
    ("z>1", {"z": "2"}, True),
    ("z>1", {"z": "v2"}, False),
    ("z>1", {"z": "+2"}, True),
    ("z<1", {"z": " 0"}, False),
    ("z<1", {"z": "1_0"}, False),
    ("z<1", {"z": "-99999999999999999999"}, False),
    ("x!=a", {}, True),
    ("x notin (a)", {"x": "b"}, True),
]


@pytest.mark.parametrize(("text", "labels_", "want"), MATCHES)
def test_label_selector_matches(text: str, labels_: dict[str, str], want: bool) -> None:
    assert selectors.parse_label_selector(text).matches(labels_) is want


def test_none_labels_are_no_labels() -> None:
    assert selectors.parse_label_selector("!x").matches(None)
    assert not selectors.parse_label_selector("x").matches(None)


def test_empty_and_everything() -> None:
    assert selectors.parse_label_selector("").empty
    assert not selectors.parse_label_selector("x").empty
    assert selectors.parse_label_selector("").matches({"x": "y"})


def test_requires_exact_match() -> None:
    sel = selectors.parse_label_selector("key in (value),key2 in (a,b),key3=c,key4!=d")
    assert sel.requires_exact_match("key") == "value"
    assert sel.requires_exact_match("key2") is None
    assert sel.requires_exact_match("key3") == "c"
    assert sel.requires_exact_match("key4") is None
    assert sel.requires_exact_match("other") is None


def test_add_keeps_requirements_sorted() -> None:
    sel = selectors.selector_from_set({"b": "1"})
    assert str(sel.add(selectors.new_requirement("a", labels.IN, ["x"]))) == "a in (x),b=1"


# --- requirements and structured selectors ------------------------------------

REQUIREMENT_ERRORS: list[tuple[str, str, list[str], str]] = [
    (
        "x1",
        labels.IN,
        [],
        "values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty",
    ),
    (
        "x5",
        labels.EQUALS,
        ["bar", "foo"],
        'values: Invalid value: []string{"bar", "foo"}: exact-match compatibility requires one single value',
    ),
    (
        "x8",
        labels.EXISTS,
        ["foo"],
        'values: Invalid value: []string{"foo"}: values set must be empty for exists and does not exist',
    ),
    (
        "x13",
        labels.GREATER_THAN,
        [],
        "values: Invalid value: []string{}: for 'Gt', 'Lt' operators, exactly one value is required",
    ),
    (
        "x14",
        labels.GREATER_THAN,
        ["bar"],
        "values[0]: Invalid value: \"bar\": for 'Gt', 'Lt' operators, the value must be an integer",
    ),
    ("x17", labels.EQUALS, ["a b"], f'values[0][x17]: Invalid value: "a b": {VALUE_RULE}'),
    (
        "x18",
        "unsupportedOp",
        [],
        'operator: Unsupported value: "unsupportedOp": supported values: "in", "notin", "=", "==", '
        '"!=", "gt", "lt", "exists", "!"',
    ),
    ("", labels.EXISTS, [], 'key: Invalid value: "": name part must be non-empty; ' + NAME_RULE),
]


@pytest.mark.parametrize(("key", "op", "values", "message"), REQUIREMENT_ERRORS)
def test_new_requirement_errors(key: str, op: str, values: list[str], message: str) -> None:
    with pytest.raises(selectors.SelectorError) as caught:
        selectors.new_requirement(key, op, values)
    assert str(caught.value) == message


def test_new_requirement_long_key_and_values() -> None:
    with pytest.raises(
        selectors.SelectorError,
        match=r"^key: Invalid value: \"a{254}\": name part must be no more than 63",
    ):
        selectors.new_requirement("a" * 254, labels.EXISTS)
    with pytest.raises(
        selectors.SelectorError, match=r"^values\[0\]\[x16\]: .*must be no more than 63 characters"
    ):
        selectors.new_requirement("x16", labels.EQUALS, ["a" * 254])


def test_label_selector_dict_nil_matches_nothing_and_empty_everything() -> None:
    nothing = selectors.from_label_selector_dict(None)
    assert not nothing.matches({}) and not nothing.matches({"a": "b"})
    assert not nothing.empty and nothing.nothing and str(nothing) == ""
    empties: list[dict[str, Any]] = [
        {},
        {"matchLabels": {}},
        {"matchLabels": None, "matchExpressions": []},
    ]
    for empty in empties:
        sel = selectors.from_label_selector_dict(empty)
        assert sel.empty and sel.matches({"a": "b"}) and sel.matches(None)


def test_label_selector_dict_combines_labels_and_expressions() -> None:
    sel = selectors.from_label_selector_dict(
        {
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["fe", "be"]},
                {"key": "env", "operator": "NotIn", "values": ["prod"]},
                {"key": "team", "operator": "Exists"},
                {"key": "legacy", "operator": "DoesNotExist"},
            ],
        }
    )
    assert str(sel) == "app=web,env notin (prod),!legacy,team,tier in (be,fe)"
    assert sel.matches({"app": "web", "tier": "fe", "team": "a"})
    assert not sel.matches({"app": "web", "tier": "fe", "team": "a", "legacy": ""})
    assert not sel.matches({"app": "web", "tier": "fe", "team": "a", "env": "prod"})
    assert not sel.matches({"app": "web", "tier": "qa", "team": "a"})


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        (
            {"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]},
            '"Gt" is not a valid label selector operator',
        ),
        (
            {"matchExpressions": [{"key": "a", "operator": "In", "values": []}]},
            "values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty",
        ),
        (
            {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
            'values: Invalid value: []string{"x"}: values set must be empty for exists and does not exist',
        ),
        (
            {"matchLabels": {"a/b/c": "x"}},
            'key: Invalid value: "a/b/c": a qualified name must consist',
        ),
    ],
)
def test_label_selector_dict_errors(selector: dict[str, Any], message: str) -> None:
    with pytest.raises(selectors.SelectorError) as caught:
        selectors.from_label_selector_dict(selector)
    assert str(caught.value).startswith(message)


def test_selector_from_set() -> None:
    labelset = {"foo": "bar", "baz": "blah"}
    assert selectors.selector_from_set({}).matches(labelset)
    assert selectors.selector_from_set(None).empty
    assert selectors.selector_from_set({"foo": "bar"}).matches(labelset)
    assert selectors.selector_from_set({"foo": "bar", "baz": "blah"}).matches(labelset)
    assert not selectors.selector_from_set({"foo": "=blah"}).matches(labelset)
    assert str(selectors.selector_from_set({"app": "foo", "a": "b"})) == "a=b,app=foo"
