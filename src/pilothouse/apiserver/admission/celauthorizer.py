"""The ``authorizer`` of admission's CEL expressions (ValidatingAdmissionPolicy, webhook
match conditions), answered by this server's authorizer.

Upstream's ``authorizer`` variable asks the API server's authorizer (RBAC, Node …)
whether the request's user — or a service account named with
``authorizer.serviceAccount(ns, name)`` — may do something: ``check`` builds
``authorizer.Attributes`` from what the expression named and takes the authorizer's
decision, ``allow`` or ``deny`` with its reason. Within one evaluation (a policy
with one param, a webhook's match conditions) every answer is remembered, as
upstream's caching authorizer does, so expressions asking the same thing ask once.
The authorizer is synchronous: no I/O, as RBAC reads its index in memory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pilothouse.api.cel.library import authz
from pilothouse.apiserver.authn import user as user_module
from pilothouse.apiserver.authz import attributes as attrs_module

if TYPE_CHECKING:
    from pilothouse.apiserver.admission.webhook import matching
    from pilothouse.apiserver.authz.authorizer import Authorizer


def variable(request: matching.Request) -> dict[str, Any]:
    """The ``authorizer`` value for ``request``: its user, and as ``requestResource``
    the resource, subresource, namespace and name the request is for."""
    resource = request.resource
    return authz.authorizer(
        request.user,
        {
            "group": resource.group,
            "resource": resource.plural,
            "subresource": request.subresource,
            "namespace": request.namespace,
            "name": request.name,
        },
    )


def _user(info: dict[str, Any]) -> user_module.UserInfo:
    extra = info.get("extra") or {}
    return user_module.UserInfo(
        name=str(info.get("username") or ""),
        groups=tuple(str(g) for g in info.get("groups") or ()),
        uid=str(info.get("uid") or ""),
        extra={str(k): tuple(str(v) for v in vs or ()) for k, vs in extra.items()},
    )


def decider(authorizer: Authorizer | None) -> authz.Decide:
    """``check``'s decisions for one evaluation, remembered per question."""
    seen: dict[str, tuple[str, str]] = {}

    def decide(asked: dict[str, Any]) -> tuple[str, str]:
        key = repr(sorted(asked.items()))
        found = seen.get(key)
        if found is not None:
            return found
        if authorizer is None:
            # Authorization is off (AlwaysAllow): everything is allowed.
            found = ("allow", "")
        else:
            attrs = attrs_module.Attributes(
                user=_user(asked.get("user") or {}),
                verb=str(asked["verb"]),
                resource_request=bool(asked["resourceRequest"]),
                path=str(asked.get("path") or ""),
                api_group=str(asked.get("group") or ""),
                api_version="*",  # as upstream's library asks
                namespace=str(asked.get("namespace") or ""),
                resource=str(asked.get("resource") or ""),
                subresource=str(asked.get("subresource") or ""),
                name=str(asked.get("name") or ""),
            )
            allowed, reason = authorizer.authorize(attrs)
            found = ("allow" if allowed else "deny", reason)
        seen[key] = found
        return found

    return decide
