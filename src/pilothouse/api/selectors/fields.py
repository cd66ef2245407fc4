"""Field selectors: the ``fieldSelector`` query string.

Mirrors apimachinery ``pkg/fields/selector.go`` (v0.32): comma-separated terms
``field=value``, ``field==value`` or ``field!=value`` joined by AND; in values a
backslash escapes ``\\``, ``,`` and ``=``. Terms are sorted as text before they
are parsed, so the canonical string is deterministic. A field an object does not
have reads as ``""`` (``spec.nodeName=`` selects unscheduled pods).

Which fields a kind offers, and which a request may name, is
:mod:`pilothouse.api.selectors.selectable`'s business.

No I/O here: this module is part of the bottom ``api`` layer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from pilothouse.api.selectors.error import SelectorError

EQUALS: Final = "="
NOT_EQUALS: Final = "!="

# "==" is tried before "=" so that it leaves no "=" on the value.
_TERM_OPERATORS = ("!=", "==", "=")


@dataclass(frozen=True, slots=True)
class FieldRequirement:
    """``field = value`` or ``field != value``."""

    field: str
    operator: str
    value: str

    def matches(self, fields: Mapping[str, str]) -> bool:
        if self.operator == EQUALS:
            return fields.get(self.field, "") == self.value
        return fields.get(self.field, "") != self.value

    def __str__(self) -> str:
        return f"{self.field}{self.operator}{escape_value(self.value)}"


# A function turning a requested (field, value) into the stored one, or raising
# SelectorError; a result of ("", "") drops the term (upstream's TransformFunc).
Transform = Callable[[str, str], tuple[str, str]]


class FieldSelector:
    """An AND of field requirements."""

    __slots__ = ("terms",)

    def __init__(self, terms: Iterable[FieldRequirement] = ()) -> None:
        self.terms: tuple[FieldRequirement, ...] = tuple(terms)

    @property
    def requirements(self) -> list[tuple[str, str, str]]:
        """``(field, operator, value)`` for each term; operator is ``"="`` or ``"!="``."""
        return [(t.field, t.operator, t.value) for t in self.terms]

    @property
    def empty(self) -> bool:
        return not self.terms

    def matches(self, fields: Mapping[str, str]) -> bool:
        return all(t.matches(fields) for t in self.terms)

    def requires_exact_match(self, field: str) -> str | None:
        """The one value ``field`` must have, if a term pins it (``metadata.name=x``)."""
        for t in self.terms:
            if t.field == field and t.operator == EQUALS:
                return t.value
        return None

    def transform(self, fn: Transform) -> FieldSelector:
        """Rewrite every term through ``fn`` (field label conversion); errors propagate."""
        out: list[FieldRequirement] = []
        for t in self.terms:
            field, value = fn(t.field, t.value)
            if field or value:
                out.append(FieldRequirement(field, t.operator, value))
        return FieldSelector(out)

    def __str__(self) -> str:
        return ",".join(str(t) for t in self.terms)

    def __repr__(self) -> str:
        return f"FieldSelector({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FieldSelector):
            return NotImplemented
        return self.terms == other.terms

    def __hash__(self) -> int:
        return hash(self.terms)


EVERYTHING: Final = FieldSelector()


def escape_value(value: str) -> str:
    """Escape ``\\``, ``,`` and ``=`` for use as a field selector value."""
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def unescape_value(text: str) -> str:
    """Undo :func:`escape_value`; bare ``,``/``=`` and unknown escapes are errors."""
    if "\\" not in text and "," not in text and "=" not in text:
        return text
    out: list[str] = []
    escaped = False
    for ch in text:
        if escaped:
            if ch not in "\\,=":
                raise SelectorError(f"invalid field selector: invalid escape sequence: \\{ch}")
            out.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch in ",=":
            # Upstream prints the rune as a number (Go's %v of a rune).
            raise SelectorError(f"invalid field selector: unescaped character in value: {ord(ch)}")
        else:
            out.append(ch)
    if escaped:
        raise SelectorError("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not escaped; escapes stay in the terms."""
    if not text:
        return []
    terms: list[str] = []
    start = 0
    escaped = False
    for i, ch in enumerate(text):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ",":
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return terms


def _split_term(term: str) -> tuple[str, str, str] | None:
    # The field itself has no escaping: the first operator found splits.
    for i in range(len(term)):
        for op in _TERM_OPERATORS:
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op) :]
    return None


def parse_field_selector(text: str) -> FieldSelector:
    """Parse a ``fieldSelector`` string (``""`` selects everything).

    Raises :class:`SelectorError` worded as upstream (``invalid selector: …;
    can't understand …``, ``invalid field selector: …``).
    """
    terms: list[FieldRequirement] = []
    for part in sorted(_split_terms(text)):
        if not part:
            continue
        split = _split_term(part)
        if split is None:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{part}'")
        field, op, raw = split
        value = unescape_value(raw)
        terms.append(FieldRequirement(field, NOT_EQUALS if op == "!=" else EQUALS, value))
    return FieldSelector(terms)


def selector_from_set(fields: Mapping[str, str]) -> FieldSelector:
    """A selector requiring each field to equal its value (``fields.SelectorFromSet``)."""
    return FieldSelector(FieldRequirement(f, EQUALS, v) for f, v in fields.items())
