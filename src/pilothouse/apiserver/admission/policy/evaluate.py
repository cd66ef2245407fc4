"""Evaluating the policies that apply to a request (upstream's validating dispatcher and
validator).

For each policy whose ``matchConstraints`` match, for each of its bindings that
matches: the params the binding names (none, one, or every object a selector finds;
``parameterNotFoundAction`` when there are none), then per param the variables,
the match conditions, each validation and its message, and the audit annotations.
A failed validation becomes what the binding's ``validationActions`` say: Deny
refuses the request (the first denial answers, 422 ``Invalid`` unless the validation
names another reason), Warn adds a ``Warning``, Audit records
``validation.policy.admission.k8s.io/validation_failure``. An expression that fails
to evaluate, or a binding whose params cannot be found, follows the policy's
``failurePolicy``: refused under Fail, ignored under Ignore. Messages are upstream's
(``ValidatingAdmissionPolicy 'p' with binding 'b' denied request: failed
expression: …``).

What the expressions read is prepared once per policy and param and converted for
the engine once (``cel.Activation``), objects pruned to the fields the expressions
select (``cel.paths``). Variables are evaluated eagerly, in order (the engine has no
lazy attributes); one that fails is left out and its error is what an expression
reading it fails with, as upstream's lazy ones give. Runtime cost budgets are not
enforced. Concurrency: an
:class:`Evaluator` keeps no per-request state; each evaluation builds its own
activation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from pilothouse.api import cel, errors, resources
from pilothouse.api.cel import paths as cel_paths
from pilothouse.api.cel.library import authz as cel_authz
from pilothouse.api.meta import Obj
from pilothouse.api.selectors import error as selector_error
from pilothouse.api.selectors import labels as label_selectors
from pilothouse.apiserver import watchcache
from pilothouse.apiserver.admission import celauthorizer
from pilothouse.apiserver.admission.policy import matching, policies
from pilothouse.apiserver.admission.webhook import matching as webhook_matching
from pilothouse.apiserver.admission.webhook import review
from pilothouse.apiserver.registry import conversion

if TYPE_CHECKING:
    from pilothouse.apiserver.authz.authorizer import Authorizer

VALIDATION_FAILURE = "validation.policy.admission.k8s.io/validation_failure"
MAX_AUDIT_VALUE = 10 * 1024
_REASON_CODES = {"Forbidden": 403, "Invalid": 422, "RequestEntityTooLarge": 413}
_TIMESTAMP = {"type": "string", "format": "date-time"}
_NAMESPACE_SCHEMA = {
    "type": "object",
    "properties": {
        "metadata": {
            "type": "object",
            "properties": {"creationTimestamp": _TIMESTAMP, "deletionTimestamp": _TIMESTAMP},
        },
        "status": {
            "type": "object",
            "properties": {
                "conditions": {
                    "type": "array",
                    "items": {"type": "object", "properties": {"lastTransitionTime": _TIMESTAMP}},
                }
            },
        },
    },
}


class ConfigError(Exception):
    """A binding that cannot be used for this request (params, selectors)."""


@dataclass(frozen=True, slots=True)
class Decision:
    """A failed validation (or an evaluation error under failurePolicy Fail)."""

    message: str
    reason: str = ""
    index: int = 0


@dataclass(slots=True)
class Outcome:
    """One policy's verdict on one request with one param."""

    decisions: list[Decision]
    audit: list[tuple[str, str]]
    audit_errors: list[str]


@dataclass(frozen=True, slots=True)
class Denied:
    policy: str
    binding: str
    message: str
    reason: str


class Evaluator:
    """Evaluates policies for requests; shared by all requests."""

    def __init__(
        self,
        *,
        cache: watchcache.WatchCache,
        registry: resources.Registry,
        namespace: Callable[[str], Obj | None],
        authorizer: Authorizer | None = None,
    ) -> None:
        self.cache = cache
        self.registry = registry
        self.namespace = namespace
        # The server's authorizer, for the ``authorizer`` of expressions (None: off).
        self.authorizer = authorizer

    def _namespace_labels(self, name: str) -> dict[str, str] | None:
        obj = self.namespace(name)
        if obj is None:
            return None
        found = (obj.get("metadata") or {}).get("labels")
        return found if isinstance(found, dict) else {}

    # --- the request --------------------------------------------------------------
    def validate(self, request: webhook_matching.Request, found: Sequence[policies.Policy]) -> None:
        """Raise the first denial; warnings and audit annotations go to the request."""
        denied: list[Denied] = []

        def config_error(policy: policies.Policy, binding: str, problem: str) -> None:
            if policy.ignores_failures:
                return
            what = "binding" if binding else "policy"
            denied.append(
                Denied(policy.name, binding, f"failed to configure {what}: {problem}", "")
            )

        for policy in found:
            if policy.match is None:
                continue
            try:
                matched = matching.matches(
                    policy.match,
                    request,
                    registry=self.registry,
                    namespace_labels=self._namespace_labels,
                )
            except errors.StatusError as exc:
                config_error(policy, "", exc.message)
                continue
            if matched is None:
                continue
            if policy.param_kind is not None and self.param_resource(policy) is None:
                # Upstream's policy source records this as the policy's configuration
                # error; it answers only requests the policy matches.
                config_error(policy, "", _unknown_param_kind(policy.param_kind))
                continue
            annotations: dict[str, list[str]] = {}
            for binding in policy.bindings:
                if binding.match is not None:
                    try:
                        if not matching.matches(
                            binding.match,
                            request,
                            registry=self.registry,
                            namespace_labels=self._namespace_labels,
                        ):
                            continue
                    except errors.StatusError as exc:
                        config_error(policy, binding.name, exc.message)
                        continue
                try:
                    params = self.params(policy, binding, request)
                except ConfigError as exc:
                    config_error(policy, binding.name, str(exc))
                    continue
                self._require_namespace(request)
                for param in params:
                    outcome = self.evaluate(policy, matched, request, param)
                    for decision in outcome.decisions:
                        self._act(policy, binding, decision, request, denied)
                    for key, value in outcome.audit:
                        values = annotations.setdefault(key, [])
                        if value not in values:
                            values.append(value)
                    # Under Fail an audit annotation that cannot be computed refuses,
                    # whatever the binding's actions.
                    denied.extend(
                        Denied(policy.name, binding.name, m, "") for m in outcome.audit_errors
                    )
            for key, values in annotations.items():
                request.annotate(f"{policy.name}/{key}", ", ".join(values))
        if denied:
            raise denial(request, denied[0])

    def _act(
        self,
        policy: policies.Policy,
        binding: policies.Binding,
        decision: Decision,
        request: webhook_matching.Request,
        denied: list[Denied],
    ) -> None:
        for action in binding.actions:
            if action == "Deny":
                denied.append(Denied(policy.name, binding.name, decision.message, decision.reason))
            elif action == "Warn":
                request.warn(
                    f"Validation failed for ValidatingAdmissionPolicy '{policy.name}' with binding "
                    f"'{binding.name}': {decision.message}"
                )
            elif action == "Audit":
                value = [
                    {
                        "message": decision.message,
                        "policy": policy.name,
                        "binding": binding.name,
                        "expressionIndex": decision.index,
                        "validationActions": list(binding.actions),
                    }
                ]
                request.annotate(VALIDATION_FAILURE, orjson.dumps(value).decode())

    # --- params ---------------------------------------------------------------------
    def params(
        self, policy: policies.Policy, binding: policies.Binding, request: webhook_matching.Request
    ) -> list[Obj | None]:
        """The params to validate with (``[None]``: none declared); [] skips the binding."""
        if policy.param_kind is None or binding.param_ref is None:
            return [None]
        resource = self.param_resource(policy)
        if resource is None:
            raise ConfigError(_unknown_param_kind(policy.param_kind))
        ref = binding.param_ref
        ref_namespace = str(ref.get("namespace") or "")
        if resource.namespaced:
            namespace = ref_namespace or request.namespace
            if not namespace:
                raise ConfigError(
                    "cannot use namespaced paramRef in policy binding that matches cluster-scoped "
                    "resources"
                )
        elif ref_namespace:
            raise ConfigError(
                "paramRef.namespace must not be provided for a cluster-scoped `paramKind`"
            )
        else:
            namespace = ""
        cache = self.cache.caches.get(resource.storage_prefix)
        found: list[Obj] = []
        if cache is not None:
            if ref.get("name"):
                entry = cache.objects.get(resource.key(namespace, str(ref["name"])))
                # Whole: a policy's expressions may read the params' managedFields.
                found = [entry.whole()] if entry is not None else []
            elif isinstance(ref.get("selector"), dict):
                try:
                    selector = label_selectors.from_label_selector_dict(ref["selector"])
                except selector_error.SelectorError as exc:
                    raise ConfigError(str(exc)) from None
                found = [
                    e.whole()
                    for e in cache.snapshot(resource.prefix(namespace))
                    if selector.matches((e.obj.get("metadata") or {}).get("labels") or {})
                ]
        convert = conversion.for_resource(resource)
        params: list[Obj | None] = [convert.to_api(p) if convert is not None else p for p in found]
        if not params and ref.get("parameterNotFoundAction") == "Deny":
            raise ConfigError(
                "no params found for policy binding with `Deny` parameterNotFoundAction"
            )
        return params

    def param_resource(self, policy: policies.Policy) -> resources.Resource | None:
        """The resource of the policy's ``paramKind`` (looked up per request: a CRD
        serving it may come or go while the policy stays)."""
        if policy.param_kind is None:
            return None
        api_version, kind = policy.param_kind
        return self.registry.by_api_version(api_version, kind)

    # --- one policy, one param ----------------------------------------------------------
    def evaluate(
        self,
        policy: policies.Policy,
        matched: matching.Matched,
        request: webhook_matching.Request,
        param: Obj | None,
    ) -> Outcome:
        on_error = not policy.ignores_failures
        invocation = webhook_matching.Invocation(
            None,  # type: ignore[arg-type]
            matched.resource,
            request.subresource,
            matched.kind,
        )
        # Only what the policy's expressions read is prepared, and of the objects only
        # the fields they select (cel.paths): converting for the engine is the cost.
        reads = policy.reads
        inputs: dict[str, Any] = {}
        if "object" in reads:
            obj = request.versioned(request.obj, matched.resource)
            inputs["object"] = cel_paths.prune(obj, reads["object"])
        if "oldObject" in reads:
            old = request.versioned(request.old, matched.resource)
            inputs["oldObject"] = cel_paths.prune(old, reads["oldObject"])
        if "request" in reads:
            inputs["request"] = review.request_fields(request, invocation)
        if "namespaceObject" in reads:
            inputs["namespaceObject"] = self._namespace_object(request)
        if "params" in reads:
            inputs["params"] = cel_paths.prune(param, reads["params"])
        if "authorizer" in reads:
            inputs["authorizer"] = celauthorizer.variable(request)
        # Converted for the engine once: every expression of the policy reads it.
        activation = cel.Activation(inputs)
        if "authorizer" in reads:
            activation.add_function(
                "check", cel_authz.checker(celauthorizer.decider(self.authorizer))
            )
        # Upstream's variables are lazy: one that fails fails only the expressions that
        # read it, with its own error. Here they are evaluated in order and a failed one
        # left out; its error replaces the "no such key" of whatever reads it.
        failed: dict[str, str] = {}
        if policy.variables:
            values: dict[str, Any] = {}
            for name, expr in policy.variables:
                activation.set("variables", values)
                outcome = _run(expr, activation, failed)
                if isinstance(outcome, _Failure):
                    failed[name] = outcome.cause
                else:
                    values[name] = outcome
            activation.set("variables", values)
        # Upstream's matchconditions.Matcher: any condition that is false skips the
        # policy, even after another failed to evaluate; only then do the errors count
        # (several as one aggregate), refusing under Fail and skipping under Ignore.
        failures: list[str] = []
        for _, expr in policy.match_conditions:
            outcome = _run(expr, activation, failed)
            if isinstance(outcome, _Failure):
                failures.append(outcome.message)
            elif outcome is False:
                return Outcome([], [], [])
        if failures:
            message = failures[0] if len(failures) == 1 else "[" + ", ".join(failures) + "]"
            return Outcome([Decision(message)] if on_error else [], [], [])
        decisions: list[Decision] = []
        for index, validation in enumerate(policy.validations):
            outcome = _run(validation.expression, activation, failed)
            if isinstance(outcome, _Failure):
                if on_error:
                    decisions.append(Decision(outcome.message, index=index))
                continue
            if outcome is True:
                continue
            decisions.append(
                Decision(
                    self._message(validation, activation),
                    validation.reason or "Invalid",
                    index,
                )
            )
        audit: list[tuple[str, str]] = []
        audit_errors: list[str] = []
        for key, expr in policy.audit_annotations:
            outcome = _run(expr, activation, failed)
            if isinstance(outcome, _Failure):
                if on_error:
                    audit_errors.append(outcome.message)
                continue
            if outcome is None:
                continue
            if not isinstance(outcome, str):
                if on_error:
                    audit_errors.append(
                        f"valueExpression '{expr.text}' resulted in unsupported return type: "
                        f"{_cel_type(outcome)}. Return type must be either string or null."
                    )
                continue
            value = outcome.strip()
            if value:
                audit.append((key, value[:MAX_AUDIT_VALUE]))
        return Outcome(decisions, audit, audit_errors)

    def _message(self, validation: policies.Validation, activation: cel.Activation) -> str:
        if validation.message_expression is not None:
            program = validation.message_expression.compiled.program
            if program is not None:
                try:
                    value = program.evaluate(activation)
                except cel.EvaluationError:
                    value = None
                if isinstance(value, str):
                    message = value.strip()
                    if (
                        message
                        and len(message.encode()) <= cel.MAX_EVALUATED_MESSAGE_EXPRESSION_SIZE_BYTES
                        and "\n" not in message
                    ):
                        return message
        if validation.message.strip():
            return validation.message.strip()
        return f"failed expression: {validation.expression.text.strip()}"

    def _require_namespace(self, request: webhook_matching.Request) -> None:
        """Upstream looks the request's Namespace up once a binding applies, and answers
        its lister's NotFound when it is not there."""
        name = request.namespace
        if name and request.kind != ("", "v1", "Namespace") and self.namespace(name) is None:
            raise errors.not_found("namespaces", "", name)

    def _namespace_object(self, request: webhook_matching.Request) -> Obj | None:
        name = request.namespace
        if not name or request.kind == ("", "v1", "Namespace"):
            return None
        ns = self.namespace(name)
        if ns is None:
            return None
        md = ns.get("metadata") or {}
        kept = {
            k: md[k]
            for k in (
                "name", "generateName", "namespace", "uid", "resourceVersion", "generation",
                "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels",
                "annotations", "finalizers",
            )
            if k in md
        }  # fmt: skip
        if "uid" in kept:
            kept["UID"] = kept.pop("uid")
        value = {"metadata": kept, "spec": ns.get("spec") or {}, "status": ns.get("status") or {}}
        converted: Obj = cel.values.convert(value, _NAMESPACE_SCHEMA)
        return converted


def _unknown_param_kind(param_kind: tuple[str, str]) -> str:
    """Upstream's words, with Go's ``GroupVersionKind.String()`` (``/v1, Kind=X`` for
    the core group)."""
    api_version, kind = param_kind
    group, _, version = api_version.rpartition("/")
    return f"failed to find resource referenced by paramKind: '{group}/{version}, Kind={kind}'"


@dataclass(frozen=True, slots=True)
class _Failure:
    message: str
    cause: str = ""  # the evaluation error alone (what a failed variable passes on)


def _run(expr: policies.Expression, activation: cel.Activation, failed: dict[str, str]) -> Any:
    """The value of an expression, or a _Failure worded as upstream's filter words it
    (``failed``: the errors of the variables that could not be evaluated)."""
    program = expr.compiled.program
    if program is None:
        cause = f"compilation error: {expr.compiled.error}"
        return _Failure(cause, cause)
    try:
        return program.evaluate(activation)
    except cel.EvaluationError as exc:
        cause = exc.message
        missing = cause.removeprefix("no such key: ")
        if missing != cause and missing in failed and "variables" in program.variables:
            cause = failed[missing]
        return _Failure(f"expression '{expr.text}' resulted in error: {cause}", cause)


def _cel_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "double"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "map"
    return type(value).__name__


def denial(request: webhook_matching.Request, denied: Denied) -> errors.StatusError:
    """``admission.NewForbidden`` with the validation's reason and code, as upstream."""
    if denied.binding:
        message = (
            f"ValidatingAdmissionPolicy '{denied.policy}' with binding '{denied.binding}' denied "
            f"request: {denied.message}"
        )
    else:
        message = f"ValidatingAdmissionPolicy '{denied.policy}' denied request: {denied.message}"
    name = request.name
    if not name:
        md = (request.obj or {}).get("metadata") or {}
        name = str(md.get("name") or md.get("generateName") or "Unknown")
    forbidden = errors.forbidden(request.resource.plural, request.resource.group, name, message)
    reason = denied.reason or "Invalid"
    details = dict(forbidden.details or {})
    details["causes"] = [{"message": message}]
    return errors.StatusError(
        _REASON_CODES.get(reason, 422), reason, forbidden.message, details=details
    )
