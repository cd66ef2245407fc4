"""What of its variables an expression reads, and values pruned to it: the same
results and errors as with the whole value."""

from __future__ import annotations

from typing import Any

import pytest

from pilothouse.api import cel
from pilothouse.api.cel import paths

ENV = cel.Environment({"object": cel.DYN, "oldObject": cel.DYN, "params": cel.DYN})
OBJ: dict[str, Any] = {
    "metadata": {"name": "web", "labels": {"app": "web"}, "managedFields": [{"big": 1}]},
    "spec": {"replicas": 3, "template": {"spec": {"containers": [{"image": "a:1"}]}}},
    "status": {"ready": 2},
}


@pytest.mark.parametrize(
    ("expression", "reads"),
    [
        ("object.spec.replicas <= 5", {"object": {"spec": {"replicas": None}}}),
        (
            "object.metadata.name == 'web' && has(object.spec.paused)",
            {"object": {"metadata": {"name": None}, "spec": {"paused": None}}},
        ),
        (
            "object.spec.template.spec.containers.all(c, !c.image.endsWith(':latest'))",
            {"object": {"spec": {"template": {"spec": {"containers": None}}}}},
        ),
        (
            "object.metadata.labels.exists(k, k == 'app')",
            {"object": {"metadata": {"labels": None}}},
        ),
        ("object == oldObject", {"object": None, "oldObject": None}),
        ("object.spec == oldObject.spec", {"object": {"spec": None}, "oldObject": {"spec": None}}),
        (
            "object.spec.replicas <= int(params.data.max) && object.spec != null",
            {"object": {"spec": None}, "params": {"data": {"max": None}}},
        ),
        ("object.?spec.?replicas.orValue(1) > 0", {"object": {"spec": {"replicas": None}}}),
        ("object['spec'].replicas > 0", {"object": None}),
    ],
)
def test_reads(expression: str, reads: dict[str, paths.Paths]) -> None:
    assert ENV.compile(expression).reads == reads


@pytest.mark.parametrize(
    "expression",
    [
        "object.spec.replicas <= 5",
        "object.metadata.name == 'web' && !has(object.spec.paused)",
        "object.spec.template.spec.containers.all(c, c.image == 'a:1')",
        "object.?spec.?nothing.orValue(1) == 1",
        "object.spec == oldObject.spec",
        "object.spec.nothing > 1",
        "size(object.metadata.labels) == 1 && object.status.ready == 2",
    ],
)
def test_pruned_values_give_the_same_answers(expression: str) -> None:
    program = ENV.compile(expression)
    whole = {"object": OBJ, "oldObject": OBJ}
    pruned = {name: paths.prune(whole[name], program.reads[name]) for name in program.reads}

    def outcome(activation: dict[str, Any]) -> Any:
        try:
            return program.evaluate(activation)
        except cel.EvaluationError as exc:
            return exc.message

    assert outcome(pruned) == outcome(whole)
    assert "managedFields" not in str(pruned), "what no expression reads is left out"


def test_merge_keeps_what_either_reads() -> None:
    assert paths.merge({"spec": {"a": None}}, {"spec": {"b": None}, "status": None}) == {
        "spec": {"a": None, "b": None},
        "status": None,
    }
    assert paths.merge({"spec": {"a": None}}, None) is None
    assert paths.merge({"spec": None}, {"spec": {"a": None}}) == {"spec": None}
