"""Cell formatting shared by many kinds: labels, selectors, containers, lists.

Each helper mirrors one upstream function: ``labels.FormatLabels``,
``metav1.FormatLabelSelector``, ``LabelSelectorAsSelector(...).String()``,
``layoutContainerCells``, ``listWithMoreString``, ``net.JoinHostPort`` and
``IntOrString.String``.
"""

from __future__ import annotations

from typing import Any

NONE = "<none>"
UNSET = "<unset>"


class SelectorError(ValueError):
    """A label selector that upstream could not turn into a ``labels.Selector``."""


def format_labels(labels: dict[str, str] | None) -> str:
    """``labels.FormatLabels``: ``a=1,b=2`` sorted as whole strings, else ``<none>``."""
    if not labels:
        return NONE
    return ",".join(sorted(f"{key}={value}" for key, value in labels.items()))


def _requirement(key: str, operator: Any, values: list[Any]) -> str:
    if operator in ("In", "NotIn"):
        if not values:
            raise SelectorError(f"values for {operator} must not be empty")
        joined = ",".join(sorted(str(v) for v in values))
        word = " in " if operator == "In" else " notin "
        return f"{key}{word}({joined})"
    if operator in ("Exists", "DoesNotExist"):
        if values:
            raise SelectorError(f"values for {operator} must be empty")
        return key if operator == "Exists" else f"!{key}"
    raise SelectorError(f"{operator!r} is not a valid label selector operator")


def selector_string(selector: dict[str, Any] | None) -> str:
    """``LabelSelectorAsSelector(selector).String()``.

    A missing selector selects nothing and an empty one everything; both print
    as the empty string. Raises :class:`SelectorError` where upstream errs.
    """
    if selector is None:
        return ""
    match_labels = selector.get("matchLabels") or {}
    expressions = selector.get("matchExpressions") or []
    if not match_labels and not expressions:
        return ""
    # (key, text) pairs, sorted by key only: Go sorts requirements by key with
    # an insertion sort at these sizes, which keeps equal keys in input order.
    requirements = [(key, f"{key}={value}") for key, value in match_labels.items()]
    for expr in expressions:
        key = expr.get("key", "")
        requirements.append(
            (key, _requirement(key, expr.get("operator"), expr.get("values") or []))
        )
    requirements.sort(key=lambda pair: pair[0])
    return ",".join(text for _, text in requirements)


def format_label_selector(selector: dict[str, Any] | None) -> str:
    """``metav1.FormatLabelSelector``: ``<none>`` when empty, ``<error>`` when invalid."""
    try:
        text = selector_string(selector)
    except SelectorError:
        return "<error>"
    return text or NONE


def container_cells(containers: list[dict[str, Any]] | None) -> tuple[str, str]:
    """``layoutContainerCells``: container names and images, comma-joined."""
    if not containers:
        return "", ""
    names = ",".join(c.get("name", "") for c in containers)
    images = ",".join(c.get("image", "") for c in containers)
    return names, images


def list_with_more(items: list[str], total: int, limit: int = 3) -> str:
    """``listWithMoreString``: ``a,b,c + 2 more...``, or ``<unset>`` when empty.

    ``items`` holds at most ``limit`` entries out of ``total``.
    """
    text = ",".join(items)
    if total > limit:
        return f"{text} + {total - limit} more..."
    return text or UNSET


def join_host_port(host: str, port: Any) -> str:
    """``net.JoinHostPort``: brackets around hosts that contain a colon."""
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def int_or_string(value: Any) -> str:
    """``IntOrString.String()`` of a JSON int-or-string."""
    if isinstance(value, bool):  # not a valid IntOrString; show what is there
        return str(value).lower()
    return str(value)


def bool_pointer(value: Any) -> str:
    """``printBoolPtr``: ``True``, ``False`` or ``<unset>``."""
    if value is None:
        return UNSET
    return "True" if value else "False"
