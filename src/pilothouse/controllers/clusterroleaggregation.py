"""ClusterRole aggregation (upstream's clusterrole-aggregation-controller).

A ClusterRole with an ``aggregationRule`` holds the rules of every ClusterRole its
label selectors match — ``admin``, ``edit`` and ``view`` are built this way from
``rbac.authorization.k8s.io/aggregate-to-*`` roles, and so is any role a user
labels into them. Any ClusterRole change enqueues every aggregated role; the sync
collects the matching roles' rules (by role name, duplicates once) and writes
them when they differ.
"""

from __future__ import annotations

from typing import Any

from pilothouse.api import errors
from pilothouse.api.validation import meta as meta_validation
from pilothouse.client import rest
from pilothouse.controllers import base

Obj = dict[str, Any]


class ClusterRoleAggregationController(base.Controller):
    name = "clusterrole-aggregation"
    workers = 1

    def __init__(self, ctx: Any) -> None:
        super().__init__(clock=ctx.clock)
        self.client: rest.Client = ctx.client
        self.resource = ctx.resource("rbac.authorization.k8s.io", "v1", "clusterroles")
        self.roles = ctx.informers.informer(self.resource)
        self.roles.add_handlers(
            on_add=self._changed,
            on_update=lambda old, new: self._changed(new),
            on_delete=self._changed,
        )

    def _changed(self, _: Obj) -> None:
        for role in self.roles.indexer.list():
            if role.get("aggregationRule"):
                self.enqueue(role)

    async def wait_ready(self) -> None:
        await self.roles.wait_synced()
        self._changed({})

    def aggregate(self, role: Obj) -> list[Obj]:
        selectors = (role.get("aggregationRule") or {}).get("clusterRoleSelectors") or []
        name = role["metadata"]["name"]
        matched: dict[str, Obj] = {}
        for selector in selectors:
            for other in self.roles.indexer.list():
                other_name = other["metadata"]["name"]
                if other_name == name or other_name in matched:
                    continue
                labels = other["metadata"].get("labels") or {}
                if meta_validation.label_selector_matches(selector, labels):
                    matched[other_name] = other
        rules: list[Obj] = []
        for other_name in sorted(matched):
            for rule in matched[other_name].get("rules") or []:
                if rule not in rules:
                    rules.append(rule)
        return rules

    async def sync(self, key: str) -> None:
        role = self.roles.indexer.get(key)
        if role is None or not role.get("aggregationRule"):
            return
        rules = self.aggregate(role)
        if (role.get("rules") or []) == rules:
            return
        try:
            await self.client.patch(self.resource, role["metadata"]["name"], {"rules": rules})
        except errors.StatusError as exc:
            if not errors.is_not_found(exc):
                raise
