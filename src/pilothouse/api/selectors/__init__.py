"""Label and field selectors, as Kubernetes parses, prints and matches them.

* :mod:`.labels` and :mod:`.label_parser` — ``labelSelector`` strings,
  ``metav1.LabelSelector`` dicts and label sets, as apimachinery ``pkg/labels``;
* :mod:`.fields` — ``fieldSelector`` strings, as apimachinery ``pkg/fields``;
* :mod:`.selectable` — each kind's selectable fields and the field labels a
  request may use, as ``pkg/registry/*/strategy.go`` and ``pkg/apis/*/conversion.go``;
* :mod:`.names` — label key and value syntax.

Every failure is a :class:`SelectorError` (a ``ValueError``) carrying upstream's
message; the API server answers it as 400 ``BadRequest``. The common entry
points are re-exported here::

    from pilothouse.api import selectors
    sel = selectors.parse_label_selector("app=web,tier in (a,b)")
    sel.matches(obj["metadata"].get("labels"))

No I/O here: this package is part of the bottom ``api`` layer.
"""

from pilothouse.api.selectors.error import SelectorError
from pilothouse.api.selectors.fields import FieldRequirement, FieldSelector, parse_field_selector
from pilothouse.api.selectors.label_parser import parse_label_selector, parse_requirements
from pilothouse.api.selectors.labels import (
    LabelSelector,
    Requirement,
    from_label_selector_dict,
    new_requirement,
    selector_from_set,
)
from pilothouse.api.selectors.selectable import (
    accepted_field_labels,
    check_field_selector,
    convert_field_selector,
    object_fields,
)

__all__ = [
    "FieldRequirement",
    "FieldSelector",
    "LabelSelector",
    "Requirement",
    "SelectorError",
    "accepted_field_labels",
    "check_field_selector",
    "convert_field_selector",
    "from_label_selector_dict",
    "new_requirement",
    "object_fields",
    "parse_field_selector",
    "parse_label_selector",
    "parse_requirements",
    "selector_from_set",
]
