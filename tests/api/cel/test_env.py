"""The CEL environment: compile errors in cel-go's words, evaluation, caching, cost."""

from __future__ import annotations

import datetime

import pytest

from pilothouse.api import cel

ENV = cel.Environment({"self": cel.DYN, "oldSelf": cel.DYN})


def run(expression: str, **activation: object) -> object:
    return ENV.compile(expression).evaluate(activation)


@pytest.mark.parametrize(
    ("expression", "activation", "expected"),
    [
        ("self.replicas <= self.max", {"self": {"replicas": 3, "max": 5}}, True),
        ("self.a == oldSelf.a", {"self": {"a": 1}, "oldSelf": {"a": 2}}, False),
        ("has(self.foo)", {"self": {"bar": 1}}, False),
        (
            "self.items.all(x, x > 0) && self.items.exists_one(x, x == 2)",
            {"self": {"items": [1, 2, 3]}},
            True,
        ),
        ("self.items.map(x, x > 1, x * 10)", {"self": {"items": [1, 2, 3]}}, [20, 30]),
        ("self.items.filter(x, x > 1)", {"self": {"items": [1, 2, 3]}}, [2, 3]),
        ("size(self.s)", {"self": {"s": "héllo"}}, 5),  # code points, as cel-go
        ("self.s.size()", {"self": {"s": "héllo"}}, 5),
        ("size(self.l)", {"self": {"l": [1, 2]}}, 2),
        ("1 < 1.5", {}, True),  # CrossTypeNumericComparisons
        ("self.?z.orValue(4)", {"self": {}}, 4),
        ("self.?z.hasValue()", {"self": {"z": 1}}, True),
        ("self.l[?5].orValue(0)", {"self": {"l": [1]}}, 0),
        ("optional.of(1).value()", {}, 1),
        ("'k' in self.m", {"self": {"m": {"k": "v"}}}, True),
        ("false && self.missing", {"self": {}}, False),  # errors absorbed as in CEL
        ("timestamp('2023-01-01T00:00:00Z') < timestamp('2024-01-01T00:00:00Z')", {}, True),
        ("duration('1h') > duration('30m')", {}, True),
        ("string(self.x) + 'a'", {"self": {"x": 12}}, "12a"),
        ("-9223372036854775808 < 0", {}, True),
        ("[1, 2] + [3]", {}, [1, 2, 3]),
        ("b'\\x00abc' == bytes('\\u0000abc')", {}, True),
        ('"""multi\nline""".contains("\\n")', {}, True),
        ("r'\\d'", {}, "\\d"),
    ],
)
def test_evaluates_as_cel_go(expression: str, activation: dict, expected: object) -> None:
    assert run(expression, **activation) == expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("self.nope", "no such key: nope"),
        ("1 / (self.z - self.z)", "division by zero"),
        ("9223372036854775807 + self.one", "integer overflow"),
        ("dyn(self.s) + 1", "no such overload"),
        ("quantity(self.s)", "quantities must match the regular expression"),
        ("[].min()", "min called on empty list"),
    ],
)
def test_runtime_errors_are_worded_as_cel_go(expression: str, message: str) -> None:
    with pytest.raises(cel.EvaluationError) as err:
        run(expression, self={"s": "x1", "z": 1, "one": 1})
    assert err.value.message.startswith(message)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        (
            "foo + 1",
            "ERROR: <input>:1:1: undeclared reference to 'foo' (in container '')\n | foo + 1\n | ^",
        ),
        (
            "self.a + 'x' + 1",
            "ERROR: <input>:1:14: found no matching overload for '_+_' applied to '(string, int)'",
        ),
        (
            "1 + 'x'",
            "ERROR: <input>:1:3: found no matching overload for '_+_' applied to '(int, string)'",
        ),
        ("[1, 'a']", "ERROR: <input>:1:5: expected type 'int' but found 'string'"),
        ("self.bogus()", "ERROR: <input>:1:11: undeclared reference to 'bogus' (in container '')"),
        (
            "self.a +",
            "ERROR: <input>:1:9: Syntax error: mismatched input '<EOF>' expecting expression",
        ),
        ("duration('1x')", 'invalid duration argument: time: invalid duration "1x"'),
        ("'a'.matches('[')", "invalid matches argument"),
        ("'abc'.size(1)", "found no matching overload for 'size' applied to 'string.(int)'"),
    ],
)
def test_compile_errors_are_worded_as_cel_go(expression: str, message: str) -> None:
    with pytest.raises(cel.CompileError) as err:
        ENV.compile(expression)
    assert message in err.value.message


def test_schema_types_catch_undefined_fields_and_type_errors() -> None:
    schema = {
        "type": "object",
        "properties": {
            "replicas": {"type": "integer"},
            "name": {"type": "string", "maxLength": 10},
            "foo-bar": {"type": "string"},
            "when": {"type": "string", "format": "date-time"},
        },
    }
    env = cel.Environment({"self": cel.from_schema(schema)})
    with pytest.raises(cel.CompileError) as err:
        env.compile("self.replica > 1")
    assert "undefined field 'replica'" in err.value.message
    with pytest.raises(cel.CompileError) as err:
        env.compile("self.replicas + self.name")
    assert "'(int, string)'" in err.value.message
    # Escaped property names reach the real property.
    program = env.compile("self.foo__dash__bar == 'x' && has(self.foo__dash__bar)")
    assert program.evaluate({"self": {"foo-bar": "x"}}) is True
    # date-time strings are timestamps once converted along the schema.
    program = env.compile("self.when < timestamp('2030-01-01T00:00:00Z')")
    value = cel.values.convert({"when": "2024-05-01T10:00:00Z"}, schema)
    assert isinstance(value["when"], datetime.datetime)
    assert program.evaluate({"self": value}) is True


def test_resource_root_exposes_only_name_and_generate_name_of_metadata() -> None:
    root = cel.from_schema(
        {"type": "object", "properties": {"spec": {"type": "object"}}}, resource_root=True
    )
    env = cel.Environment({"self": root})
    env.compile("self.metadata.name.startsWith('a') && self.kind == 'X'")
    with pytest.raises(cel.CompileError) as err:
        env.compile("self.metadata.labels")
    assert "undefined field 'labels'" in err.value.message


def test_result_type_and_variables_in_use() -> None:
    program = ENV.compile("self.a == oldSelf.a", result=cel.BOOL)
    assert program.variables == {"self", "oldSelf"}
    assert ENV.compile("self.a > 1").variables == {"self"}
    typed = cel.Environment({"self": cel.from_schema({"type": "integer"})})
    with pytest.raises(cel.CompileError) as err:
        typed.compile("self + 1", result=cel.BOOL)
    assert err.value.message == "must evaluate to bool"


def test_programs_are_cached_per_expression() -> None:
    env = cel.Environment({"self": cel.DYN})
    assert env.compile("self > 1") is env.compile("self > 1")


def test_cost_estimate_refuses_unbounded_comprehensions_and_accepts_bounded_ones() -> None:
    unbounded = cel.Environment(
        {"self": cel.from_schema({"type": "array", "items": {"type": "string"}})}
    )
    with pytest.raises(cel.CompileError) as err:
        unbounded.compile("self.all(x, x.contains('a'))", cost_limit=1_000_000)
    assert err.value.message.startswith("estimated rule cost exceeds budget by factor of")
    bounded = cel.Environment(
        {
            "self": cel.from_schema(
                {"type": "array", "maxItems": 10, "items": {"type": "string", "maxLength": 64}}
            )
        }
    )
    assert (
        bounded.compile("self.all(x, x.contains('a'))", cost_limit=1_000_000).estimated_cost < 1000
    )


def test_one_activation_serves_several_programs() -> None:
    env = cel.Environment({"object": cel.DYN, "variables": cel.DYN})
    obj = {"spec": {"images": ["web:1.0", "db:latest"], "name": "Web"}}
    activation = cel.Activation({"object": obj})
    pinned = env.compile("object.spec.images.all(i, !i.endsWith(':latest'))")
    lowered = env.compile("object.spec.name.lowerAscii() == 'web'")
    found = env.compile("object.spec.images.filter(i, i.matches('^db')).size()")
    assert pinned.evaluate(activation) is False
    assert lowered.evaluate(activation) is True, "a library function added on first use"
    assert found.evaluate(activation) == 1
    reads = env.compile("variables.count + 1")
    activation.set("variables", {"count": 2})
    assert reads.evaluate(activation) == 3
    missing = env.compile("object.spec.nothing == 1")
    with pytest.raises(cel.EvaluationError) as exc:
        missing.evaluate(activation)
    assert exc.value.message == "no such key: nothing"
