"""The authorizer's cost per request: an RBAC user vs the admin, 1,000 RoleBindings.

Starts an API server in this process (``testing.server_thread``), creates 1,000
RoleBindings for other users in one namespace and one binding of ``edit`` to a group,
then times parsing a create's request attributes and authorizing it: for the admin
(``system:masters``, allowed before RBAC is asked — the baseline), for a user the group
binding allows (a memoised decision), and for the same user with the decision cache
emptied before every call (the index: the user's and groups' bindings only, never all
1,000). Prints one JSON object, microseconds per request.

Usage: python bench/authz.py [--bindings 1000] [--n 100000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from pilothouse import testing
from pilothouse.api import resources
from pilothouse.apiserver.authn import user as user_module
from pilothouse.apiserver.authz import attributes
from pilothouse.client import config, rest

PATH = "/api/v1/namespaces/bench/pods"


async def populate(srv: testing.ServerThread, bindings: int) -> None:
    rb = resources.DEFAULT.by_path("rbac.authorization.k8s.io", "v1", "rolebindings")
    ns = resources.DEFAULT.by_path("", "v1", "namespaces")
    assert rb is not None and ns is not None

    def binding(name: str, kind: str, subject: str, role: str) -> dict[str, Any]:
        return {
            "metadata": {"name": name},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": role,
            },
            "subjects": [{"kind": kind, "name": subject, "apiGroup": "rbac.authorization.k8s.io"}],
        }

    async with rest.Client(config.local_socket(srv.server.socket_path)) as c:
        await c.create(ns, {"metadata": {"name": "bench"}})
        for i in range(bindings):
            await c.create(rb, binding(f"other-{i}", "User", f"someone-{i}", "view"), "bench")
        await c.create(rb, binding("group-edit", "Group", "bench-group", "edit"), "bench")


def per_call_us(n: int, fn: Any) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return round((time.perf_counter() - start) / n * 1e6, 2)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bindings", type=int, default=1000)
    parser.add_argument("--n", type=int, default=100000)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="pilothouse-bench-") as tmp,
        testing.server_thread(Path(tmp) / "data") as srv,
    ):
        srv.call(populate(srv, args.bindings), timeout=300)
        identity = srv.server.identity
        assert identity is not None
        authorizer = identity.authorizer
        rbac = authorizer.deciders[-1]
        admin = user_module.UserInfo("admin", ("system:masters", "system:authenticated"))
        user = user_module.UserInfo("bench-user", ("bench-group", "system:authenticated"))

        def ask(who: user_module.UserInfo) -> None:
            a = attributes.from_request(who, "POST", PATH, {})
            allowed, _ = authorizer.authorize(a)
            assert allowed

        def uncached() -> None:
            rbac._decisions.clear()  # type: ignore[attr-defined]
            ask(user)

        out = {
            "baseline_admin_authorize_us": per_call_us(args.n, lambda: ask(admin)),
            "rbac_user_authorize_us": per_call_us(args.n, lambda: ask(user)),
            "rbac_user_uncached_authorize_us": per_call_us(args.n // 20, uncached),
            "rolebindings": args.bindings + 1,
            "n": args.n,
        }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
