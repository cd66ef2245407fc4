"""Kubernetes' CEL libraries, with the examples of upstream's documentation."""

from __future__ import annotations

import pytest

from pilothouse.api import cel

ENV = cel.Environment({"self": cel.DYN})


def run(expression: str) -> object:
    return ENV.compile(expression).evaluate({"self": {}})


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        # lists
        ("[1, 2, 3].isSorted()", True),
        ("['b', 'a'].isSorted()", False),
        ("[1, 2, 3].sum()", 6),
        ("[1.5, 2.5].sum()", 4.0),
        ("[3, 1, 2].min()", 1),
        ("[3, 1, 2].max()", 3),
        ("[1, 2, 2, 3].indexOf(2)", 1),
        ("[1, 2, 2, 3].lastIndexOf(2)", 2),
        ("[1, 2].indexOf(7)", -1),
        # regex
        ("'abc 123'.find('[0-9]+')", "123"),
        ("'123 abc 456'.findAll('[0-9]+')", ["123", "456"]),
        ("'123 abc 456'.findAll('[0-9]+', 1)", ["123"]),
        # strings extension
        ("'hello'.charAt(1)", "e"),
        ("'hello'.charAt(5)", ""),
        ("'hello mellow'.indexOf('ello', 2)", 7),
        ("'hello mellow'.lastIndexOf('ello')", 7),
        ("'TacoCat'.lowerAscii()", "tacocat"),
        ("'hello hello'.replace('he', 'we', 1)", "wello hello"),
        ("'a,b,c'.split(',')", ["a", "b", "c"]),
        ("'tacocat'.substring(4)", "cat"),
        ("'tacocat'.substring(0, 4)", "taco"),
        ("'  \\ttrim\\n '.trim()", "trim"),
        ("['a', 'b'].join('-')", "a-b"),
        (
            "'%s has %d items, %.2f full'.format(['box', dyn(3), dyn(0.5)])",
            "box has 3 items, 0.50 full",
        ),
        ("strings.quote('a\"b')", '"a\\"b"'),
        # sets
        ("sets.contains([1, 2, 3], [2, 3])", True),
        ("sets.equivalent([1, 2], [2, 1, 1])", True),
        ("sets.intersects([1], [2])", False),
        # quantity
        ("quantity('200M').compareTo(quantity('0.2G'))", 0),
        ("quantity('50M').compareTo(quantity('50Mi'))", -1),
        ("quantity('150Mi').isGreaterThan(quantity('100Mi'))", True),
        ("quantity('50M').isLessThan(quantity('100M'))", True),
        ("quantity('50k').asInteger() == 50000", True),
        ("quantity('50k').isInteger()", True),
        ("quantity('9999999999999999999999999999999999999G').isInteger()", False),
        ("quantity('50k').sub(20000).asApproximateFloat() == 30000.0", True),
        ("quantity('50k').add(quantity('20k')) == quantity('70k')", True),
        ("quantity('50k').add(20).sub(quantity('100k')).sub(-50000) == quantity('20')", True),
        ("quantity('-1').sign()", -1),
        ("isQuantity('1.3Gi')", True),
        ("isQuantity('200K')", False),
        ("isQuantity('1,3G')", False),
        # urls
        ("url('https://example.com:80/path?query=val#fragment').getScheme()", "https"),
        ("url('https://[::1]:80/').getHost()", "[::1]:80"),
        ("url('https://[::1]:80/').getHostname()", "::1"),
        ("url('https://example.com:80/').getPort()", "80"),
        ("url('https://example.com/with space/').getEscapedPath()", "/with%20space/"),
        (
            "url('https://example.com/path?k1=a&k2=b&k2=c').getQuery()",
            {"k1": ["a"], "k2": ["b", "c"]},
        ),
        ("isURL('https://example.com')", True),
        ("isURL('example.com')", False),
        ("isURL('/absolute-path')", True),
        # ip and cidr
        ("ip('192.168.0.1').family()", 4),
        ("ip('::1').family()", 6),
        ("ip('127.0.0.1').isLoopback()", True),
        ("ip('0.0.0.0').isUnspecified()", True),
        ("ip('224.0.0.1').isLinkLocalMulticast()", True),
        ("ip('169.254.169.254').isLinkLocalUnicast()", True),
        ("ip('192.168.0.1').isGlobalUnicast()", True),
        ("isIP('::ffff:1.2.3.4')", False),  # IPv4-mapped IPv6 refused upstream
        ("ip.isCanonical('2001:db8::abcd')", True),
        ("ip.isCanonical('2001:DB8::ABCD')", False),
        ("string(ip('::1'))", "::1"),
        ("cidr('192.168.0.0/24').containsIP(ip('192.168.0.1'))", True),
        ("cidr('192.168.0.0/24').containsIP('192.168.1.1')", False),
        ("cidr('192.168.0.0/16').containsCIDR('192.168.10.0/24')", True),
        ("cidr('192.168.0.1/24').masked() == cidr('192.168.0.0/24')", True),
        ("string(cidr('192.168.0.1/24').ip())", "192.168.0.1"),
        ("cidr('::1/128').prefixLength()", 128),
        ("isCIDR('10.0.0.0/33')", False),
        # format
        ("format.dns1123Label().validate('my-name').hasValue()", False),
        ("format.dns1123Label().validate('My_Name').hasValue()", True),
        (
            "format.named('uuid').value().validate('123e4567-e89b-12d3-a456-426614174000').hasValue()",
            False,
        ),
        ("format.named('nope').hasValue()", False),
        ("format.datetime().validate('2021-01-01T00:00:00Z').hasValue()", False),
        ("format.byte().validate('!!').value()", ["invalid base64"]),
    ],
)
def test_library_functions(expression: str, expected: object) -> None:
    assert run(expression) == expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("quantity('200K')", "unable to parse quantity's suffix"),
        (
            "quantity('9999999999999999999999999999999999999G').asInteger()",
            "cannot convert value to integer",
        ),
        ("ip('::ffff:1.2.3.4')", "IPv4-mapped IPv6 address is not allowed"),
        ("ip('fe80::1%eth0')", "IP address with zone value is not allowed"),
        (
            "url('example.com')",
            'URL parse error during conversion from string: parse "example.com": invalid URI for request',
        ),
        ("'abc'.charAt(9)", "index out of range: 9"),
        ("'abc'.substring(2, 1)", "invalid substring range. start: 2, end: 1"),
    ],
)
def test_library_errors(expression: str, message: str) -> None:
    with pytest.raises(cel.EvaluationError) as err:
        run(expression)
    assert err.value.message.startswith(message)


def test_opaque_types_are_checked_statically() -> None:
    with pytest.raises(cel.CompileError) as err:
        ENV.compile("quantity('1') + 1")
    assert (
        "found no matching overload for '_+_' applied to '(kubernetes.Quantity, int)'"
        in err.value.message
    )
    with pytest.raises(cel.CompileError) as err:
        ENV.compile("ip('1.2.3.4').isGreaterThan(quantity('1'))")
    assert "applied to 'net.IP.(kubernetes.Quantity)'" in err.value.message
