"""Nodes: registered by their agent together with their status."""

from __future__ import annotations

from pilothouse.api.meta import Obj
from pilothouse.apiserver.registry.strategy import Strategy


class NodeStrategy(Strategy):
    allow_create_on_update = False

    def prepare_for_create(self, obj: Obj) -> None:
        # Unlike most kinds, a node's status is accepted on create: the agent
        # registers the node with its capacity and conditions in one write.
        return None
