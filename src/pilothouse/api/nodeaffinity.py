"""Does a pod fit a node's labels, name and taints? One node at a time (upstream's
``component-helpers/scheduling/corev1``: ``nodeaffinity`` and ``FindMatchingUntoleratedTaint``).

Controllers that place pods without the scheduler's vectorised tables (the DaemonSet
controller decides which nodes should run a daemon pod) ask here, with the
scheduler's semantics:

* ``nodeSelector``: every label equal;
* required node affinity: terms are ORed; within a term, ``matchExpressions`` on labels
  (In, NotIn, Exists, DoesNotExist, Gt, Lt) and ``matchFields`` on ``metadata.name``
  (In, NotIn with one value) are ANDed; an empty term, or one that cannot be parsed,
  matches nothing;
* a toleration tolerates a taint when the effects agree (or the toleration has none),
  the keys agree (or an ``Exists`` toleration has none), and the values are equal
  (``Equal``) or ignored (``Exists``).

No I/O here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pilothouse.api.meta import Obj

NAME_FIELD = "metadata.name"


def _int64(text: str) -> int | None:
    try:
        value = int(text, 10)
    except ValueError:
        return None
    return value if -(2**63) <= value < 2**63 else None


def _expression_matches(req: Mapping[str, Any], labels: Mapping[str, str]) -> bool | None:
    """One ``matchExpressions`` requirement; None when it cannot be parsed."""
    key = req.get("key") or ""
    op = req.get("operator") or ""
    values = list(req.get("values") or [])
    has = key in labels
    if op == "In":
        return has and labels[key] in values if values else None
    if op == "NotIn":
        return (not has or labels[key] not in values) if values else None
    if op == "Exists":
        return has if not values else None
    if op == "DoesNotExist":
        return (not has) if not values else None
    if op in ("Gt", "Lt"):
        if len(values) != 1:
            return None
        bound = _int64(str(values[0]))
        if bound is None:
            return None
        have = _int64(labels[key]) if has else None
        if have is None:
            return False
        return have > bound if op == "Gt" else have < bound
    return None


def _field_matches(req: Mapping[str, Any], node_name: str) -> bool | None:
    op = req.get("operator") or ""
    values = list(req.get("values") or [])
    if req.get("key") != NAME_FIELD or op not in ("In", "NotIn") or len(values) != 1:
        return None
    return (node_name == str(values[0])) == (op == "In")


def term_matches(term: Mapping[str, Any], labels: Mapping[str, str], node_name: str) -> bool:
    expressions = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not expressions and not fields:
        return False
    for req in expressions:
        if not _expression_matches(req, labels):
            return False
    return all(_field_matches(req, node_name) for req in fields)


def node_selector_matches(selector: Mapping[str, Any] | None, node: Obj) -> bool:
    """A ``NodeSelector`` (its terms ORed); None matches every node."""
    if selector is None:
        return True
    md = node.get("metadata") or {}
    labels = md.get("labels") or {}
    name = str(md.get("name", ""))
    return any(term_matches(t, labels, name) for t in selector.get("nodeSelectorTerms") or [])


def required_node_affinity_matches(pod_spec: Mapping[str, Any], node: Obj) -> bool:
    """``nodeSelector`` and required node affinity (``GetRequiredNodeAffinity(pod).Match``)."""
    labels = (node.get("metadata") or {}).get("labels") or {}
    for key, value in (pod_spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return False
    affinity = (pod_spec.get("affinity") or {}).get("nodeAffinity") or {}
    return node_selector_matches(
        affinity.get("requiredDuringSchedulingIgnoredDuringExecution"), node
    )


# --- taints and tolerations -----------------------------------------------------------------
def tolerates(toleration: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    """``Toleration.ToleratesTaint``."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    if key and key != taint.get("key"):
        return False
    op = toleration.get("operator") or "Equal"
    if op == "Exists":
        return True
    if op == "Equal":
        return (toleration.get("value") or "") == (taint.get("value") or "")
    return False


def find_untolerated_taint(
    taints: Iterable[Mapping[str, Any]],
    tolerations: Iterable[Mapping[str, Any]],
    include: Callable[[Mapping[str, Any]], bool] = lambda _t: True,
) -> Mapping[str, Any] | None:
    """The first taint ``include`` selects that no toleration tolerates
    (``FindMatchingUntoleratedTaint``)."""
    tols = list(tolerations)
    for taint in taints:
        if include(taint) and not any(tolerates(t, taint) for t in tols):
            return taint
    return None


def matches_toleration(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Same key, operator, value and effect (``Toleration.MatchToleration``)."""
    return (
        (a.get("key") or "") == (b.get("key") or "")
        and (a.get("operator") or "") == (b.get("operator") or "")
        and (a.get("value") or "") == (b.get("value") or "")
        and (a.get("effect") or "") == (b.get("effect") or "")
    )
