"""Living with ``kubectl apply`` (client-side) and its last-applied annotation.

Two of upstream's wrappers, both only for the manager named ``kubectl`` (what
``kubectl apply --server-side`` uses; other managers opt out):

* lastappliedmanager — when an apply conflicts only on fields the
  ``kubectl.kubernetes.io/last-applied-configuration`` annotation says were
  client-side applied with the values they still have, the apply is forced, so
  moving from ``kubectl apply`` to ``kubectl apply --server-side`` does not conflict
  with ``kubectl-client-side-apply``;
* lastappliedupdater — after such an apply, an object that carries the
  annotation gets it rewritten to the new configuration, so a later client-side
  apply diffs against what was applied last.

No I/O here: this module is part of the bottom ``api`` layer.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from pilothouse.api.fieldmanager import fieldpath, gotext, typed, validation
from pilothouse.api.fieldmanager.types import Type

ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"
KUBECTL = "kubectl"
TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024


def _annotations(obj: Any) -> dict[str, Any]:
    metadata = obj.get("metadata") if isinstance(obj, dict) else None
    found = metadata.get("annotations") if isinstance(metadata, dict) else None
    return found if isinstance(found, dict) else {}


def allowed_conflicts(live: Any, typ: Type, api_version: str) -> fieldpath.Set | None:
    """Fields the annotation shows as client-side applied with their live values.

    None when there is no usable annotation (then conflicts stand as they are).
    """
    text = _annotations(live).get(ANNOTATION)
    if not isinstance(text, str) or not text:
        return None
    try:
        last = json.loads(text)
    except ValueError:
        return None
    if not isinstance(last, dict) or not last.get("kind"):
        return None
    if last.get("apiVersion") != api_version:
        return None
    if validation.validate(last, typ):
        return None
    fields = typed.to_field_set(last, typ)
    comparison = typed.compare(last, live, typ)
    return fields - comparison.modified - comparison.added - comparison.removed


def encode_config(config: dict[str, Any]) -> str:
    """The annotation's value for an applied configuration (Go's json.Encoder output)."""
    body = copy.copy(config)
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("annotations"), dict):
        metadata = dict(metadata)
        annotations = dict(metadata["annotations"])
        annotations.pop(ANNOTATION, None)
        metadata["annotations"] = annotations
        body["metadata"] = metadata
    return gotext.json_text(body, short_control=True) + "\n"


def update_annotation(result: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """``result`` with its last-applied annotation set to ``config``, if it has one."""
    current = _annotations(result).get(ANNOTATION)
    if not isinstance(current, str) or not current:
        return result
    annotations = dict(_annotations(result))
    annotations[ANNOTATION] = encode_config(config)
    size = sum(len(str(k).encode()) + len(str(v).encode()) for k, v in annotations.items())
    if size > TOTAL_ANNOTATION_SIZE_LIMIT:
        del annotations[ANNOTATION]
    out = dict(result)
    metadata = dict(out.get("metadata") or {})
    metadata["annotations"] = annotations
    out["metadata"] = metadata
    return out
