"""DefaultBinder: writes the binding (``POST …/pods/NAME/binding``) through the API."""

from __future__ import annotations

from typing import Any

from pilothouse.api import errors
from pilothouse.scheduler import types
from pilothouse.scheduler.framework import interface as fw
from pilothouse.scheduler.framework import runtime

NAME = "DefaultBinder"


class DefaultBinder(fw.BindPlugin):
    name = NAME

    def __init__(self, handle: runtime.Handle) -> None:
        self.handle = handle

    async def bind(self, state: fw.CycleState, pod: types.PodInfo, node: str) -> fw.Status:
        client = self.handle.client
        if client is None:
            return fw.error("no API client to bind with")
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": pod.name, "namespace": pod.namespace, "uid": pod.uid},
            "target": {"kind": "Node", "name": node},
        }
        try:
            await client.request(
                "POST", f"/api/v1/namespaces/{pod.namespace}/pods/{pod.name}/binding", body=body
            )
        except errors.StatusError as exc:
            return fw.error(exc.message or f"binding failed with HTTP {exc.code}")
        return fw.SUCCESS


def new(_args: dict[str, Any], handle: runtime.Handle) -> DefaultBinder:
    return DefaultBinder(handle)
