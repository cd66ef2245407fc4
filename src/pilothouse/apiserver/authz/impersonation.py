"""Impersonation: ``Impersonate-User``/``-Group``/``-Uid``/``-Extra-*`` headers
(``kubectl --as``/``--as-group``), as upstream's WithImpersonation filter.

Each thing asked for is authorized with the ``impersonate`` verb on ``users``,
``groups``, ``serviceaccounts`` (for ``system:serviceaccount:<ns>:<name>``),
``uids`` or ``userextras/<key>``; the first refusal is a 403 worded as upstream's.
The new user gets ``system:authenticated`` (or ``system:unauthenticated`` when
impersonating ``system:anonymous``); impersonating a service account without
naming groups gives it the account's groups.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping

from pilothouse.api import errors, rbac
from pilothouse.apiserver.authn import user as user_module
from pilothouse.apiserver.authz import attributes as attrs_module
from pilothouse.apiserver.authz import authorizer as authorizer_module

USER_HEADER = "Impersonate-User"
GROUP_HEADER = "Impersonate-Group"
UID_HEADER = "Impersonate-Uid"
EXTRA_PREFIX = "Impersonate-Extra-"


def requested(headers: Mapping[str, str]) -> bool:
    return any(k.lower().startswith("impersonate-") for k in headers)


def impersonate(
    requestor: user_module.UserInfo,
    headers: Mapping[str, str],
    authorizer: authorizer_module.Authorizer,
) -> user_module.UserInfo:
    """The user the request acts as; raises 403 when the requestor may not."""
    values = _header_values(headers)
    wanted_user = (values.get(USER_HEADER.lower()) or [""])[0]
    groups_requested = values.get(GROUP_HEADER.lower()) or []
    uid = (values.get(UID_HEADER.lower()) or [""])[0]
    extras: dict[str, list[str]] = {}
    for key, vals in values.items():
        if key.startswith(EXTRA_PREFIX.lower()):
            extra_key = urllib.parse.unquote(key[len(EXTRA_PREFIX) :].lower())
            extras.setdefault(extra_key, []).extend(vals)
    if (groups_requested or extras or uid) and not wanted_user:
        raise errors.internal(
            "requested impersonation of groups, extra or uid without impersonating a user"
        )

    name = ""
    groups: list[str] = []
    checks: list[attrs_module.Attributes] = []
    if wanted_user:
        service_account = rbac.split_service_account_username(wanted_user)
        if service_account is not None:
            ns, sa = service_account
            checks.append(
                attrs_module.resource(
                    requestor,
                    verb="impersonate",
                    group="",
                    resource="serviceaccounts",
                    namespace=ns,
                    name=sa,
                    version="v1",
                )
            )
            if not groups_requested:
                groups = rbac.service_account_groups(ns)
        else:
            checks.append(
                attrs_module.resource(
                    requestor,
                    verb="impersonate",
                    group="",
                    resource="users",
                    name=wanted_user,
                    version="v1",
                )
            )
        name = wanted_user
    for group in groups_requested:
        checks.append(
            attrs_module.resource(
                requestor, verb="impersonate", group="", resource="groups", name=group, version="v1"
            )
        )
        groups.append(group)
    for key, vals in extras.items():
        for value in vals:
            checks.append(
                attrs_module.resource(
                    requestor,
                    verb="impersonate",
                    group="authentication.k8s.io",
                    resource="userextras",
                    subresource=key,
                    name=value,
                    version="v1",
                )
            )
    if uid:
        checks.append(
            attrs_module.resource(
                requestor,
                verb="impersonate",
                group="authentication.k8s.io",
                resource="uids",
                name=uid,
                version="v1",
            )
        )
    for check in checks:
        allowed, reason = authorizer.authorize(check)
        if not allowed:
            raise authorizer_module.forbidden(check, reason)

    if name != rbac.ANONYMOUS:
        if rbac.ALL_AUTHENTICATED not in groups and rbac.ALL_UNAUTHENTICATED not in groups:
            groups.append(rbac.ALL_AUTHENTICATED)
    elif rbac.ALL_UNAUTHENTICATED not in groups:
        groups.append(rbac.ALL_UNAUTHENTICATED)
    return user_module.UserInfo(name, tuple(groups), uid, {k: tuple(v) for k, v in extras.items()})


def _header_values(headers: Mapping[str, str]) -> dict[str, list[str]]:
    """Header values by lower-cased name, every occurrence (``--as-group`` repeats)."""
    out: dict[str, list[str]] = {}
    getall = getattr(headers, "getall", None)
    for key in {k for k in headers if k.lower().startswith("impersonate-")}:
        vals = list(getall(key)) if getall is not None else [headers[key]]
        out.setdefault(key.lower(), []).extend(vals)
    return out
