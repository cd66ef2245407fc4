"""Kubernetes' authorizer library for admission CEL (upstream's ``library.Authz``).

``authorizer.group('apps').resource('deployments').namespace('dev').check('create')``
gives a decision with ``allowed()``, ``reason()``, ``errored()`` and ``error()``;
``authorizer.path('/healthz').check('get')`` checks a non-resource URL;
``authorizer.serviceAccount('ns', 'sa')`` asks for another user;
``authorizer.requestResource`` is the request's own resource, ready to ``check``.
Resource checks ask for API version ``*``, as upstream's do.

The builders are pure: each value is an opaque map (:mod:`.opaque`) carrying the user
and what has been named so far, as JSON. Only ``check`` asks a real authorizer, so it
is not here: the admission plugin that owns one hands the engine a ``check`` of its
own (:func:`checker`); without one an expression calling ``check`` fails to evaluate.

No I/O here: this module is part of the bottom ``api`` layer.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pilothouse.api.cel.library import opaque
from pilothouse.api.validation import names

AUTHORIZER = "\x00kubernetes.authorization.Authorizer"
PATH_CHECK = "\x00kubernetes.authorization.PathCheck"
GROUP_CHECK = "\x00kubernetes.authorization.GroupCheck"
RESOURCE_CHECK = "\x00kubernetes.authorization.ResourceCheck"
DECISION = "\x00kubernetes.authorization.Decision"

# (what to check) -> ("allow" | "deny" | "error", reason or error)
Decide = Callable[[dict[str, Any]], tuple[str, str]]


def _wrap(kind: str, state: dict[str, Any]) -> dict[str, str]:
    return opaque.wrap(kind, json.dumps(state, sort_keys=True))


def _state(kind: str, value: Any) -> dict[str, Any]:
    if isinstance(value, dict) and kind in value and isinstance(value[kind], str):
        found: dict[str, Any] = json.loads(value[kind])
        return found
    raise opaque.NoSuchOverload()


def authorizer(user: dict[str, Any], request_resource: dict[str, str]) -> dict[str, Any]:
    """The ``authorizer`` variable for a request by ``user`` (``authorization.k8s.io``
    UserInfo fields), with ``requestResource`` set to the request's resource."""
    value: dict[str, Any] = _wrap(AUTHORIZER, {"user": user})
    value["requestResource"] = _wrap(
        RESOURCE_CHECK, {"user": user, "subresource": "", "name": "", **request_resource}
    )
    return value


def path(value: Any, text: Any) -> dict[str, str]:
    if not isinstance(text, str):
        raise opaque.NoSuchOverload()
    if not text.strip():
        raise ValueError("path must not be empty")
    return _wrap(PATH_CHECK, {"user": _state(AUTHORIZER, value)["user"], "path": text})


def group(value: Any, name: Any) -> dict[str, str]:
    if not isinstance(name, str):
        raise opaque.NoSuchOverload()
    return _wrap(GROUP_CHECK, {"user": _state(AUTHORIZER, value)["user"], "group": name})


def service_account(value: Any, namespace: Any, name: Any) -> dict[str, Any]:
    """Upstream's ``serviceaccount.UserInfo(namespace, name, "")``."""
    if not isinstance(namespace, str) or not isinstance(name, str):
        raise opaque.NoSuchOverload()
    _state(AUTHORIZER, value)
    if names.is_dns1123_subdomain(name):
        raise ValueError("Invalid service account name")
    if names.is_dns1123_label(namespace):
        raise ValueError("Invalid service account namespace")
    user = {
        "username": f"system:serviceaccount:{namespace}:{name}",
        "groups": ["system:serviceaccounts", f"system:serviceaccounts:{namespace}"],
    }
    return _wrap(AUTHORIZER, {"user": user})


def resource(value: Any, name: Any) -> dict[str, str]:
    if not isinstance(name, str):
        raise opaque.NoSuchOverload()
    if not name.strip():
        raise ValueError("resource must not be empty")
    state = _state(GROUP_CHECK, value)
    return _wrap(
        RESOURCE_CHECK,
        {
            "user": state["user"],
            "group": state["group"],
            "resource": name,
            "subresource": "",
            "namespace": "",
            "name": "",
        },
    )


def _setter(key: str) -> Callable[[Any, Any], dict[str, str]]:
    def set_(value: Any, text: Any) -> dict[str, str]:
        if not isinstance(text, str):
            raise opaque.NoSuchOverload()
        return _wrap(RESOURCE_CHECK, {**_state(RESOURCE_CHECK, value), key: text})

    return set_


subresource = _setter("subresource")
namespace = _setter("namespace")
name = _setter("name")
# AuthorizeWithSelectors (beta, on in 1.32): carried to the authorizer, which may use them.
field_selector = _setter("fieldSelector")
label_selector = _setter("labelSelector")


def checker(decide: Decide) -> Callable[[Any, Any], dict[str, str]]:
    """``check(verb)`` on a resource or path check, deciding with ``decide``."""

    def check(value: Any, verb: Any) -> dict[str, str]:
        if not isinstance(verb, str):
            raise opaque.NoSuchOverload()
        if isinstance(value, dict) and RESOURCE_CHECK in value:
            asked = {**_state(RESOURCE_CHECK, value), "verb": verb, "resourceRequest": True}
        else:
            asked = {**_state(PATH_CHECK, value), "verb": verb, "resourceRequest": False}
        decision, text = decide(asked)
        if decision == "error":
            return _wrap(DECISION, {"decision": "deny", "reason": "", "error": text})
        return _wrap(DECISION, {"decision": decision, "reason": text, "error": ""})

    return check


def no_authorizer(value: Any, verb: Any) -> dict[str, str]:
    """``check`` where no authorizer was handed to the engine."""
    raise ValueError("no authorizer is available to this expression")


def allowed(value: Any) -> bool:
    return bool(_state(DECISION, value)["decision"] == "allow")


def reason(value: Any) -> str:
    return str(_state(DECISION, value)["reason"])


def errored(value: Any) -> bool:
    return bool(_state(DECISION, value)["error"])


def error(value: Any) -> str:
    return str(_state(DECISION, value)["error"])
