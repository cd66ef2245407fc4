"""The authorizer chain and upstream's 403 wording.

In kube-apiserver's order: members of ``system:masters`` may do anything (the
privileged-group authorizer), then the Node authorizer speaks for node agents,
then RBAC. An authorizer with no opinion passes the question on; what none allows
is refused, with the reasons they gave joined as upstream's union authorizer joins
them.
"""

from __future__ import annotations

from typing import Protocol

from pilothouse.api import errors
from pilothouse.apiserver.authz import attributes as attrs_module


class Decider(Protocol):
    def authorize(self, a: attrs_module.Attributes) -> tuple[bool, str]:
        """(allowed, reason); not allowed means no opinion."""
        ...


_SANITIZE = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def forbidden_message(a: attrs_module.Attributes) -> str:
    """responsewriters.forbiddenMessage, word for word."""
    name = a.user.name
    if not a.resource_request:
        return f'User "{name}" cannot {a.verb} path "{a.path}"'
    resource = f"{a.resource}/{a.subresource}" if a.subresource else a.resource
    if a.namespace:
        return (
            f'User "{name}" cannot {a.verb} resource "{resource}" in API group '
            f'"{a.api_group}" in the namespace "{a.namespace}"'
        )
    return (
        f'User "{name}" cannot {a.verb} resource "{resource}" in API group '
        f'"{a.api_group}" at the cluster scope'
    )


def forbidden(a: attrs_module.Attributes, reason: str) -> errors.StatusError:
    """The 403 Status kube-apiserver answers a refused request with."""
    message = forbidden_message(a).translate(_SANITIZE)
    why = f"{message}: {reason}" if reason else message
    if not a.resource_request or not a.resource:
        return errors.StatusError(403, errors.FORBIDDEN, f"forbidden: {why}")
    return errors.forbidden(a.resource, a.api_group, a.name, why)


class Authorizer:
    """system:masters, then each decider in turn (Node, RBAC)."""

    def __init__(self, deciders: list[Decider]) -> None:
        self.deciders = deciders

    def authorize(self, a: attrs_module.Attributes) -> tuple[bool, str]:
        if a.user.is_privileged():
            return True, ""
        reasons: list[str] = []
        for decider in self.deciders:
            allowed, reason = decider.authorize(a)
            if allowed:
                return True, reason
            if reason:
                reasons.append(reason)
        return False, "\n".join(reasons)

    def allowed(self, a: attrs_module.Attributes) -> bool:
        return self.authorize(a)[0]

    def check(self, a: attrs_module.Attributes) -> None:
        """Raise upstream's 403 unless ``a`` is allowed."""
        allowed, reason = self.authorize(a)
        if not allowed:
            raise forbidden(a, reason)
