"""The ``audit.k8s.io/v1`` Event of one request, built as upstream builds it.

A :class:`Record` is made when the request is authenticated and its level is
known. Handlers add the request object (level Request and up; at Metadata it
only completes ``objectRef``), the HTTP layer adds the response status and, at
RequestResponse, the response body. :meth:`Record.encode` renders the event of
one stage; fields come in the order of upstream's Go struct, and objects already
encoded as JSON are embedded as they are (no decode and re-encode).
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from pilothouse.apiserver.audit import policy

Obj = dict[str, Any]

MAX_USER_AGENT = 1024
_TRUNCATED = "...TRUNCATED"


def micro_time(ts: float) -> str:
    """metav1.MicroTime: RFC 3339 with microseconds, in UTC (two per event: kept cheap)."""
    seconds = int(ts)
    micros = round((ts - seconds) * 1_000_000)
    if micros == 1_000_000:
        seconds, micros = seconds + 1, 0
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{micros:06d}Z"


def user_agent(value: str) -> str:
    return value if len(value) <= MAX_USER_AGENT else value[:MAX_USER_AGENT] + _TRUNCATED


def user_info(user: Any) -> Obj:
    """authenticationv1.UserInfo of a user (name, uid, groups, extra; empty ones left out)."""
    out: Obj = {}
    if user is None:
        return out
    name = getattr(user, "name", "")
    if name:
        out["username"] = name
    uid = getattr(user, "uid", "")
    if uid:
        out["uid"] = uid
    groups = list(getattr(user, "groups", ()) or ())
    if groups:
        out["groups"] = groups
    extra = getattr(user, "extra", None)
    if extra:
        out["extra"] = {
            k: list(v) if isinstance(v, list | tuple) else [v] for k, v in extra.items()
        }
    return out


class Record:
    """One request's audit event, filled in as the request goes."""

    __slots__ = (
        "annotations",
        "audit_id",
        "impersonated_user",
        "level",
        "object_ref",
        "omit_managed_fields",
        "omit_stages",
        "received",
        "request_object",
        "request_uri",
        "response_object",
        "response_status",
        "source_ips",
        "user",
        "user_agent",
        "verb",
    )

    def __init__(
        self,
        *,
        audit_id: str,
        decision: policy.Decision,
        received: float,
        verb: str,
        request_uri: str,
        user: Obj,
        source_ips: list[str],
        user_agent: str,
        object_ref: Obj | None,
        annotations: dict[str, str],
    ) -> None:
        self.audit_id = audit_id
        self.level = decision.level
        self.omit_stages = decision.omit_stages
        self.omit_managed_fields = decision.omit_managed_fields
        self.received = received
        self.verb = verb
        self.request_uri = request_uri
        self.user = user
        self.impersonated_user: Obj | None = None
        self.source_ips = source_ips
        self.user_agent = user_agent
        self.object_ref = object_ref
        self.annotations = annotations
        self.request_object: bytes | None = None
        self.response_object: bytes | None = None
        self.response_status: Obj | None = None

    # --- what handlers add ----------------------------------------------------------
    def keeps_request_object(self) -> bool:
        """Whether the request body is recorded (level Request and up); below, handlers
        need not prepare it."""
        return policy.at_least(self.level, policy.REQUEST)

    def request_object_seen(
        self, obj: Obj, *, group: str, version: str, plural: str, subresource: str
    ) -> None:
        """LogRequestObject: complete objectRef from the object; keep it at Request+."""
        ref = self.object_ref
        if ref is None:
            ref = self.object_ref = {}
        md = obj.get("metadata") if isinstance(obj, dict) else None
        if isinstance(md, dict):
            for key, field in (
                ("namespace", "namespace"),
                ("name", "name"),
                ("uid", "uid"),
                ("resourceVersion", "resourceVersion"),
            ):
                if not ref.get(key) and md.get(field):
                    ref[key] = md[field]
        if not ref.get("apiVersion"):
            if group:
                ref["apiGroup"] = group
            ref["apiVersion"] = version
        ref.setdefault("resource", plural)
        if subresource:
            ref.setdefault("subresource", subresource)
        if policy.at_least(self.level, policy.REQUEST):
            self.request_object = self._encode(obj)

    def impersonating(self, user: Any) -> None:
        """LogImpersonatedUser."""
        self.impersonated_user = user_info(user)

    def request_patch(self, patch: bytes) -> None:
        if policy.at_least(self.level, policy.REQUEST):
            self.request_object = patch

    def response_seen(self, code: int, body: bytes | None, content_type: str) -> None:
        """The response's code, its Status fields when it is a Status, and at
        RequestResponse its body."""
        status = self.response_status
        if status is None:
            status = self.response_status = {"metadata": {}}
        if body and content_type.startswith("application/json") and b'"Status"' in body[:200]:
            try:
                decoded = orjson.loads(body)
            except orjson.JSONDecodeError:
                decoded = None
            if isinstance(decoded, dict) and decoded.get("kind") == "Status":
                for key in ("status", "message", "reason", "details"):
                    if decoded.get(key):
                        status[key] = decoded[key]
        status["code"] = code
        if (
            body
            and policy.at_least(self.level, policy.REQUEST_RESPONSE)
            and content_type.startswith("application/json")
        ):
            self.response_object = self._strip(body)

    def _encode(self, obj: Any) -> bytes:
        if (
            self.omit_managed_fields
            and isinstance(obj, dict)
            and isinstance(obj.get("metadata"), dict)
        ):
            obj = {
                **obj,
                "metadata": {k: v for k, v in obj["metadata"].items() if k != "managedFields"},
            }
        return orjson.dumps(obj)

    def _strip(self, body: bytes) -> bytes:
        body = body.strip()
        if self.omit_managed_fields and b'"managedFields"' in body:
            try:
                return self._encode(_without_managed_fields(orjson.loads(body)))
            except orjson.JSONDecodeError:
                return body
        return body

    # --- rendering --------------------------------------------------------------------
    def encode(self, stage: str, stage_time: float) -> bytes:
        event: Obj = {
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "level": self.level,
            "auditID": self.audit_id,
            "stage": stage,
            "requestURI": self.request_uri,
            "verb": self.verb,
            "user": self.user,
        }
        if self.impersonated_user is not None:
            event["impersonatedUser"] = self.impersonated_user
        if self.source_ips:
            event["sourceIPs"] = self.source_ips
        if self.user_agent:
            event["userAgent"] = self.user_agent
        if self.object_ref:
            event["objectRef"] = _ordered_ref(self.object_ref)
        if self.response_status is not None and stage != policy.REQUEST_RECEIVED:
            event["responseStatus"] = _ordered_status(self.response_status)
        if self.request_object is not None:
            event["requestObject"] = orjson.Fragment(self.request_object)
        if self.response_object is not None and stage != policy.REQUEST_RECEIVED:
            event["responseObject"] = orjson.Fragment(self.response_object)
        event["requestReceivedTimestamp"] = micro_time(self.received)
        event["stageTimestamp"] = micro_time(stage_time)
        if self.annotations:
            event["annotations"] = dict(sorted(self.annotations.items()))
        return orjson.dumps(event)


_REF_ORDER = (
    "resource",
    "namespace",
    "name",
    "uid",
    "apiGroup",
    "apiVersion",
    "resourceVersion",
    "subresource",
)
_STATUS_ORDER = ("metadata", "status", "message", "reason", "details", "code")


def _ordered_ref(ref: Obj) -> Obj:
    return {k: ref[k] for k in _REF_ORDER if ref.get(k)}


def _ordered_status(status: Obj) -> Obj:
    return {k: status[k] for k in _STATUS_ORDER if k in status}


def _without_managed_fields(value: Any) -> Any:
    if isinstance(value, dict):
        md = value.get("metadata")
        if isinstance(md, dict) and "managedFields" in md:
            value = {**value, "metadata": {k: v for k, v in md.items() if k != "managedFields"}}
        if isinstance(value.get("items"), list):
            value = {**value, "items": [_without_managed_fields(i) for i in value["items"]]}
    return value
