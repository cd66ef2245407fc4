"""CustomResourceDefinitions (``apiextensions.k8s.io/v1``), as pure functions.

* :mod:`.crd` — reading a CRD: versions, schemas, subresources, columns, conditions;
* :mod:`.defaults` and :mod:`.validation` — upstream's defaulting and validation of
  CRDs, with :mod:`.schemarules` for the schema rules (list and map types,
  defaults, CEL rules compiled at write time) and :mod:`.structural` for structurality;
* :mod:`.schemavalidate`, :mod:`.prune`, :mod:`.defaulting`, :mod:`.rules` —
  what a custom resource goes through: pruning of unknown fields, defaulting,
  OpenAPI validation with kube-openapi's messages, ``x-kubernetes-validations``;
* :mod:`.jsonpath` — the simple JSONPaths of printer columns, scale paths and
  selectable fields;
* :mod:`.naming` — the names a CRD may take and the conditions that say so.

No I/O here: this package is part of the bottom ``api`` layer.
"""
