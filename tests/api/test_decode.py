"""Request-body decoding: upstream's JSON and YAML semantics, duplicates and error wording."""

from __future__ import annotations

import json

import pytest

from pilothouse.api import decode, json_syntax

# --- JSON ---------------------------------------------------------------------


@pytest.mark.parametrize("find_duplicates", [False, True])
def test_json_decodes_objects(find_duplicates: bool) -> None:
    value, dups = decode.decode_json(
        b'{"a": [1, 2.5, "x", true, null]}', find_duplicates=find_duplicates
    )
    assert value == {"a": [1, 2.5, "x", True, None]}
    assert dups == []


def test_json_duplicates_are_reported_with_nested_paths_and_last_wins() -> None:
    body = (
        b'{"metadata": {"name": "a", "labels": {"x": "1", "x": "2"}, "name": "b"},'
        b' "spec": {"containers": [{"name": "c"}, {"image": "i", "image": "j"}]},'
        b' "kind": "Pod", "kind": "Pod"}'
    )
    value, dups = decode.decode_json(body, find_duplicates=True)
    assert dups == ["metadata.labels.x", "metadata.name", "spec.containers[1].image", "kind"]
    assert value["metadata"] == {"name": "b", "labels": {"x": "2"}}
    assert value["spec"]["containers"][1] == {"image": "j"}
    # The marker type never leaks out: everything is a plain dict.
    assert type(value["metadata"]) is dict and type(value["spec"]["containers"][1]) is dict


@pytest.mark.parametrize(
    "body",
    [
        # Compact, as orjson and Go's encoding/json write it: the fast path's shape.
        b'{"a":1,"b":{"c":2,"c":3}}',
        b'{"a":1,"a":1}',
        b'[{"x":"1"},{"y":{"z":[{"k":true,"k":true}]}}]',
        b'{"kind":"Pod","metadata":{"name":"p"},"kind":"Pod"}\n',
    ],
)
def test_json_duplicates_in_compact_bodies_are_found(body: bytes) -> None:
    value, dups = decode.decode_json(body, find_duplicates=True)
    assert len(dups) == 1
    assert value == json.loads(body)


@pytest.mark.parametrize(
    "body",
    [
        b'{"a":1,"b":{"c":[1,2.5,"x",null,false]},"d":"\xc3\xa9\\"q\\\\"}',
        b'{"a":1,"b":{"c":[1,2.5,"x",null,false]},"d":"\xc3\xa9\\"q\\\\"}\n',
        b'{"a": 1, "b": {"c": [1, 2.5, "x", null, false]}, "d": "\\u00e9\\"q\\\\"}',
        b'{"big":123456789012345678901234567890,"f":1E5,"h":"\\u003c"}',
    ],
)
def test_json_bodies_without_duplicates_decode_the_same_on_every_path(body: bytes) -> None:
    # Canonical bodies take orjson's path, the others the duplicate-finding parser;
    # both must give the stdlib's value and no duplicates.
    value, dups = decode.decode_json(body, find_duplicates=True)
    assert dups == []
    assert value == json.loads(body)
    assert list(value) == list(json.loads(body))


def test_json_without_duplicate_tracking_keeps_last_and_reports_nothing() -> None:
    value, dups = decode.decode_json(b'{"a": 1, "a": 2}', find_duplicates=False)
    assert value == {"a": 2}
    assert dups == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            b'{"apiVersion": "v1",}',
            "invalid character '}' looking for beginning of object key string",
        ),
        (b'{"a": }', "invalid character '}' looking for beginning of value"),
        (b'{"a" 1}', "invalid character '1' after object key"),
        (b'{"a": 1 "b": 2}', "invalid character '\"' after object key:value pair"),
        (b"[1 2]", "invalid character '2' after array element"),
        (b'{"a": tru}', "invalid character '}' in literal true (expecting 'e')"),
        (b'{"a": 1}}', "invalid character '}' after top-level value"),
        (b'{"a": "\x01"}', "invalid character '\\x01' in string literal"),
        (b'{"a": "\\q"}', "invalid character 'q' in string escape code"),
        (b'{"a": 1.}', "invalid character '}' after decimal point in numeric literal"),
        (b'{"a": NaN}', "invalid character 'N' looking for beginning of value"),
        (b'{"a": 1', "unexpected end of JSON input"),
        (b"", "unexpected end of JSON input"),
    ],
)
@pytest.mark.parametrize("find_duplicates", [False, True])
def test_json_errors_read_like_upstream(body: bytes, message: str, find_duplicates: bool) -> None:
    with pytest.raises(decode.DecodeError) as err:
        decode.decode_json(body, find_duplicates=find_duplicates)
    assert str(err.value) == "couldn't get version/kind; json parse error: " + message
    assert isinstance(err.value, ValueError)


def test_json_accepts_what_go_accepts_and_orjson_does_not() -> None:
    # Invalid UTF-8 and lone surrogates become U+FFFD, as in Go.
    value, _ = decode.decode_json(b'{"a": "\xff", "b": "\\ud800x"}', find_duplicates=False)
    assert value == {"a": "\ufffd", "b": "\ufffdx"}


def test_json_nesting_beyond_python_limits_is_an_error_not_a_crash() -> None:
    with pytest.raises(decode.DecodeError, match="exceeded max depth"):
        decode.decode_json(b"[" * 20000, find_duplicates=True)


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ('{"a": [1, -2.5e+3, true, false, null, "\\u00e9"]}', True),
        ("01", False),
        ("-", False),
        ("[", False),
    ],
)
def test_go_syntax_checker_agrees_with_python_on_validity(text: str, ok: bool) -> None:
    assert (json_syntax.syntax_error(text.encode()) is None) == ok
    try:
        json.loads(text)
        python_ok = True
    except ValueError:
        python_ok = False
    assert python_ok == ok


# --- YAML ---------------------------------------------------------------------


def test_yaml_scalars_follow_go_yaml_v2() -> None:
    body = b"""\
bools: [y, Y, yes, On, n, NO, off, true, False]
strings: [1:20, 2024-01-02, 12ab, "yes", '08', =, x]
numbers: [0755, 0x1F, 0o17, 0b101, 1_000, 1e3, 1.0, .5, -.5, 08, +12]
nulls: [~, null, Null, NULL]
empty:
"""
    value, _ = decode.decode_yaml(body, find_duplicates=False)
    assert value["bools"] == [True, True, True, True, False, False, False, True, False]
    assert value["strings"] == ["1:20", "2024-01-02", "12ab", "yes", "08", "=", "x"]
    assert value["numbers"] == [493, 31, 15, 5, 1000, 1000, 1, 0.5, -0.5, 8, 12]
    assert all(type(n) is int for n in value["numbers"][:7])
    assert value["nulls"] == [None, None, None, None]
    assert value["empty"] is None


def test_yaml_non_string_keys_become_strings() -> None:
    body = b"8080: a\nyes: b\n1.5: c\n0x10: d\n1e6: e\nno: f\n"
    value, _ = decode.decode_yaml(body, find_duplicates=False)
    assert value == {"8080": "a", "true": "b", "1.5": "c", "16": "d", "1e+06": "e", "false": "f"}


def test_yaml_duplicates_are_reported_with_nested_paths() -> None:
    body = b"""\
metadata:
  name: a
  name: b
spec:
  containers:
  - name: c
    image: busybox
    image: nginx
"""
    value, dups = decode.decode_yaml(body, find_duplicates=True)
    assert dups == ["metadata.name", "spec.containers[0].image"]
    assert value["metadata"]["name"] == "b"
    assert value["spec"]["containers"][0]["image"] == "nginx"


def test_yaml_merge_keys_are_not_duplicates() -> None:
    body = b"base: &b {a: 1, b: 2}\nderived:\n  <<: *b\n  b: 3\n"
    value, dups = decode.decode_yaml(body, find_duplicates=True)
    assert value["derived"] == {"a": 1, "b": 3}
    assert dups == []


def test_yaml_aliases_are_independent_copies() -> None:
    value, _ = decode.decode_yaml(b"a: &x {k: [1]}\nb: *x\n", find_duplicates=False)
    value["a"]["k"].append(2)
    assert value["b"] == {"k": [1]}


def test_yaml_alias_bombs_are_refused() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    with pytest.raises(decode.DecodeError, match="excessive aliasing"):
        decode.decode_yaml("\n".join(lines).encode(), find_duplicates=False)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            b"a: b\nc: d\n  e: f: g\n",
            "yaml: line 3: mapping values are not allowed in this context",
        ),
        (b"a:\n  b: c\n d: e\n", "yaml: line 2: did not find expected key"),
        (b"a: [1, 2\n", "yaml: line 1: did not find expected ',' or ']'"),
        (b"a: *nope\n", "yaml: unknown anchor 'nope' referenced"),
        (b"a: .nan\n", "json: unsupported value: NaN"),
        (b"a: b\n---\nc: d\n", "yaml: expected a single document in the stream"),
    ],
)
def test_yaml_errors_read_like_upstream(body: bytes, message: str) -> None:
    with pytest.raises(decode.DecodeError) as err:
        decode.decode_yaml(body, find_duplicates=True)
    assert str(err.value) == "error converting YAML to JSON: " + message


def test_yaml_trailing_empty_documents_are_fine() -> None:
    value, _ = decode.decode_yaml(b"---\na: 1\n---\n", find_duplicates=False)
    assert value == {"a": 1}


def test_yaml_that_is_json_takes_the_json_path_with_yaml_numbers() -> None:
    value, dups = decode.decode_yaml(b'{"a": 1.0, "b": [2.5, 3e2], "a": 2}', find_duplicates=True)
    assert value == {"a": 2, "b": [2.5, 300]}
    assert dups == ["a"]
    # Flow YAML that is not JSON still parses as YAML.
    assert decode.decode_yaml(b"{a: yes}", find_duplicates=False) == ({"a": True}, [])


def test_yaml_unknown_tags_are_ignored_like_go_yaml() -> None:
    value, _ = decode.decode_yaml(b"a: !Ref thing\nb: !!binary aGk=\n", find_duplicates=False)
    assert value == {"a": "thing", "b": "hi"}
