"""``/livez``, ``/readyz`` and ``/healthz``, answered as upstream's healthz package does.

Each endpoint runs its list of named checks. All pass: ``ok`` (with ``?verbose``,
one ``[+]<name> ok`` line per check and ``<endpoint> check passed``). One fails:
500 with every line, the failed ones as ``[-]<name> failed: reason withheld``
(the endpoint is public, so the reason goes to the log only) and ``<endpoint>
check failed``. ``?exclude=<name>`` skips a check; ``/readyz/<name>`` runs one
(``ok``, or 500 ``internal server error: <reason>``).

The checks come from the server and its supervision tree: ``etcd`` is the
store, ``informer-sync`` the watch cache's feed, one check per component of the
process (``controller-manager``, ``scheduler``, ``node-agent`` …) that fails on
``/readyz`` while any of its loops is down, and on ``/livez`` only when one of
its required (FATAL) children has failed; ``shutdown`` fails ``/readyz`` from the
moment the server starts shutting down, so load balancers stop sending to it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from pilothouse import supervisor as supervision

log = logging.getLogger(__name__)

ENDPOINTS = ("healthz", "livez", "readyz")
HEADERS = {"X-Content-Type-Options": "nosniff"}


@dataclass(frozen=True)
class Check:
    """A named check: ``probe()`` returns ``""`` when healthy, else why not."""

    name: str
    probe: Callable[[], str]
    livez: bool = True
    readyz: bool = True

    def applies_to(self, endpoint: str) -> bool:
        return self.readyz if endpoint == "readyz" else self.livez


def ping() -> str:
    return ""


def component(
    sup: supervision.Supervisor,
    *,
    fatal_only: bool = False,
    started: Callable[[], bool] | None = None,
) -> Callable[[], str]:
    """A probe over one supervision subtree: every unhealthy child (``fatal_only``:
    only failed FATAL children, for ``/livez``), and "starting" until ``started()``
    says the component is up (its loops may all be running before it is)."""

    def probe() -> str:
        bad = [
            f"{path}: {st.state}" + (f" ({st.last_error})" if st.last_error else "")
            for path, st in sup.walk()
            if not st.healthy
            and (not fatal_only or (st.policy is supervision.Policy.FATAL and st.state == "failed"))
        ]
        if not bad and started is not None and not started():
            bad.append("starting")
        return "; ".join(bad)

    return probe


def supervised(
    name: str, sup: supervision.Supervisor, *, started: Callable[[], bool] | None = None
) -> list[Check]:
    """The ``/readyz`` and ``/livez`` checks of one component's supervisor: ``/readyz``
    fails while the component starts or any of its loops is down, ``/livez`` only when
    a FATAL child failed."""
    return [
        Check(name, component(sup, started=started), livez=False),
        Check(name, component(sup, fatal_only=True), readyz=False),
    ]


def handle(request: web.Request, path: str, checks: list[Check]) -> web.Response:
    """Serve ``path`` (``/readyz``, ``/livez/etcd`` …) from ``checks``."""
    endpoint, _, single = path.strip("/").partition("/")
    applicable = [c for c in checks if c.applies_to(endpoint)]
    if single:
        for c in applicable:
            if c.name == single:
                why = c.probe()
                if why:
                    return _text(f"internal server error: {why}\n", 500)
                return _text("ok", 200)
        raise web.HTTPNotFound()
    excluded = set(request.query.getall("exclude", []))
    lines: list[str] = []
    failed: list[str] = []
    for c in applicable:
        if c.name in excluded:
            excluded.discard(c.name)
            lines.append(f"[+]{c.name} excluded: ok")
            continue
        why = c.probe()
        if why:
            lines.append(f"[-]{c.name} failed: reason withheld")
            failed.append(f"[-]{c.name} failed: {why}")
        else:
            lines.append(f"[+]{c.name} ok")
    if excluded:
        names = ",".join(f'"{n}"' for n in sorted(excluded))
        lines.append(f"warn: some health checks cannot be excluded: no matches for {names}")
    body = "".join(line + "\n" for line in lines)
    if failed:
        log.debug("%s check failed:\n%s", endpoint, "\n".join(failed))
        # Always verbose on failure; http.Error adds the final newline.
        return _text(f"{body}{endpoint} check failed\n", 500)
    if "verbose" not in request.query:
        return _text("ok", 200)
    return _text(f"{body}{endpoint} check passed\n", 200)


def _text(text: str, status: int) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/plain", headers=HEADERS)
