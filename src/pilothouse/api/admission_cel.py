"""The CEL environments of admission: webhook match conditions and ValidatingAdmissionPolicy.

As upstream's ``k8s.io/apiserver/pkg/admission/plugin/cel``: ``object`` and
``oldObject`` are ``dyn``, ``request`` is the typed ``kubernetes.AdmissionRequest``
(``request.operation``, ``request.userInfo.username`` …; a misspelt field is a compile
error), ``namespaceObject`` the typed Namespace; ``params`` exists only for policies
with a ``paramKind``, and ``variables`` only for policies that declare them, typed by
each variable's own expression. What each kind of expression must evaluate to:
conditions and validations ``bool``, message expressions ``string``, audit annotation
values ``string`` or ``null``.

Compile errors carry upstream's words (``compilation failed: ERROR: <input>:1:8:
undefined field 'replica'`` and the caret lines) — validation of policies and webhook
configurations reports them, the plugins refuse to run what does not compile.

Both get ``authorizer`` and ``authorizer.requestResource`` (Kubernetes' authz library,
:mod:`pilothouse.api.cel.library.authz`); the admission plugins hand the engine the
``check`` that asks the server's authorizer.

No I/O here: part of the bottom ``api`` layer. Environments are built once and shared.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass

from pilothouse.api import cel
from pilothouse.api.cel import types as t

CONDITION = "condition"
MESSAGE = "message"
VARIABLE = "variable"
AUDIT = "audit"


def _object(fields: Mapping[str, t.Type]) -> t.Type:
    return t.Type("object", fields=dict(fields), properties={k: k for k in fields})


_STRINGS = t.list_of(cel.STRING)
GVK = _object({"group": cel.STRING, "version": cel.STRING, "kind": cel.STRING})
GVR = _object({"group": cel.STRING, "version": cel.STRING, "resource": cel.STRING})
USER_INFO = _object(
    {
        "username": cel.STRING,
        "uid": cel.STRING,
        "groups": _STRINGS,
        "extra": t.map_of(cel.STRING, _STRINGS),
    }
)
REQUEST = _object(
    {
        "kind": GVK,
        "resource": GVR,
        "subResource": cel.STRING,
        "requestKind": GVK,
        "requestResource": GVR,
        "requestSubResource": cel.STRING,
        "name": cel.STRING,
        "namespace": cel.STRING,
        "operation": cel.STRING,
        "userInfo": USER_INFO,
        "dryRun": cel.BOOL,
        "options": cel.DYN,
    }
)
_STRING_MAP = t.map_of(cel.STRING, cel.STRING)
NAMESPACE = _object(
    {
        "metadata": _object(
            {
                "name": cel.STRING,
                "generateName": cel.STRING,
                "namespace": cel.STRING,
                "labels": _STRING_MAP,
                "annotations": _STRING_MAP,
                "UID": cel.STRING,
                "creationTimestamp": t.TIMESTAMP,
                "deletionGracePeriodSeconds": cel.INT,
                "deletionTimestamp": t.TIMESTAMP,
                "generation": cel.INT,
                "resourceVersion": cel.STRING,
                "finalizers": _STRINGS,
            }
        ),
        "spec": _object({"finalizers": _STRINGS}),
        "status": _object(
            {
                "conditions": t.list_of(
                    _object(
                        {
                            "status": cel.STRING,
                            "type": cel.STRING,
                            "lastTransitionTime": t.TIMESTAMP,
                            "message": cel.STRING,
                            "reason": cel.STRING,
                        }
                    )
                ),
                "phase": cel.STRING,
            }
        ),
    }
)


@dataclass(frozen=True, slots=True)
class Compiled:
    program: cel.Program | None
    error: str = ""


@functools.cache
def base_environment(*, params: bool, authorizer: bool = True) -> cel.Environment:
    variables: dict[str, t.Type] = {
        "object": cel.DYN,
        "oldObject": cel.DYN,
        "request": REQUEST,
        "namespaceObject": NAMESPACE,
    }
    if params:
        variables["params"] = cel.DYN
    if authorizer:
        variables["authorizer"] = t.AUTHORIZER
        variables["authorizer.requestResource"] = t.RESOURCE_CHECK
    return cel.Environment(variables)


def environment(
    *,
    params: bool,
    variables: Mapping[str, t.Type] | None = None,
    object_type: t.Type | None = None,
    params_type: t.Type | None = None,
    authorizer: bool = True,
) -> cel.Environment:
    """An environment for one policy (variables typed), or for type checking against a
    kind's schema (``object_type``). ``authorizer``: whether ``authorizer`` is declared
    (it is wherever upstream declares it; off only for tests of its absence)."""
    env = base_environment(params=params, authorizer=authorizer)
    extra: dict[str, t.Type] = {}
    if variables is not None:
        extra["variables"] = _object(variables)
    if object_type is not None:
        extra["object"] = object_type
        extra["oldObject"] = object_type
    if params and params_type is not None:
        extra["params"] = params_type
    return env.extend(extra) if extra else env


def _result(what: str) -> t.Type | None:
    if what in (CONDITION,):
        return cel.BOOL
    if what == MESSAGE:
        return cel.STRING
    return None


def compile_expression(expression: str, what: str, env: cel.Environment) -> Compiled:
    """Compile one expression of kind ``what``; the error text is upstream's."""
    try:
        program = env.compile(expression)
    except cel.CompileError as exc:
        return Compiled(None, f"compilation failed: {exc.message}")
    expected = _result(what)
    got = program.result_type
    if expected is not None and not t.is_assignable(expected, got):
        return Compiled(None, f"must evaluate to {expected} but got {got}")
    if what == AUDIT and not (got.is_dyn or got.name in (cel.STRING.name, t.NULL.name)):
        return Compiled(None, f"must evaluate to one of [string null_type] but got {got}")
    return Compiled(program)


class Checker:
    """Compiles a policy's expressions as upstream's composited compiler does: each
    variable sees the ones declared before it, every other expression sees them all.
    Used as the ``compile`` hook of validation (``None``: fine, else the problem)."""

    def __init__(self) -> None:
        self.types: dict[str, t.Type] = {}

    def _env(self, params: bool) -> cel.Environment:
        return environment(params=params, variables=self.types if self.types else None)

    def variable(self, name: str, expression: str, params: bool) -> str | None:
        compiled = compile_expression(expression, VARIABLE, self._env(params))
        result = compiled.program.result_type if compiled.program is not None else cel.DYN
        self.types[name] = result
        return compiled.error or None

    def __call__(self, expression: str, what: str, params: bool) -> str | None:
        return compile_expression(expression, what, self._env(params)).error or None


def check(expression: str, what: str, params: bool) -> str | None:
    """A lone expression (a webhook's match condition): ``None`` when it compiles."""
    return compile_expression(expression, what, environment(params=params)).error or None
