"""Label selectors: requirements, ``metav1.LabelSelector`` dicts and label sets.

Mirrors apimachinery ``pkg/labels/selector.go`` (v0.32): requirements validated
as ``NewRequirement`` validates them, sorted by key, printed in the same
canonical string, matched the same way. The query-string grammar lives in
:mod:`.label_parser`::

    <selector>    ::= <requirement> | <requirement> "," <selector>
    <requirement> ::= [!] KEY [ ("in" | "notin") "(" VALUES ")" | ("=" | "==" | "!=" | ">" | "<") VALUE ]

Three selectors that look alike differ in what they match:

* ``parse_label_selector("")`` and :func:`selector_from_set` of ``{}`` are
  *everything* (``labels.Everything()``);
* :func:`from_label_selector_dict` follows ``metav1.LabelSelectorAsSelector``:
  ``None`` (no selector at all) matches *nothing* (``labels.Nothing()``), while
  ``{}`` matches *everything*. Controllers that want "an empty selector selects
  nothing" (the endpoints controller for a Service with no selector) decide so
  themselves before asking.

No I/O here: this module is part of the bottom ``api`` layer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from pilothouse.api import gostrings
from pilothouse.api.selectors import error as _error
from pilothouse.api.selectors.error import SelectorError
from pilothouse.api.validation import names

# selection.Operator values (k8s.io/apimachinery/pkg/selection)
IN: Final = "in"
NOT_IN: Final = "notin"
EQUALS: Final = "="
DOUBLE_EQUALS: Final = "=="
NOT_EQUALS: Final = "!="
GREATER_THAN: Final = "gt"
LESS_THAN: Final = "lt"
EXISTS: Final = "exists"
DOES_NOT_EXIST: Final = "!"

BINARY_OPERATORS = (IN, NOT_IN, EQUALS, DOUBLE_EQUALS, NOT_EQUALS, GREATER_THAN, LESS_THAN)
_VALID_OPERATORS = (*BINARY_OPERATORS, EXISTS, DOES_NOT_EXIST)

# strconv.ParseInt(s, 10, 64): an optional sign and ASCII digits, nothing else.
_GO_INT = re.compile(r"[+-]?[0-9]+")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _parse_int64(text: str) -> int | None:
    if not _GO_INT.fullmatch(text):
        return None
    value = int(text)
    return value if _INT64_MIN <= value <= _INT64_MAX else None


@dataclass(frozen=True, slots=True)
class Requirement:
    """One ``key <operator> values`` condition; build it with :func:`new_requirement`."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.operator
        if op in (IN, EQUALS, DOUBLE_EQUALS):
            return self.key in labels and labels[self.key] in self.values
        if op in (NOT_IN, NOT_EQUALS):
            return self.key not in labels or labels[self.key] not in self.values
        if op == EXISTS:
            return self.key in labels
        if op == DOES_NOT_EXIST:
            return self.key not in labels
        if op in (GREATER_THAN, LESS_THAN):
            if self.key not in labels or len(self.values) != 1:
                return False
            have = _parse_int64(labels[self.key])
            want = _parse_int64(self.values[0])
            if have is None or want is None:
                return False
            return have > want if op == GREATER_THAN else have < want
        return False

    def __str__(self) -> str:
        op = self.operator
        if op == EXISTS:
            return self.key
        if op == DOES_NOT_EXIST:
            return "!" + self.key
        # Values print sorted (without changing the requirement) so equal
        # selectors print equal.
        shown = self.values[0] if len(self.values) == 1 else ",".join(sorted(self.values))
        if op in (IN, NOT_IN):
            shown = f"({shown})"
        return f"{self.key}{_SYMBOLS.get(op, '')}{shown}"


_SYMBOLS = {
    EQUALS: "=",
    DOUBLE_EQUALS: "==",
    NOT_EQUALS: "!=",
    IN: " in ",
    NOT_IN: " notin ",
    GREATER_THAN: ">",
    LESS_THAN: "<",
}


def new_requirement(
    key: str, operator: str, values: Iterable[str] = (), *, path: str = ""
) -> Requirement:
    """Validate and build a requirement, as upstream's ``labels.NewRequirement``.

    ``path`` prefixes the field paths in error messages (``key``, ``values[0]``…),
    as ``field.WithPath`` does; empty means none.
    """
    vals = tuple(values)
    problems: list[str] = []

    def at(child: str) -> str:
        return f"{path}.{child}" if path else child

    if key_errors := names.is_qualified_name(key):
        problems.append(_error.invalid(at("key"), gostrings.quote(key), "; ".join(key_errors)))
    values_path = at("values")
    shown = _error.go_string_slice(vals)
    if operator in (IN, NOT_IN):
        if not vals:
            problems.append(
                _error.invalid(
                    values_path, shown, "for 'in', 'notin' operators, values set can't be empty"
                )
            )
    elif operator in (EQUALS, DOUBLE_EQUALS, NOT_EQUALS):
        if len(vals) != 1:
            problems.append(
                _error.invalid(
                    values_path, shown, "exact-match compatibility requires one single value"
                )
            )
    elif operator in (EXISTS, DOES_NOT_EXIST):
        if vals:
            problems.append(
                _error.invalid(
                    values_path, shown, "values set must be empty for exists and does not exist"
                )
            )
    elif operator in (GREATER_THAN, LESS_THAN):
        if len(vals) != 1:
            problems.append(
                _error.invalid(
                    values_path, shown, "for 'Gt', 'Lt' operators, exactly one value is required"
                )
            )
        for i, value in enumerate(vals):
            if _parse_int64(value) is None:
                problems.append(
                    _error.invalid(
                        f"{values_path}[{i}]",
                        gostrings.quote(value),
                        "for 'Gt', 'Lt' operators, the value must be an integer",
                    )
                )
    else:
        supported = ", ".join(gostrings.quote(o) for o in _VALID_OPERATORS)
        problems.append(
            f"{at('operator')}: Unsupported value: {gostrings.quote(operator)}: supported values: {supported}"
        )
    for i, value in enumerate(vals):
        if value_errors := names.is_valid_label_value(value):
            problems.append(
                _error.invalid(
                    f"{values_path}[{i}][{key}]", gostrings.quote(value), "; ".join(value_errors)
                )
            )
    if problems:
        raise SelectorError(_error.aggregate(problems))
    return Requirement(key, operator, vals)


class LabelSelector:
    """An AND of requirements over an object's labels, or the selector that matches nothing."""

    __slots__ = ("_nothing", "requirements")

    def __init__(self, requirements: Iterable[Requirement] = (), *, nothing: bool = False) -> None:
        # Sorted by key (stably) for a deterministic string, as upstream's ByKey.
        self.requirements: tuple[Requirement, ...] = tuple(
            sorted(requirements, key=lambda r: r.key)
        )
        self._nothing = nothing

    @property
    def empty(self) -> bool:
        """True when the selector does not restrict anything (it matches every object)."""
        return not self._nothing and not self.requirements

    @property
    def nothing(self) -> bool:
        """True for the selector that matches no object (``labels.Nothing()``)."""
        return self._nothing

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self._nothing:
            return False
        have = labels if labels is not None else {}
        return all(r.matches(have) for r in self.requirements)

    def add(self, *requirements: Requirement) -> LabelSelector:
        """A new selector with more requirements (the nothing selector stays nothing)."""
        if self._nothing:
            return self
        return LabelSelector((*self.requirements, *requirements))

    def requires_exact_match(self, key: str) -> str | None:
        """The one value ``key`` must have, if the selector pins it (for indexed look-ups)."""
        for r in self.requirements:
            if r.key == key:
                if r.operator in (EQUALS, DOUBLE_EQUALS, IN) and len(r.values) == 1:
                    return r.values[0]
                return None
        return None

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)

    def __repr__(self) -> str:
        if self._nothing:
            return "LabelSelector(nothing)"
        return f"LabelSelector({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LabelSelector):
            return NotImplemented
        return self._nothing == other._nothing and self.requirements == other.requirements

    def __hash__(self) -> int:
        return hash((self._nothing, self.requirements))


EVERYTHING: Final = LabelSelector()
NOTHING: Final = LabelSelector(nothing=True)


# --- structured forms -------------------------------------------------------

_EXPRESSION_OPERATORS = {
    "In": IN,
    "NotIn": NOT_IN,
    "Exists": EXISTS,
    "DoesNotExist": DOES_NOT_EXIST,
}


def from_label_selector_dict(selector: Mapping[str, Any] | None) -> LabelSelector:
    """A ``metav1.LabelSelector`` (``matchLabels`` / ``matchExpressions``) as a selector.

    As ``metav1.LabelSelectorAsSelector``: ``None`` matches nothing, ``{}`` (or
    both parts empty) matches everything. Invalid keys, values or operators
    raise :class:`SelectorError`.
    """
    if selector is None:
        return NOTHING
    match_labels: Mapping[str, str] = selector.get("matchLabels") or {}
    expressions: list[Mapping[str, Any]] = selector.get("matchExpressions") or []
    if not match_labels and not expressions:
        return EVERYTHING
    requirements = [new_requirement(k, EQUALS, (v,)) for k, v in match_labels.items()]
    for expression in expressions:
        given = expression.get("operator", "")
        operator = _EXPRESSION_OPERATORS.get(given)
        if operator is None:
            raise SelectorError(
                f"{gostrings.quote(str(given))} is not a valid label selector operator"
            )
        values = expression.get("values") or ()
        requirements.append(new_requirement(expression.get("key", ""), operator, values))
    return LabelSelector(requirements)


def selector_from_set(labels: Mapping[str, str] | None) -> LabelSelector:
    """A selector matching exactly these labels (``labels.SelectorFromSet``).

    An empty or missing set matches everything, and nothing is validated, as
    upstream. (That a Service without a selector gets no endpoints is the
    endpoints controller's rule, not this function's.)
    """
    if not labels:
        return EVERYTHING
    return LabelSelector(Requirement(k, EQUALS, (v,)) for k, v in labels.items())
