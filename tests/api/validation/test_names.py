"""Name and format rules (apimachinery's util/validation), with upstream's wording."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pilothouse.api.validation import names

SUBDOMAIN_ERROR = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)


@pytest.mark.parametrize("value", ["a", "ab", "a-b", "0", "a.b", "a.b-c.d", "a" * 253])
def test_dns1123_subdomain_valid(value: str) -> None:
    assert names.is_dns1123_subdomain(value) == []


@pytest.mark.parametrize("value", ["", "A", "a_b", "-a", "a-", "a..b", ".a", "a.", "a@b"])
def test_dns1123_subdomain_invalid(value: str) -> None:
    assert names.is_dns1123_subdomain(value) == [SUBDOMAIN_ERROR]


def test_dns1123_subdomain_too_long() -> None:
    assert names.is_dns1123_subdomain("a" * 254) == ["must be no more than 253 characters"]


def test_dns1123_label() -> None:
    assert names.is_dns1123_label("my-name") == []
    assert names.is_dns1123_label("a.b") == ["must not contain dots"]
    assert names.is_dns1123_label("a" * 64) == ["must be no more than 63 characters"]
    assert names.is_dns1123_label("My") == [
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
        "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
        "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
    ]


def test_dns1035_label() -> None:
    assert names.is_dns1035_label("abc-123") == []
    assert names.is_dns1035_label("1abc") == [
        "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with "
        "an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
        "'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
    ]


@pytest.mark.parametrize(
    "value",
    [
        "simple",
        "now-with-dashes",
        "1-starts-with-num",
        "1234",
        "simple/simple",
        "now-with-dashes/simple",
        "example.com/Upper_Case.9",
        "a" * 63,
    ],
)
def test_qualified_name_valid(value: str) -> None:
    assert names.is_qualified_name(value) == []


@pytest.mark.parametrize(
    ("value", "first_error"),
    [
        ("", "name part must be non-empty"),
        ("/simple", "prefix part must be non-empty"),
        ("a/b/c", "a qualified name must consist of"),
        ("Example.com/x", "prefix part a lowercase RFC 1123 subdomain"),
        ("a" * 64, "name part must be no more than 63 characters"),
        ("-dash", "name part must consist of alphanumeric characters"),
    ],
)
def test_qualified_name_invalid(value: str, first_error: str) -> None:
    errors = names.is_qualified_name(value)
    assert errors and errors[0].startswith(first_error)


def test_label_values() -> None:
    assert names.is_valid_label_value("") == []
    assert names.is_valid_label_value("a.b_c-d") == []
    assert names.is_valid_label_value("a b")[0].startswith("a valid label must be an empty string")
    assert names.is_valid_label_value("a" * 64)[0] == "must be no more than 63 characters"


@pytest.mark.parametrize(
    ("port", "errors"),
    [
        ("http", []),
        ("h2c", []),
        ("a" * 16, ["must be no more than 15 characters"]),
        (
            "HTTP",
            [
                "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
                "must contain at least one letter (a-z)",
            ],
        ),
        ("123", ["must contain at least one letter (a-z)"]),
        ("a--b", ["must not contain consecutive hyphens"]),
        ("-ab", ["must not begin or end with a hyphen"]),
    ],
)
def test_port_names(port: str, errors: list[str]) -> None:
    assert names.is_valid_port_name(port) == errors


def test_env_names_and_config_keys() -> None:
    assert names.is_relaxed_env_var_name("1-weird name.ok") == []
    assert names.is_relaxed_env_var_name("A=B") == [
        "a valid environment variable name must consist only of printable ASCII characters other than '='"
    ]
    assert names.is_relaxed_env_var_name("") == ["environment variable name must be non-empty"]
    assert names.is_env_var_name("1abc") != []
    assert names.is_config_map_key("key.name_1-x") == []
    assert names.is_config_map_key("..a") == ["must not start with '..'"]
    assert names.is_config_map_key("a/b")[0].startswith(
        "a valid config key must consist of alphanumeric"
    )


def test_ips_and_cidrs() -> None:
    assert str(names.parse_ip("010.001.1.1")) == "10.1.1.1"
    assert names.parse_ip("1.2.3.256") is None
    assert names.parse_ip("fe80::1%eth0") is None
    assert names.parse_ip("::ffff:1.2.3.4") is not None
    assert str(names.parse_cidr("10.0.0.1/8")) == "10.0.0.0/8"
    assert names.parse_cidr("10.0.0.0/33") is None
    assert names.parse_cidr("10.0.0.0") is None
    assert names.is_dual_stack(["10.0.0.1", "fd00::1"])
    assert not names.is_dual_stack(["10.0.0.1", "10.0.0.2"])


def test_name_funcs_and_generate_name_prefixes() -> None:
    assert names.name_is_dns_subdomain("web-", True) == []
    assert names.name_is_dns_subdomain("web-", False) != []
    assert names.name_is_dns_label("a.b-", True) == ["must not contain dots"]
    assert names.name_is_path_segment("..", False) == ["may not be '..'"]
    assert names.name_is_path_segment("a/b%c", False) == [
        "may not contain '/'",
        "may not contain '%'",
    ]
    assert names.name_is_path_segment("..", True) == []


@pytest.mark.parametrize(
    "check",
    [
        names.is_dns1123_subdomain,
        names.is_dns1123_label,
        names.is_dns1035_label,
        names.is_qualified_name,
        names.is_c_identifier,
        names.is_env_var_name,
    ],
)
def test_a_trailing_newline_is_not_part_of_a_valid_name(check: Callable[[str], list[str]]) -> None:
    # Python's "$" also matches before a final newline; Go's does not.
    assert check("abc") == []
    assert check("abc\n") != []


def test_label_values_and_lengths_count_as_go_does() -> None:
    assert names.is_valid_label_value("v\n") != []
    # 63 bytes is the limit, and "é" is two of them: 32 of them are too long.
    assert names.is_qualified_name("é" * 32)[0] == "name part must be no more than 63 characters"
