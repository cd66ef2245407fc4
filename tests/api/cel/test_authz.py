"""Kubernetes' authorizer library: what ``check`` is asked, decisions, and the errors
upstream's builders give."""

from __future__ import annotations

from typing import Any

import pytest

from pilothouse.api import admission_cel, cel
from pilothouse.api.cel.library import authz

ENV = admission_cel.environment(params=False)
USER = {"username": "alice", "groups": ["dev"]}


def evaluate(expression: str, decide: authz.Decide) -> Any:
    program = ENV.compile(expression)
    activation = cel.Activation(
        {
            "authorizer": authz.authorizer(
                USER, {"group": "apps", "resource": "deployments", "namespace": "dev"}
            )
        }
    )
    activation.add_function("check", authz.checker(decide))
    return program.evaluate(activation)


def test_checks_and_decisions() -> None:
    asked: list[dict[str, Any]] = []

    def decide(question: dict[str, Any]) -> tuple[str, str]:
        asked.append(question)
        return ("allow", "fine") if question["verb"] == "get" else ("deny", "no")

    assert evaluate(
        "authorizer.group('').resource('pods').subresource('log').namespace('dev')"
        ".name('web').check('get').allowed()",
        decide,
    )
    assert asked[-1] == {
        "user": USER,
        "group": "",
        "resource": "pods",
        "subresource": "log",
        "namespace": "dev",
        "name": "web",
        "verb": "get",
        "resourceRequest": True,
    }
    assert evaluate("authorizer.path('/metrics').check('post').reason()", decide) == "no"
    assert asked[-1] == {"user": USER, "path": "/metrics", "verb": "post", "resourceRequest": False}
    assert evaluate("authorizer.requestResource.check('update').allowed()", decide) is False
    assert (asked[-1]["group"], asked[-1]["resource"], asked[-1]["namespace"]) == (
        "apps",
        "deployments",
        "dev",
    )

    def broken(question: dict[str, Any]) -> tuple[str, str]:
        return ("error", "webhook authorizer timed out")

    assert evaluate("authorizer.path('/x').check('get').errored()", broken) is True
    assert (
        evaluate("authorizer.path('/x').check('get').error()", broken)
        == "webhook authorizer timed out"
    )
    assert evaluate("authorizer.path('/x').check('get').allowed()", broken) is False


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("authorizer.path(' ').check('get').allowed()", "path must not be empty"),
        ("authorizer.group('').resource('').check('get').allowed()", "resource must not be empty"),
        (
            "authorizer.serviceAccount('dev', 'Bad_Name').path('/x').check('get').allowed()",
            "Invalid service account name",
        ),
        (
            "authorizer.serviceAccount('a.b', 'sa').path('/x').check('get').allowed()",
            "Invalid service account namespace",
        ),
    ],
)
def test_builders_refuse_as_upstream(expression: str, message: str) -> None:
    with pytest.raises(cel.EvaluationError) as exc:
        evaluate(expression, lambda q: ("allow", ""))
    assert exc.value.message == message


def test_undeclared_where_no_authorizer_is_offered() -> None:
    with pytest.raises(cel.CompileError):
        admission_cel.environment(params=False, authorizer=False).compile(
            "authorizer.path('/x').check('get').allowed()"
        )
