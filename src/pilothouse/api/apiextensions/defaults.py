"""Upstream's defaulting of CustomResourceDefinitions (``apiextensions/v1/defaults.go``).

``names.singular`` (the kind in lower case), ``names.listKind`` (kind + ``List``),
``conversion.strategy: None``, a webhook service's ``port: 443``, and
``status.storedVersions`` (the storage version) for a new CRD.

No I/O here: this module is part of the bottom ``api`` layer.
"""

from __future__ import annotations

from typing import Any

from pilothouse.api.apiextensions import crd as crds


def apply(obj: dict[str, Any]) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    names = spec.get("names")
    if isinstance(names, dict):
        kind = names.get("kind")
        if not names.get("singular") and isinstance(kind, str):
            names["singular"] = kind.lower()
        if not names.get("listKind") and isinstance(kind, str) and kind:
            names["listKind"] = kind + "List"
    conversion = spec.get("conversion")
    if conversion is None:
        spec["conversion"] = {"strategy": "None"}
    elif isinstance(conversion, dict):
        webhook = conversion.get("webhook")
        config = webhook.get("clientConfig") if isinstance(webhook, dict) else None
        service = config.get("service") if isinstance(config, dict) else None
        if isinstance(service, dict) and service.get("port") is None:
            service["port"] = 443
    for version in crds.versions(obj):
        # served and storage are required booleans in v1; keep them present.
        version.setdefault("served", False)
        version.setdefault("storage", False)
    status = obj.get("status")
    if isinstance(status, dict) and not status.get("storedVersions"):
        stored = crds.storage_version(obj)
        if stored:
            status["storedVersions"] = [stored]
