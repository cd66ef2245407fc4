"""``x-kubernetes-validations``: CEL rules on a structural schema.

Two halves, as upstream's ``apiserver/schema/cel``:

* :func:`compile_errors` — what a CRD write is refused for: a rule that does not
  compile (``compilation failed: ERROR: <input>:1:6: undefined field 'foo'``), that
  does not evaluate to a bool, whose worst-case cost is over the limit, a
  ``messageExpression`` that does not compile or is not a string;
* :class:`Validator` — the compiled rules of one schema, evaluated against a custom
  resource (and the object it replaces, for transition rules using ``oldSelf``),
  returning field errors worded as upstream's: ``spec: Invalid value: "object":
  replicas must not exceed maxReplicas``, or with the rule's ``reason``
  (``FieldValueForbidden`` → ``Forbidden: …``) at its ``fieldPath``.

A rule sees ``self`` typed by the schema node it sits on (at the root: the object
with ``apiVersion``, ``kind`` and ``metadata.name``/``generateName`` only). A
transition rule runs only when there is an old value to compare with: on update,
and for list items only in ``x-kubernetes-list-type: map`` lists, matched by key.

No I/O here: this module is part of the bottom ``api`` layer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pilothouse.api import cel, errors
from pilothouse.api.cel import cost as celcost
from pilothouse.api.cel import types as celtypes

FieldError = errors.FieldError

# k8s.io/apiserver/pkg/apis/cel/config.go
STATIC_ESTIMATED_COST_LIMIT = 10_000_000
REASONS = ("FieldValueInvalid", "FieldValueForbidden", "FieldValueRequired", "FieldValueDuplicate")
COST_HINT = (
    "(try simplifying the rule, or adding maxItems, maxProperties, and maxLength where "
    "arrays, maps, and strings are declared)"
)


def _environment(schema: Mapping[str, Any], *, resource_root: bool) -> cel.Environment:
    typ = celtypes.from_schema(schema, resource_root=resource_root)
    return cel.Environment({"self": typ, "oldSelf": typ})


@dataclass
class CompiledRule:
    rule: dict[str, Any]
    program: cel.Program | None = None
    message: cel.Program | None = None
    error: str = ""  # detail of a rule that cannot be used
    error_field: str = "rule"
    error_kind: str = errors.INVALID_VALUE

    @property
    def uses_old_self(self) -> bool:
        return self.program is not None and "oldSelf" in self.program.variables


def _compile(rule: dict[str, Any], env: cel.Environment) -> CompiledRule:
    out = CompiledRule(rule)
    text = rule.get("rule")
    if not isinstance(text, str) or not text.strip():
        out.error, out.error_kind = "rule is not specified", errors.REQUIRED
        return out
    try:
        program = env.compile(text)
    except cel.CompileError as exc:
        out.error = f"compilation failed: {exc.message}"
        return out
    if not celtypes.is_assignable(celtypes.BOOL, program.result_type):
        out.error = "cel expression must evaluate to a bool"
        return out
    if program.estimated_cost > STATIC_ESTIMATED_COST_LIMIT:
        factor = celcost.exceed_factor(program.estimated_cost, STATIC_ESTIMATED_COST_LIMIT)
        out.error = f"estimated rule cost exceeds budget by factor of {factor} {COST_HINT}"
        out.error_kind = errors.FIELD_FORBIDDEN
        return out
    out.program = program
    expression = rule.get("messageExpression")
    if isinstance(expression, str) and expression:
        try:
            message = env.compile(expression)
        except cel.CompileError as exc:
            out.error, out.error_field = (
                f"messageExpression compilation failed: {exc.message}",
                "messageExpression",
            )
            out.program = None
            return out
        if not celtypes.is_assignable(celtypes.STRING, message.result_type):
            out.error, out.error_field = "must evaluate to string", "messageExpression"
            out.program = None
            return out
        out.message = message
    return out


def rule_value(rule: Mapping[str, Any]) -> errors.GoValue:
    """A rule as upstream's field errors print it (``%#v`` of the Go struct)."""
    reason = rule.get("reason")
    optional = rule.get("optionalOldSelf")
    return errors.GoValue(
        "apiextensions.ValidationRule{"
        f"Rule:{_go(rule.get('rule'))}, Message:{_go(rule.get('message'))}, "
        f"MessageExpression:{_go(rule.get('messageExpression'))}, "
        f"Reason:{_go_ptr(reason, 'apiextensions.FieldValueErrorReason')}, "
        f"FieldPath:{_go(rule.get('fieldPath'))}, "
        f"OptionalOldSelf:{_go_ptr(optional, 'bool')}"
        "}"
    )


def _go(value: Any) -> str:
    from pilothouse.api import gostrings

    return gostrings.quote(value if isinstance(value, str) else "")


def _go_ptr(value: Any, type_name: str) -> str:
    if value is None:
        return f"(*{type_name})(nil)"
    return f"(*{type_name})(0xc000000000)"


def compile_errors(
    schema: Mapping[str, Any], path: str, *, resource_root: bool
) -> list[FieldError]:
    """The errors a CRD write gets for the rules on one schema node."""
    rules = schema.get("x-kubernetes-validations")
    if not isinstance(rules, list) or not rules:
        return []
    env = _environment(schema, resource_root=resource_root)
    out: list[FieldError] = []
    for i, rule in enumerate(rules):
        here = f"{path}.x-kubernetes-validations[{i}]"
        if not isinstance(rule, dict):
            continue
        reason = rule.get("reason")
        if reason is not None and reason not in REASONS:
            out.append(errors.not_supported(f"{here}.reason", reason, REASONS))
        compiled = _compile(rule, env)
        if not compiled.error:
            continue
        where = f"{here}.{compiled.error_field}"
        if compiled.error_kind == errors.REQUIRED:
            out.append(errors.required(where, compiled.error))
        elif compiled.error_kind == errors.FIELD_FORBIDDEN:
            out.append(errors.field_forbidden(where, compiled.error))
        else:
            out.append(errors.invalid_value(where, rule_value(rule), compiled.error))
    return out


# --- evaluation -------------------------------------------------------------------------


@dataclass
class _Node:
    schema: Mapping[str, Any]
    rules: list[CompiledRule] = field(default_factory=list)
    properties: dict[str, _Node] = field(default_factory=dict)
    items: _Node | None = None
    additional: _Node | None = None
    resource_root: bool = False
    # Whether values need formatted strings turned into CEL types (date-time, …).
    converts: bool = False


def _build(schema: Mapping[str, Any], *, resource_root: bool) -> _Node | None:
    if not isinstance(schema, dict):
        return None
    node = _Node(schema, resource_root=resource_root)
    node.converts = cel.values.needs_conversion(schema)
    rules = schema.get("x-kubernetes-validations")
    if isinstance(rules, list) and rules:
        env = _environment(schema, resource_root=resource_root)
        node.rules = [_compile(r, env) for r in rules if isinstance(r, dict)]
    for name, sub in (schema.get("properties") or {}).items():
        built = _build(sub, resource_root=bool(sub.get("x-kubernetes-embedded-resource")))
        if built is not None:
            node.properties[name] = built
    items = schema.get("items")
    if isinstance(items, dict):
        node.items = _build(items, resource_root=bool(items.get("x-kubernetes-embedded-resource")))
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        node.additional = _build(
            extra, resource_root=bool(extra.get("x-kubernetes-embedded-resource"))
        )
    if not (node.rules or node.properties or node.items or node.additional):
        return None
    return node


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _self_value(value: Any, node: _Node) -> Any:
    if node.resource_root and isinstance(value, dict):
        raw_md = value.get("metadata")
        md: dict[str, Any] = raw_md if isinstance(raw_md, dict) else {}
        value = {
            **value,
            "metadata": {k: md[k] for k in ("name", "generateName") if k in md},
        }
    return cel.values.convert(value, node.schema) if node.converts else value


def _map_key(item: Any, keys: list[str]) -> tuple[Any, ...] | None:
    if not isinstance(item, dict):
        return None
    return tuple(repr(item.get(k)) for k in keys)


class Validator:
    """The compiled ``x-kubernetes-validations`` of one schema (shared, read-only)."""

    def __init__(self, schema: Mapping[str, Any] | None) -> None:
        self.root = _build(schema, resource_root=True) if schema is not None else None

    @property
    def empty(self) -> bool:
        return self.root is None

    def validate(self, obj: Any, old: Any = None) -> list[FieldError]:
        if self.root is None:
            return []
        out: list[FieldError] = []
        self._walk(self.root, obj, old, "", out)
        return out

    def _walk(self, node: _Node, value: Any, old: Any, path: str, out: list[FieldError]) -> None:
        if value is None:
            return
        if node.rules:
            self._rules(node, value, old, path, out)
        if isinstance(value, dict):
            old_map = (
                old
                if isinstance(old, dict) and node.schema.get("x-kubernetes-map-type") != "atomic"
                else {}
            )
            for key, sub in value.items():
                child = (
                    node.properties.get(key)
                    if key in (node.schema.get("properties") or {})
                    else node.additional
                )
                if child is not None:
                    self._walk(child, sub, old_map.get(key), _join(path, key), out)
        elif isinstance(value, list) and node.items is not None:
            keys = node.schema.get("x-kubernetes-list-map-keys")
            old_items: dict[tuple[Any, ...], Any] = {}
            if (
                node.schema.get("x-kubernetes-list-type") == "map"
                and isinstance(keys, list)
                and isinstance(old, list)
            ):
                for item in old:
                    key = _map_key(item, keys)
                    if key is not None:
                        old_items[key] = item
            for i, item in enumerate(value):
                item_key = _map_key(item, keys) if old_items and isinstance(keys, list) else None
                previous = old_items.get(item_key) if item_key is not None else None
                self._walk(node.items, item, previous, f"{path}[{i}]", out)

    def _rules(self, node: _Node, value: Any, old: Any, path: str, out: list[FieldError]) -> None:
        type_name = str(node.schema.get("type") or "")
        self_value = _self_value(value, node)
        old_value = _self_value(old, node) if old is not None else None
        for compiled in node.rules:
            rule = compiled.rule
            shown = (rule.get("message") or "").strip() or (rule.get("rule") or "").strip()
            if compiled.program is None:
                out.append(
                    errors.invalid_value(path, type_name, f"rule compile error: {compiled.error}")
                )
                continue
            if compiled.uses_old_self and old is None:
                continue  # transition rules need an old value
            activation = {"self": self_value}
            if old_value is not None:
                activation["oldSelf"] = old_value
            try:
                result = compiled.program.evaluate(activation)
            except cel.EvaluationError as exc:
                if exc.message.startswith("no such overload"):
                    out.append(
                        errors.invalid_value(
                            path,
                            type_name,
                            f"'{exc.message}': call arguments did not match a supported operator, "
                            f"function or macro signature for rule: {shown}",
                        )
                    )
                else:
                    out.append(
                        errors.invalid_value(
                            path, type_name, f"{exc.message} evaluating rule: {shown}"
                        )
                    )
                continue
            if result is True:
                continue
            detail = self._message(compiled, activation) or (
                (rule.get("message") or "").strip() or f"failed rule: {shown}"
            )
            where = path
            field_path = rule.get("fieldPath")
            if isinstance(field_path, str) and field_path:
                where = _normalize(path, field_path)
            out.append(_for_reason(where, type_name, detail, rule.get("reason")))

    def _message(self, compiled: CompiledRule, activation: dict[str, Any]) -> str:
        if compiled.message is None:
            return ""
        try:
            text = compiled.message.evaluate(activation)
        except cel.EvaluationError:
            return ""
        if not isinstance(text, str):
            return ""
        text = text.strip()
        if not text or "\n" in text or len(text) > cel.MAX_EVALUATED_MESSAGE_EXPRESSION_SIZE_BYTES:
            return ""
        return text


def _normalize(path: str, field_path: str) -> str:
    """``.spec.foo['bar']`` relative to ``path``, as a field path (``spec.foo[bar]``)."""
    out = path
    rest = field_path
    while rest:
        if rest.startswith("."):
            rest = rest[1:]
            end = min([i for i in (rest.find("."), rest.find("[")) if i >= 0], default=len(rest))
            out = _join(out, rest[:end])
            rest = rest[end:]
        elif rest.startswith("['"):
            end = rest.find("']")
            if end < 0:
                break
            out = f"{out}[{rest[2:end]}]"
            rest = rest[end + 2 :]
        else:
            break
    return out


def _for_reason(path: str, type_name: str, detail: str, reason: Any) -> FieldError:
    if reason == "FieldValueForbidden":
        return errors.field_forbidden(path, detail)
    if reason == "FieldValueRequired":
        return errors.required(path, detail)
    if reason == "FieldValueDuplicate":
        return errors.duplicate(path, type_name)
    return errors.invalid_value(path, type_name, detail)
