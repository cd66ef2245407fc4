"""Interactive access to pods: ``exec``, ``attach`` and ``portforward``.

The API server terminates what each client speaks and talks to the pod's node
agent over one WebSocket per session (:mod:`pilothouse.api.remotecommand`):

* :mod:`.channels` — the WebSocket channel protocols (``v5``/``v4``/… ``.channel.k8s.io``);
* :mod:`.spdy` — SPDY/3.1 sessions (kubectl's fallback, and its port-forward tunnel);
* :mod:`.upgrade` — taking over an HTTP connection for plain SPDY, and a WebSocket as a byte pipe;
* :mod:`.agent` — the link to the agent;
* :mod:`.exec` — exec and attach; :mod:`.portforward` — port-forward.
"""

from __future__ import annotations

from pilothouse.apiserver.handlers import rest
from pilothouse.apiserver.handlers.nodeproxy import NodeProxy
from pilothouse.apiserver.handlers.streaming import exec as remote_exec
from pilothouse.apiserver.handlers.streaming import portforward


def subresources(proxy: NodeProxy) -> dict[str, rest.SubresourceHandler]:
    """The pods subresources served here, for :class:`rest.ResourceAPI`."""
    remote = remote_exec.RemoteCommand(proxy)
    return {
        "exec": remote.exec,
        "attach": remote.attach,
        "portforward": portforward.PortForward(proxy).handle,
    }
