"""CertificateSigningRequests (``pkg/registry/certificates/certificates/strategy.go``).

On create the request is stamped with who asked (``spec.username``, ``uid``,
``groups``, ``extra`` from the request's user — never from the body) and its status
is cleared. The spec never changes afterwards; ``/status`` writes the issued
certificate and conditions, ``/approval`` only the Approved/Denied conditions
(:func:`approval_update`). Condition timestamps are filled in as upstream does.
"""

from __future__ import annotations

from typing import Any

from pilothouse.api import errors, meta
from pilothouse.api.meta import Obj
from pilothouse.api.validation import certificates as csr_validation
from pilothouse.api.validation import meta as meta_validation
from pilothouse.apiserver.authn import user as user_module
from pilothouse.apiserver.registry.strategy import Strategy


def populate_condition_timestamps(new: Obj, old: Obj | None) -> None:
    now = meta.now()
    old_conditions = ((old or {}).get("status") or {}).get("conditions") or []
    for cond in (new.get("status") or {}).get("conditions") or []:
        if not isinstance(cond, dict):
            continue
        if not cond.get("lastUpdateTime"):
            cond["lastUpdateTime"] = now
        if not cond.get("lastTransitionTime"):
            match = next(
                (
                    c
                    for c in old_conditions
                    if c.get("type") == cond.get("type")
                    and c.get("status") == cond.get("status")
                    and c.get("lastTransitionTime")
                ),
                None,
            )
            cond["lastTransitionTime"] = match["lastTransitionTime"] if match else now


class CSRStrategy(Strategy):
    def prepare_for_create(self, obj: Obj) -> None:
        obj.pop("status", None)
        spec: dict[str, Any] = obj.setdefault("spec", {})
        for field in ("username", "uid", "groups", "extra"):
            spec.pop(field, None)
        user = user_module.current()
        if user is not None:
            spec["username"] = user.name
            if user.uid:
                spec["uid"] = user.uid
            if user.groups:
                spec["groups"] = list(user.groups)
            if user.extra:
                spec["extra"] = {k: list(v) for k, v in user.extra.items()}

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        new["spec"] = old.get("spec")
        if "status" in old:
            new["status"] = old["status"]
        else:
            new.pop("status", None)

    def prepare_for_status_update(self, new: Obj, old: Obj) -> None:
        status = new.get("status")
        super().prepare_for_status_update(new, old)
        if status is not None:
            new["status"] = status
        populate_condition_timestamps(new, old)

    def validate_status_update(self, new: Obj, old: Obj) -> list[errors.FieldError]:
        return meta_validation.validate_object_meta_update(
            new, old
        ) + csr_validation.validate_csr_status_update(new, old)


def approval_update(body: Obj, current: Obj) -> Obj:
    """The object an ``/approval`` write stores: the current one with the body's
    conditions (upstream's approvalStrategy); raises 422 for invalid conditions."""
    new = meta.deep_copy(current)
    conditions = (body.get("status") or {}).get("conditions")
    status = new.setdefault("status", {})
    if conditions:
        status["conditions"] = [dict(c) for c in conditions if isinstance(c, dict)]
        for cond in status["conditions"]:
            if not cond.get("status"):
                cond["status"] = "True"
    else:
        status.pop("conditions", None)
    body_md = body.get("metadata") or {}
    if body_md.get("resourceVersion"):
        new["metadata"]["resourceVersion"] = body_md["resourceVersion"]
    populate_condition_timestamps(new, current)
    errs = csr_validation.validate_csr_approval_update(new, current)
    if errs:
        raise errors.invalid(
            "CertificateSigningRequest",
            "certificates.k8s.io",
            current["metadata"].get("name", ""),
            errs,
        )
    return new
