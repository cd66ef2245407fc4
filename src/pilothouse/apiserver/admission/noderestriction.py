"""NodeRestriction (upstream's admission plugin): a node agent writes only what is its own.

With the Node authorizer a node may read only what its pods use; this step limits its
writes the same way: a node may create, change or delete only its own Node object,
create only mirror pods, and change the status of, evict or delete only pods bound to
it. Requests from anyone else pass untouched. The TokenRequest handler makes the
matching check for tokens (a node asks only for tokens bound to its own pods).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pilothouse.api import errors, rbac
from pilothouse.api.meta import Obj
from pilothouse.apiserver.authn import user as user_module
from pilothouse.apiserver.authz import attributes as attrs_module

if TYPE_CHECKING:
    from pilothouse.apiserver.registry.store import ResourceStore

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"


def requesting_node() -> str | None:
    """The node a request comes from, or None for everyone else."""
    user = user_module.current()
    return rbac.node_name(user.name, user.groups) if user is not None else None


async def node_restriction(store: ResourceStore, op: str, obj: Obj) -> None:
    r = store.resource
    if r.group != "" or r.plural not in ("nodes", "pods"):
        return
    node = requesting_node()
    if node is None:
        return
    md = obj.get("metadata") or {}
    name = md.get("name", "")
    if r.plural == "nodes":
        if name != node:
            raise errors.forbidden(
                "nodes", "", name, f'node "{node}" is not allowed to modify node "{name}"'
            )
        return
    request = attrs_module.current()
    subresource = request.subresource if request is not None else ""
    bound_to = (obj.get("spec") or {}).get("nodeName") or ""
    if op == "create":
        if MIRROR_ANNOTATION not in (md.get("annotations") or {}):
            raise errors.forbidden(
                "pods",
                "",
                name,
                f'pod does not have "{MIRROR_ANNOTATION}" annotation, node "{node}" can only '
                "create mirror pods",
            )
        if bound_to != node:
            raise errors.forbidden(
                "pods",
                "",
                name,
                f'node "{node}" can only create pods with spec.nodeName set to itself',
            )
    elif op == "update" and subresource == "status" and bound_to != node:
        raise errors.forbidden(
            "pods",
            "",
            name,
            f'node "{node}" can only update pod status for pods with spec.nodeName set to itself',
        )
    elif op == "delete" and bound_to != node:
        what = "evict" if subresource == "eviction" else "delete"
        raise errors.forbidden(
            "pods", "", name, f'node "{node}" can only {what} pods with spec.nodeName set to itself'
        )
