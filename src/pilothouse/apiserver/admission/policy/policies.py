"""ValidatingAdmissionPolicies and their bindings, compiled (upstream's policy source).

A :class:`Source` reads both kinds from the watch cache and keeps, per policy, its
expressions compiled in admission's CEL environment — variables in order, each
seeing the earlier ones — and the bindings that name it. A policy is compiled again
only when it changes (its resourceVersion); the whole view is rebuilt only when a
policy or a binding changed (the caches' last events say so).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from pilothouse.api import admission_cel, cel
from pilothouse.api.cel import paths as cel_paths
from pilothouse.api.cel import types as cel_types
from pilothouse.apiserver import watchcache
from pilothouse.apiserver.admission.webhook import hooks as webhook_hooks

POLICIES = "/registry/admissionregistration.k8s.io/validatingadmissionpolicies/"
BINDINGS = "/registry/admissionregistration.k8s.io/validatingadmissionpolicybindings/"


@dataclass(frozen=True, slots=True)
class Expression:
    text: str
    compiled: admission_cel.Compiled


@dataclass(frozen=True, slots=True)
class Validation:
    expression: Expression
    message: str
    message_expression: Expression | None
    reason: str


@dataclass(frozen=True, slots=True)
class Match:
    """``matchConstraints`` or a binding's ``matchResources``, selectors parsed."""

    rules: tuple[dict[str, Any], ...]
    excludes: tuple[dict[str, Any], ...]
    namespace_selector: webhook_hooks.Selector
    object_selector: webhook_hooks.Selector
    match_policy: str

    @classmethod
    def of(cls, match: dict[str, Any]) -> Match:
        return cls(
            rules=tuple(r for r in match.get("resourceRules") or [] if isinstance(r, dict)),
            excludes=tuple(
                r for r in match.get("excludeResourceRules") or [] if isinstance(r, dict)
            ),
            namespace_selector=webhook_hooks.Selector.parse(match.get("namespaceSelector")),
            object_selector=webhook_hooks.Selector.parse(match.get("objectSelector")),
            match_policy=str(match.get("matchPolicy") or "Equivalent"),
        )


@dataclass(frozen=True, slots=True)
class Binding:
    name: str
    policy_name: str
    param_ref: dict[str, Any] | None
    match: Match | None
    actions: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    revision: int
    failure_policy: str
    param_kind: tuple[str, str] | None  # (apiVersion, kind)
    match: Match | None
    match_conditions: tuple[tuple[str, Expression], ...]
    variables: tuple[tuple[str, Expression], ...]
    validations: tuple[Validation, ...]
    audit_annotations: tuple[tuple[str, Expression], ...]
    # The inputs (object, request, namespaceObject, params…) its expressions read, and
    # what of each: only that is prepared and converted for the engine.
    reads: dict[str, cel_paths.Paths] = field(default_factory=dict)
    bindings: tuple[Binding, ...] = field(default=())

    @property
    def ignores_failures(self) -> bool:
        return self.failure_policy == "Ignore"


def compile_policy(obj: dict[str, Any], revision: int) -> Policy:
    spec = obj.get("spec") or {}
    kind = spec.get("paramKind")
    params = isinstance(kind, dict)
    base = admission_cel.environment(params=params)

    def one(text: str, what: str, env: cel.Environment) -> Expression:
        return Expression(text, admission_cel.compile_expression(text, what, env))

    match_conditions = tuple(
        (
            str(c.get("name") or ""),
            one(str(c.get("expression") or ""), admission_cel.CONDITION, base),
        )
        for c in spec.get("matchConditions") or []
        if isinstance(c, dict)
    )
    types: dict[str, cel_types.Type] = {}
    variables: list[tuple[str, Expression]] = []
    for v in spec.get("variables") or []:
        if not isinstance(v, dict):
            continue
        env = admission_cel.environment(params=params, variables=types or None)
        expr = one(str(v.get("expression") or ""), admission_cel.VARIABLE, env)
        name = str(v.get("name") or "")
        variables.append((name, expr))
        program = expr.compiled.program
        types[name] = program.result_type if program is not None else cel.DYN
    env = admission_cel.environment(params=params, variables=types or None)
    validations = []
    for v in spec.get("validations") or []:
        if not isinstance(v, dict):
            continue
        message_expression = v.get("messageExpression")
        validations.append(
            Validation(
                one(str(v.get("expression") or ""), admission_cel.CONDITION, env),
                str(v.get("message") or ""),
                one(str(message_expression), admission_cel.MESSAGE, env)
                if message_expression
                else None,
                str(v.get("reason") or ""),
            )
        )
    audit = tuple(
        (
            str(a.get("key") or ""),
            one(str(a.get("valueExpression") or ""), admission_cel.AUDIT, env),
        )
        for a in spec.get("auditAnnotations") or []
        if isinstance(a, dict)
    )
    constraints = spec.get("matchConstraints")
    expressions = [e for _, e in match_conditions] + [e for _, e in variables]
    expressions += [e for _, e in audit]
    for validation in validations:
        expressions.append(validation.expression)
        if validation.message_expression is not None:
            expressions.append(validation.message_expression)
    reads: dict[str, cel_paths.Paths] = {}
    for e in expressions:
        if e.compiled.program is not None:
            for name, read in e.compiled.program.reads.items():
                reads[name] = cel_paths.merge(reads[name], read) if name in reads else read
    return Policy(
        name=str((obj.get("metadata") or {}).get("name") or ""),
        revision=revision,
        failure_policy=str(spec.get("failurePolicy") or "Fail"),
        param_kind=(str(kind.get("apiVersion") or ""), str(kind.get("kind") or ""))
        if isinstance(kind, dict)
        else None,
        match=Match.of(constraints) if isinstance(constraints, dict) else None,
        match_conditions=match_conditions,
        variables=tuple(variables),
        validations=tuple(validations),
        audit_annotations=audit,
        reads=reads,
    )


def compile_binding(obj: dict[str, Any]) -> Binding:
    spec = obj.get("spec") or {}
    match = spec.get("matchResources")
    ref = spec.get("paramRef")
    return Binding(
        name=str((obj.get("metadata") or {}).get("name") or ""),
        policy_name=str(spec.get("policyName") or ""),
        param_ref=ref if isinstance(ref, dict) else None,
        match=Match.of(match) if isinstance(match, dict) else None,
        actions=tuple(str(a) for a in spec.get("validationActions") or []),
    )


class Source:
    """The policies in effect, with their bindings; rebuilt when either changes."""

    def __init__(self, cache: watchcache.WatchCache) -> None:
        self.cache = cache
        self._seen: tuple[tuple[int, int], ...] | None = None
        self._policies: tuple[Policy, ...] = ()
        self._compiled: dict[str, Policy] = {}

    def _marker(self) -> tuple[tuple[int, int], ...]:
        out = []
        for prefix in (POLICIES, BINDINGS):
            resource = self.cache.caches.get(prefix)
            if resource is None:
                out.append((0, 0))
                continue
            last = resource.events[-1].revision if resource.events else resource.floor
            out.append((last, len(resource.objects)))
        return tuple(out)

    def policies(self) -> tuple[Policy, ...]:
        """Policies that have at least one binding, in name order."""
        marker = self._marker()
        if marker == self._seen:
            return self._policies
        by_policy: dict[str, list[Binding]] = {}
        bindings = self.cache.caches.get(BINDINGS)
        for entry in bindings.snapshot(BINDINGS) if bindings is not None else ():
            binding = compile_binding(entry.obj)
            by_policy.setdefault(binding.policy_name, []).append(binding)
        compiled: dict[str, Policy] = {}
        out: list[Policy] = []
        policies = self.cache.caches.get(POLICIES)
        for entry in policies.snapshot(POLICIES) if policies is not None else ():
            name = str((entry.obj.get("metadata") or {}).get("name") or "")
            policy = self._compiled.get(name)
            if policy is None or policy.revision != entry.revision:
                policy = compile_policy(entry.obj, entry.revision)
            compiled[name] = policy
            if name in by_policy:
                out.append(_with_bindings(policy, tuple(by_policy[name])))
        self._compiled = compiled
        self._policies, self._seen = tuple(out), marker
        return self._policies


def _with_bindings(policy: Policy, bindings: tuple[Binding, ...]) -> Policy:
    return dataclasses.replace(policy, bindings=bindings)
