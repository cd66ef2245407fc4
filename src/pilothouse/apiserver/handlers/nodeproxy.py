"""Subresources served by the pod's node agent: ``pods/log`` here (exec, attach
and port-forward in :mod:`.streaming`), proxied over mutual TLS to the agent's port 10250.

The API server checks what it can itself (the pod exists, is bound, the
container exists and has started) and answers those errors as upstream does;
then it streams the agent's answer through unchanged.
"""

from __future__ import annotations

import ssl
from typing import Any

import aiohttp
from aiohttp import web

from pilothouse.api import errors
from pilothouse.api.meta import Obj
from pilothouse.apiserver import request as request_info
from pilothouse.apiserver.registry.store import ResourceStore

LOG_PARAMS = (
    "follow",
    "tailLines",
    "sinceSeconds",
    "sinceTime",
    "timestamps",
    "limitBytes",
    "previous",
)


class NodeProxy:
    def __init__(self, *, nodes: ResourceStore, client_ssl: ssl.SSLContext) -> None:
        self.nodes = nodes
        self.client_ssl = client_ssl
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self.client_ssl, limit=256),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def agent_url(self, pod: Obj) -> str:
        """The base URL of the agent running ``pod``: Status errors when it has no node or address."""
        node_name = (pod.get("spec") or {}).get("nodeName")
        name = pod["metadata"]["name"]
        if not node_name:
            raise errors.bad_request(f'pod "{name}" does not have a host assigned')
        node = await self.nodes.get("", node_name)
        status = node.get("status") or {}
        port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get(
            "Port"
        ) or 10250
        address = next(
            (a["address"] for a in status.get("addresses") or [] if a.get("type") == "InternalIP"),
            None,
        ) or next((a["address"] for a in status.get("addresses") or []), None)
        if not address:
            raise errors.StatusError(
                503, errors.SERVICE_UNAVAILABLE, f"node {node_name} has no address"
            )
        host = f"[{address}]" if ":" in address else address
        return f"https://{host}:{port}"

    async def logs(
        self, request: web.Request, store: ResourceStore, info: request_info.RequestInfo
    ) -> web.StreamResponse:
        if request.method != "GET":
            raise errors.method_not_allowed("")
        pod = await store.get(info.namespace, info.name)
        spec = pod.get("spec") or {}
        names = [c["name"] for c in (spec.get("containers") or [])]
        all_names = (
            [c["name"] for c in (spec.get("initContainers") or [])]
            + names
            + [c["name"] for c in (spec.get("ephemeralContainers") or [])]
        )
        container = request.query.get("container", "")
        if not container:
            default = (pod["metadata"].get("annotations") or {}).get(
                "kubectl.kubernetes.io/default-container"
            )
            if default in all_names:
                container = str(default)
            elif len(names) == 1:
                container = names[0]
            else:
                raise errors.bad_request(
                    f"a container name must be specified for pod {info.name}, choose one of: [{' '.join(names)}]"
                )
        if container not in all_names:
            raise errors.bad_request(f"container {container} is not valid for pod {info.name}")
        self._check_started(pod, container, previous=request.query.get("previous") in ("true", "1"))
        params = {k: request.query[k] for k in LOG_PARAMS if k in request.query}
        url = f"{await self.agent_url(pod)}/containerLogs/{info.namespace}/{info.name}/{container}"
        try:
            upstream = await self.session().get(url, params=params)
        except aiohttp.ClientError as exc:
            raise errors.StatusError(
                502,
                errors.SERVICE_UNAVAILABLE,
                f'Get "{url}": the node agent of {spec.get("nodeName")} did not answer: {exc}',
            ) from None
        try:
            if upstream.status != 200:
                text = (await upstream.text())[:1000]
                code = 404 if upstream.status == 404 else 400 if upstream.status == 400 else 500
                if code == 404:
                    raise errors.bad_request(text)
                raise errors.StatusError(
                    code, errors.INTERNAL_ERROR if code == 500 else errors.BAD_REQUEST, text
                )
            resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            try:
                async for chunk in upstream.content.iter_any():
                    await resp.write(chunk)
            except (ConnectionResetError, aiohttp.ClientPayloadError):
                pass
            return resp
        finally:
            upstream.release()

    @staticmethod
    def _check_started(pod: Obj, container: str, *, previous: bool) -> None:
        status = pod.get("status") or {}
        statuses: list[Any] = (status.get("containerStatuses") or []) + (
            status.get("initContainerStatuses") or []
        )
        for cs in statuses:
            if cs.get("name") != container:
                continue
            if previous:
                if not (cs.get("lastState") or {}).get("terminated"):
                    raise errors.bad_request(
                        f'previous terminated container "{container}" in pod "{pod["metadata"]["name"]}" not found'
                    )
                return
            waiting = (cs.get("state") or {}).get("waiting")
            if (
                waiting
                and not cs.get("restartCount")
                and not (cs.get("lastState") or {}).get("terminated")
            ):
                raise errors.bad_request(
                    f'container "{container}" in pod "{pod["metadata"]["name"]}" is waiting to start: '
                    f"{waiting.get('reason', 'ContainerCreating')}"
                )
            return
        raise errors.bad_request(
            f'container "{container}" in pod "{pod["metadata"]["name"]}" is waiting to start: ContainerCreating'
        )
