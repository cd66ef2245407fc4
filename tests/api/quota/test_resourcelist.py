"""Resource list arithmetic as upstream's quota helpers do it, formats included."""

from __future__ import annotations

from pilothouse.api.quota import resourcelist as rl


def q(**values: str) -> rl.ResourceList:
    return rl.parse({k.replace("_", "."): v for k, v in values.items()})


def test_sums_take_the_format_of_the_first_nonzero_operand() -> None:
    total = rl.add(q(pods="0", requests_memory="0"), q(pods="1", requests_memory="128Mi"))
    assert rl.dump(total) == {"pods": "1", "requests.memory": "128Mi"}
    assert rl.dump(rl.add(total, q(requests_memory="128Mi"))) == {
        "pods": "1",
        "requests.memory": "256Mi",
    }
    assert rl.dump(rl.add(q(cpu="100m"), q(cpu="200m"))) == {"cpu": "300m"}
    assert rl.dump(rl.add(q(memory="1Gi"), q(memory="512Mi"))) == {"memory": "1536Mi"}


def test_subtract_never_below_zero_and_keeps_names_of_both() -> None:
    out = rl.subtract_non_negative(q(pods="1", cpu="1"), q(cpu="2", memory="1Gi"))
    assert rl.dump(out) == {"cpu": "0", "memory": "0", "pods": "1"}
    assert rl.dump(rl.subtract(q(cpu="1"), q(cpu="250m", memory="1Gi"))) == {
        "cpu": "750m",
        "memory": "-1Gi",
    }


def test_less_than_or_equal_names_what_exceeds() -> None:
    ok, exceeded = rl.less_than_or_equal(q(pods="3", cpu="1"), q(pods="2", cpu="2", memory="1"))
    assert not ok and exceeded == ["pods"]
    assert rl.less_than_or_equal(q(pods="2"), q(pods="2")) == (True, [])


def test_pretty_sorts_names() -> None:
    assert rl.pretty(q(pods="1", cpu="500m", limits_memory="1Gi")) == (
        "cpu=500m,limits.memory=1Gi,pods=1"
    )


def test_zero_equal_negative_mask() -> None:
    assert rl.is_zero(q(pods="0", cpu="0"))
    assert not rl.is_zero(q(pods="1"))
    assert rl.equals(q(cpu="1000m"), q(cpu="1"))
    assert not rl.equals(q(cpu="1"), q(cpu="1", pods="0"))
    assert rl.negative(q(cpu="-1m", pods="1")) == ["cpu"]
    assert rl.dump(rl.mask(q(cpu="1", pods="2"), ["pods", "services"])) == {"pods": "2"}
    assert rl.parse({"cpu": "not-a-quantity", "pods": "2"}) == q(pods="2")
