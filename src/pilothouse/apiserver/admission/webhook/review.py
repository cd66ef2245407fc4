"""The ``AdmissionReview`` a webhook receives, and what its answer must be.

Upstream's ``webhook/request`` (``CreateV1AdmissionReview``,
``VerifyAdmissionResponse``) and ``webhook/errors`` (``ToStatusErr``), with their
messages, plus how client-go's REST client reads a reply (a non-2xx status or a
body that is not an object of a known kind is a failed call, worded as client-go
words it).
"""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson

from pilothouse.api import errors
from pilothouse.api.meta import Obj
from pilothouse.apiserver.admission.webhook import matching
from pilothouse.apiserver.webhook import client

V1 = "admission.k8s.io/v1"
V1BETA1 = "admission.k8s.io/v1beta1"


class InvalidResponse(Exception):
    """The webhook answered, but not with a usable AdmissionReview."""


@dataclass(frozen=True, slots=True)
class Answer:
    allowed: bool
    result: dict[str, Any] | None
    patch: bytes = b""
    patch_type: str = ""
    warnings: tuple[str, ...] = ()
    audit_annotations: dict[str, str] = field(default_factory=dict)


def review_version(versions: tuple[str, ...]) -> str | None:
    """The first AdmissionReview version of the webhook's list this server speaks."""
    for version in versions:
        if version == "v1":
            return V1
        if version == "v1beta1":
            return V1BETA1
    return None


def _gvk(kind: matching.GVK) -> dict[str, str]:
    return {"group": kind[0], "version": kind[1], "kind": kind[2]}


def _gvr(resource: Any) -> dict[str, str]:
    return {"group": resource.group, "version": resource.version, "resource": resource.plural}


def request_fields(request: matching.Request, invocation: matching.Invocation) -> dict[str, Any]:
    """The ``AdmissionRequest`` without its uid and objects (also CEL's ``request``)."""
    body: dict[str, Any] = {
        "kind": _gvk(invocation.kind),
        "resource": _gvr(invocation.resource),
    }
    if invocation.subresource:
        body["subResource"] = invocation.subresource
    body["requestKind"] = _gvk(request.kind)
    body["requestResource"] = _gvr(request.resource)
    if request.subresource:
        body["requestSubResource"] = request.subresource
    if request.name:
        body["name"] = request.name
    if request.namespace:
        body["namespace"] = request.namespace
    body["operation"] = request.operation
    body["userInfo"] = request.user
    body["dryRun"] = request.dry_run
    body["options"] = request.options
    return body


def build(
    request: matching.Request,
    invocation: matching.Invocation,
    *,
    api_version: str,
    obj: Obj | None,
    old: Obj | None,
) -> tuple[str, bytes]:
    """The review's uid and JSON body; ``obj``/``old`` in the invocation's version."""
    uid = str(uuid.uuid4())
    # Upstream sends null, not a missing field, where there is no object.
    body = {"uid": uid, **request_fields(request, invocation), "object": obj, "oldObject": old}
    review = {"kind": "AdmissionReview", "apiVersion": api_version, "request": body}
    return uid, orjson.dumps(review)


def _generic_message(status: int, body: bytes) -> str:
    """client-go's ``NewGenericServerResponse`` words for a reply that is no Status."""
    text = body.decode("utf-8", "replace").strip()
    messages = {
        400: "the server rejected our request for an unknown reason",
        401: "Unauthorized",
        403: "forbidden",
        404: "the server could not find the requested resource",
        405: "the server does not allow this method on the requested resource",
        409: "the server reported a conflict",
        413: "the server has rejected the request due to its size",
        415: "the server does not support the media type of the request",
        422: "the server rejected our request due to an error in our request",
        429: "the server has received too many requests and has asked us to try again later",
        503: "the server is currently unable to handle the request",
        504: "the server was unable to return a response in the time allotted, but may still be"
        " processing the request",
    }
    message = messages.get(status)
    if message is None:
        if status >= 500:
            shown = f' ("{text}")' if text else ""
            return f"an error on the server{shown} has prevented the request from succeeding"
        return f"the server responded with the status code {status} but did not return more information"
    if text and status not in (401, 403, 404, 405, 503):
        message += f" ({text})" if status != 400 else ""
    return message


def decode(response: client.Response) -> dict[str, Any]:
    """The reply as client-go's REST client decodes it; failures are call failures."""
    parsed: Any = None
    try:
        parsed = orjson.loads(response.body) if response.body else None
    except orjson.JSONDecodeError:
        parsed = None
    if not 200 <= response.status < 300:
        if isinstance(parsed, dict) and parsed.get("kind") == "Status":
            raise client.CallError(
                str(parsed.get("message") or _generic_message(response.status, b""))
            )
        raise client.CallError(_generic_message(response.status, response.body))
    if parsed is None and response.body.strip():
        first = response.body.strip()[:1].decode("utf-8", "replace")
        raise client.CallError(
            f"couldn't get version/kind; json parse error: invalid character '{first}' looking "
            "for beginning of value"
        )
    if not isinstance(parsed, dict):
        shown = response.body.decode("utf-8", "replace")
        raise client.CallError(f"Object 'Kind' is missing in '{shown}'")
    if not parsed.get("kind"):
        raise client.CallError(
            f"Object 'Kind' is missing in '{response.body.decode('utf-8', 'replace')}'"
        )
    return parsed


def verify(uid: str, api_version: str, review: dict[str, Any], *, mutating: bool) -> Answer:
    """Upstream's ``VerifyAdmissionResponse``."""
    response = review.get("response")
    if not isinstance(response, dict):
        raise InvalidResponse("webhook response was absent")
    got_version = str(review.get("apiVersion") or "")
    got_kind = str(review.get("kind") or "")
    if api_version == V1:
        if response.get("uid") != uid:
            raise InvalidResponse(
                f'expected response.uid="{uid}", got "{response.get("uid") or ""}"'
            )
        if (got_version, got_kind) != (V1, "AdmissionReview"):
            raise InvalidResponse(
                f"expected webhook response of {V1}, Kind=AdmissionReview, got "
                f"{got_version}, Kind={got_kind}"
            )
    patch = response.get("patch")
    patch_type = response.get("patchType")
    raw_patch = b""
    if patch:
        try:
            raw_patch = base64.b64decode(str(patch), validate=True)
        except (binascii.Error, ValueError):
            raise client.CallError("illegal base64 data at input byte 0") from None
    if mutating:
        if api_version == V1:
            if raw_patch and patch_type is None:
                raise InvalidResponse("webhook returned response.patch but not response.patchType")
            if not raw_patch and patch_type is not None:
                raise InvalidResponse("webhook returned response.patchType but not response.patch")
            if patch_type is not None and not patch_type:
                raise InvalidResponse(
                    f'webhook returned invalid response.patchType of "{patch_type}"'
                )
        elif raw_patch:
            patch_type = "JSONPatch"
    else:
        raw_patch = b""
        if api_version == V1:
            if patch:
                raise InvalidResponse("validating webhook may not return response.patch")
            if patch_type is not None:
                raise InvalidResponse("validating webhook may not return response.patchType")
    result = response.get("status")
    warnings = response.get("warnings") or []
    annotations = response.get("auditAnnotations") or {}
    return Answer(
        allowed=response.get("allowed") is True,
        result=result if isinstance(result, dict) else None,
        patch=raw_patch,
        patch_type=str(patch_type or ""),
        warnings=tuple(str(w) for w in warnings if isinstance(w, str)),
        audit_annotations={str(k): str(v) for k, v in annotations.items()}
        if isinstance(annotations, dict)
        else {},
    )


def denied(webhook: str, result: dict[str, Any] | None) -> errors.StatusError:
    """Upstream's ``ToStatusErr``: the webhook's Status, said to come from the webhook."""
    result = dict(result or {})
    denied_by = f'admission webhook "{webhook}" denied the request'
    code = result.get("code")
    code = code if isinstance(code, int) and code >= 400 else 400
    message = str(result.get("message") or "")
    reason = str(result.get("reason") or "")
    if message:
        text = f"{denied_by}: {message}"
    elif reason:
        text = f"{denied_by}: {reason}"
    else:
        text = f"{denied_by} without explanation"
    details = result.get("details")
    return errors.StatusError(
        code, reason, text, details=details if isinstance(details, dict) else None
    )


def dry_run_unsupported(webhook: str) -> errors.StatusError:
    return errors.bad_request(f'admission webhook "{webhook}" does not support dry run')


def call_failed(webhook: str, reason: str) -> errors.StatusError:
    """A webhook that could not be called, failing closed (500)."""
    return errors.internal(f'failed calling webhook "{webhook}": {reason}')
