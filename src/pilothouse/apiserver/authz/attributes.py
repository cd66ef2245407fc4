"""What a request asks to do, as upstream's RequestInfoFactory reads it from the path.

``GET /api/v1/namespaces/dev/pods`` is verb ``list`` on resource ``pods`` in API
group ``""``, namespace ``dev``; ``…?watch=true`` is ``watch``; a DELETE without a
name is ``deletecollection``; a list whose field selector pins ``metadata.name``
names that object (so ``resourceNames`` rules apply). Paths outside ``/api`` and
``/apis/<group>`` are non-resource requests (``get`` on ``/healthz``). The parse is
purely textual, like upstream's: a resource the server does not serve is still
authorized (and refused with a 403 before anyone learns it does not exist).
"""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from dataclasses import dataclass

from pilothouse.apiserver.authn import user as user_module

_METHOD_VERBS = {
    "POST": "create",
    "GET": "get",
    "HEAD": "get",
    "PUT": "update",
    "PATCH": "patch",
    "DELETE": "delete",
}
_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})


@dataclass(frozen=True, slots=True)
class Attributes:
    """upstream's ``authorizer.Attributes``."""

    user: user_module.UserInfo
    verb: str
    resource_request: bool
    path: str = ""
    api_group: str = ""
    api_version: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""

    def with_user(self, user: user_module.UserInfo) -> Attributes:
        return Attributes(
            user,
            self.verb,
            self.resource_request,
            self.path,
            self.api_group,
            self.api_version,
            self.namespace,
            self.resource,
            self.subresource,
            self.name,
        )


def _is_valid_path_segment(name: str) -> bool:
    return name not in (".", "..") and "/" not in name and "%" not in name


def _watch_requested(query: Mapping[str, str]) -> bool:
    value = query.get("watch")
    return value is not None and value.lower() not in ("false", "0")


def _name_from_field_selector(selector: str) -> str:
    """The name a field selector pins with ``metadata.name=X`` (or ``==``), if any."""
    for term in selector.split(","):
        term = term.strip()
        for op in ("==", "="):
            key, sep, value = term.partition(op)
            if sep and key.strip() == "metadata.name" and not key.endswith("!"):
                return value.strip()
    return ""


def from_request(
    user: user_module.UserInfo, method: str, path: str, query: Mapping[str, str]
) -> Attributes:
    parts = [p for p in path.strip("/").split("/") if p] if path.strip("/") else []
    verb_default = method.lower()
    if len(parts) < 3 or parts[0] not in ("api", "apis"):
        return Attributes(user, verb_default, False, path)
    prefix, rest = parts[0], parts[1:]
    group = ""
    if prefix == "apis":
        if len(rest) < 3:
            return Attributes(user, verb_default, False, path)
        group, rest = rest[0], rest[1:]
    version, rest = rest[0], rest[1:]
    if rest[0] in ("watch", "proxy"):
        if len(rest) < 2:
            return Attributes(user, verb_default, False, path)
        verb, rest = rest[0], rest[1:]
    else:
        verb = _METHOD_VERBS.get(method, "")
    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    resource = rest[0] if rest else ""
    name = rest[1] if len(rest) >= 2 else ""
    subresource = rest[2] if len(rest) >= 3 and verb != "proxy" else ""
    if not name and verb == "get":
        verb = "watch" if _watch_requested(query) else "list"
        selected = _name_from_field_selector(query.get("fieldSelector", ""))
        if selected and _is_valid_path_segment(selected):
            name = selected
    if not name and verb == "delete":
        verb = "deletecollection"
    return Attributes(
        user,
        verb,
        True,
        path,
        group,
        version,
        namespace,
        resource,
        subresource,
        name,
    )


def resource(
    user: user_module.UserInfo,
    *,
    verb: str,
    group: str,
    resource: str,
    namespace: str = "",
    name: str = "",
    subresource: str = "",
    version: str = "*",
) -> Attributes:
    """Attributes of a resource check made by the server itself (bind, escalate, …)."""
    return Attributes(user, verb, True, "", group, version, namespace, resource, subresource, name)


_CURRENT: contextvars.ContextVar[Attributes | None] = contextvars.ContextVar(
    "pilothouse_request_attributes", default=None
)


def current() -> Attributes | None:
    """What the request this task serves asks for (upstream's RequestInfo in its
    context), for registry code that must know the subresource or the verb."""
    return _CURRENT.get()


def set_current(a: Attributes | None) -> contextvars.Token[Attributes | None]:
    return _CURRENT.set(a)


def reset_current(token: contextvars.Token[Attributes | None]) -> None:
    _CURRENT.reset(token)
