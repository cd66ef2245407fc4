"""Who a request comes from: upstream's ``user.Info`` and the request's user in context.

The user travels with the request as upstream's ``request.UserFrom(ctx)`` does: a
:class:`contextvars.ContextVar` set by the authentication middleware for the task
serving that request (aiohttp runs every request in a task of its own, so one
request never sees another's user). Registry code deep below the handlers —
strategies that record who asked for a CertificateSigningRequest, the RBAC
escalation checks — reads it with :func:`current` instead of threading it through
every call.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field

from pilothouse.api import rbac


@dataclass(frozen=True, slots=True)
class UserInfo:
    """A user as authenticators report it: name, uid, groups and extra values."""

    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def is_privileged(self) -> bool:
        return rbac.SYSTEM_PRIVILEGED_GROUP in self.groups

    def to_api(self) -> dict[str, object]:
        """The ``UserInfo`` object of the authentication.k8s.io API."""
        out: dict[str, object] = {"username": self.name}
        if self.uid:
            out["uid"] = self.uid
        if self.groups:
            out["groups"] = list(self.groups)
        if self.extra:
            out["extra"] = {k: list(v) for k, v in self.extra.items()}
        return out


ANONYMOUS = UserInfo(rbac.ANONYMOUS, (rbac.ALL_UNAUTHENTICATED,))
APISERVER = UserInfo(rbac.APISERVER_USER, (rbac.SYSTEM_PRIVILEGED_GROUP, rbac.ALL_AUTHENTICATED))


def with_authenticated(user: UserInfo) -> UserInfo:
    """Add ``system:authenticated`` as upstream's AuthenticatedGroupAdder does: to
    every user but anonymous, unless a group already says (un)authenticated."""
    if user.name == rbac.ANONYMOUS:
        return user
    if rbac.ALL_AUTHENTICATED in user.groups or rbac.ALL_UNAUTHENTICATED in user.groups:
        return user
    return UserInfo(user.name, (*user.groups, rbac.ALL_AUTHENTICATED), user.uid, user.extra)


_CURRENT: contextvars.ContextVar[UserInfo | None] = contextvars.ContextVar(
    "pilothouse_request_user", default=None
)


def current() -> UserInfo | None:
    """The user of the request this task serves (None outside a request)."""
    return _CURRENT.get()


def set_current(user: UserInfo | None) -> contextvars.Token[UserInfo | None]:
    return _CURRENT.set(user)


def reset_current(token: contextvars.Token[UserInfo | None]) -> None:
    _CURRENT.reset(token)
