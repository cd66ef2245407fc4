"""Overload protection: priority levels with a seat limit and a short queue (429 and
Retry-After beyond it, admins and long-running requests never limited), the 3 MiB
body limit (413), and watchers too slow to keep up closed so they resume."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3

from pilothouse import testing
from pilothouse.apiserver import flowcontrol, resourcecache
from pilothouse.apiserver.auth import certs
from pilothouse.apiserver.handlers import body

# --- the levels ------------------------------------------------------------------------


def test_levels_share_the_server_limit_as_upstream() -> None:
    control = flowcontrol.FlowControl()  # 400 + 200, upstream's defaults
    limits = {name: level.limit for name, level in control.levels.items()}
    assert limits == {
        "leader-election": 25,
        "node-high": 98,
        "system": 74,
        "workload-high": 98,
        "workload-low": 245,
        "global-default": 49,
        "catch-all": 13,
    }


@pytest.mark.parametrize(
    ("user", "groups", "path", "resource", "namespace", "level"),
    [
        ("admin", ("system:masters", "system:authenticated"), "/api/v1/pods", "pods", "", "exempt"),
        ("", (), "/readyz", "", "", "exempt"),
        ("system:node:n1", ("system:nodes",), "/api/v1/nodes/n1", "nodes", "", "node-high"),
        ("system:node:n1", ("system:nodes",), "/api/v1/pods", "pods", "", "system"),
        ("system:kube-scheduler", (), "/apis/x", "leases", "kube-system", "leader-election"),
        ("system:kube-controller-manager", (), "/api/v1/pods", "pods", "", "workload-high"),
        ("system:serviceaccount:a:b", ("system:serviceaccounts",), "/x", "", "", "workload-low"),
        ("alice", ("system:authenticated",), "/api/v1/pods", "pods", "", "global-default"),
        ("", (), "/api/v1/pods", "pods", "", "catch-all"),
    ],
)
def test_requests_are_classified_by_who_sends_them(
    user: str, groups: tuple[str, ...], path: str, resource: str, namespace: str, level: str
) -> None:
    got = flowcontrol.classify(
        user=user, groups=groups, path=path, resource=resource, namespace=namespace
    )
    assert got == level


async def test_a_full_level_queues_briefly_then_rejects() -> None:
    control = flowcontrol.FlowControl(
        max_requests_inflight=1, max_mutating_requests_inflight=0, queue_length=2, max_wait=0.2
    )
    level = control.levels["global-default"]
    assert level.limit == 1
    first = await control.acquire("global-default")
    waiting = [asyncio.ensure_future(control.acquire("global-default")) for _ in range(2)]
    await asyncio.sleep(0)
    with pytest.raises(Exception) as info:  # the queue is full: at once
        await control.acquire("global-default")
    err = info.value
    assert (getattr(err, "code", 0), getattr(err, "reason", "")) == (429, "TooManyRequests")
    assert err.details == {"retryAfterSeconds": 1}  # type: ignore[attr-defined]
    assert str(err) == "Too many requests, please try again later."
    first.release()  # the seat goes to the first waiter, in order
    second = await asyncio.wait_for(waiting[0], 1)
    with pytest.raises(Exception) as late:  # the other waited too long
        await waiting[1]
    assert getattr(late.value, "code", 0) == 429
    assert (level.executing, len(level.waiting), level.rejected, level.timed_out) == (1, 0, 1, 1)
    second.release()
    assert level.executing == 0
    # Exempt requests take no seat at all.
    for _ in range(10):
        await control.acquire(flowcontrol.EXEMPT)
    assert level.executing == 0


async def test_a_waiter_that_goes_away_gives_its_place_back() -> None:
    control = flowcontrol.FlowControl(max_requests_inflight=1, max_mutating_requests_inflight=0)
    seat = await control.acquire("global-default")
    gone = asyncio.ensure_future(control.acquire("global-default"))
    await asyncio.sleep(0)
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    seat.release()
    level = control.levels["global-default"]
    assert (level.executing, len(level.waiting)) == (0, 0)


# --- against a server -----------------------------------------------------------------


class Caller:
    """HTTPS as one user: the admin, or a plain authenticated user of our own."""

    def __init__(self, srv: testing.ServerThread, user: str = "") -> None:
        pki = srv.server.pki
        assert pki is not None
        ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
        if user:
            cert, key = certs.ensure_client_pair(pki, user, common_name=user, organizations=[])
            ctx.load_cert_chain(str(cert), str(key))
        else:
            ctx.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))
        self.ctx = ctx
        self.base = srv.url
        self.pool = urllib3.PoolManager(ssl_context=ctx, retries=False, timeout=30, maxsize=300)
        if user:  # rights from RBAC, as any user's
            Caller(srv).grant_configmaps(user)

    def grant_configmaps(self, user: str) -> None:
        """Every verb on ConfigMaps for ``user``, everywhere (a ClusterRole of the test's:
        ``edit`` has its rules from the aggregation controller, not run here)."""
        rbac = "/apis/rbac.authorization.k8s.io/v1"
        role = {
            "metadata": {"name": "test-configmaps"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["*"]}],
        }
        binding = {
            "metadata": {"name": f"test-configmaps-{user}"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "test-configmaps",
            },
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        }
        for path, obj in (("clusterroles", role), ("clusterrolebindings", binding)):
            made = self.request("POST", f"{rbac}/{path}", obj)
            assert made.status in (201, 409), made.data

    def request(self, method: str, path: str, obj: Any = None, **kw: Any) -> Any:
        data = kw.pop("body", None)
        if obj is not None:
            data = json.dumps(obj).encode()
        return self.pool.request(
            method,
            self.base + path,
            body=data,
            headers={"Content-Type": "application/json", **kw.pop("headers", {})},
            **kw,
        )


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[testing.ServerThread]:
    """A server whose levels have one seat each (upstream's math on a limit of 1 + 1)."""
    data = tmp_path_factory.mktemp("overload") / "data"
    with testing.ServerThread(
        data, max_requests_inflight=1, max_mutating_requests_inflight=1
    ) as srv:
        yield srv


def cm(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}


def test_a_flood_is_shed_with_429_while_admins_and_watches_go_on(
    small: testing.ServerThread,
) -> None:
    alice, admin = Caller(small, "alice"), Caller(small, "")
    level = small.server.flow_control.levels["global-default"]
    assert (level.limit, level.queue_length) == (1, 50)
    # A watch of alice's is long-running: it holds no seat.
    watch = alice.request(
        "GET", "/api/v1/namespaces/default/configmaps?watch=true", preload_content=False
    )
    assert watch.status == 200

    # Hold the store's writer until all 200 writes are in: the one with a seat waits on it.
    store: Any = small.server.store
    gate = threading.Event()

    async def hold() -> None:
        await store.inner._run_job(lambda: gate.wait(30))

    held = asyncio.run_coroutine_threadsafe(hold(), small.loop)
    with concurrent.futures.ThreadPoolExecutor(200) as pool:
        answering = pool.map(
            lambda i: alice.request("POST", "/api/v1/namespaces/default/configmaps", cm(f"f{i}")),
            range(200),
        )
        deadline = time.monotonic() + 30
        while level.executing + len(level.waiting) + level.rejected < 200:
            assert time.monotonic() < deadline, (level.executing, len(level.waiting))
            time.sleep(0.01)
        began = time.monotonic()
        listed = admin.request("GET", "/api/v1/namespaces")  # an admin is never limited
        admin_took = time.monotonic() - began
        gate.set()
        answers = list(answering)
    held.result(10)
    watch.release_conn()
    # One seat and a queue of 50: 51 writes got through, the rest were shed at once. (Had
    # the watch taken the seat, none would have.)
    codes = [a.status for a in answers]
    assert sorted(set(codes)) == [201, 429]
    assert codes.count(201) == 51 and codes.count(429) == 149, (codes.count(201), codes.count(429))
    rejected = next(a for a in answers if a.status == 429)
    assert rejected.headers["Retry-After"] == "1"
    assert json.loads(rejected.data) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Too many requests, please try again later.",
        "reason": "TooManyRequests",
        "details": {"retryAfterSeconds": 1},
        "code": 429,
    }
    assert listed.status == 200 and admin_took < 1.0
    metrics = admin.request("GET", "/metrics").data.decode()
    assert (
        'apiserver_flowcontrol_rejected_requests_total{priority_level="global-default",'
        'reason="queue-full"} 149.0'
    ) in metrics


def test_a_client_that_ignores_retry_after_waits_for_it_anyway(
    small: testing.ServerThread,
) -> None:
    """A connection answered 429 that sends again at once is not served before its
    Retry-After: the server spends a parse, not a stream of refusals, on such a client."""
    level = small.server.flow_control.levels["global-default"]
    bob = Caller(small, "bob")
    bob.pool = urllib3.PoolManager(ssl_context=bob.ctx, retries=False, timeout=30, maxsize=1)
    assert bob.request("GET", "/api/v1/namespaces/default/configmaps").status == 200
    level.executing += level.limit  # every seat taken …
    for _ in range(level.queue_length):  # … and the queue full
        level.waiting.append(asyncio.Future(loop=small.loop))
    try:
        assert bob.request("GET", "/api/v1/namespaces/default/configmaps").status == 429
        began = time.monotonic()
        again = bob.request("GET", "/api/v1/namespaces/default/configmaps")
        waited = time.monotonic() - began
        assert again.status == 429 and waited >= 0.9, waited
    finally:
        level.executing -= level.limit
        level.waiting.clear()
    time.sleep(1.1)  # once the wait is over, nothing is held against the connection
    began = time.monotonic()
    assert bob.request("GET", "/api/v1/namespaces/default/configmaps").status == 200
    assert time.monotonic() - began < 0.5


def test_health_probes_are_never_shed(small: testing.ServerThread) -> None:
    """Upstream's ``probes`` FlowSchema makes them exempt: a probe refused while the
    server is busy would take it out of service. Even from a user whose certificate
    alone says the level is full."""
    level = small.server.flow_control.levels["global-default"]
    dave = Caller(small, "dave")
    assert dave.request("GET", "/api/v1/namespaces/default/configmaps").status == 200

    def fill() -> None:
        level.executing += level.limit
        for _ in range(level.queue_length):
            level.waiting.append(small.loop.create_future())

    def empty() -> None:
        level.executing -= level.limit
        level.waiting.clear()

    small.loop.call_soon_threadsafe(fill)
    try:
        deadline = time.monotonic() + 5
        while len(level.waiting) < level.queue_length:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        for path in ("/readyz", "/livez", "/healthz", "/livez?verbose"):
            answer = dave.request("GET", path)
            assert answer.status == 200, (path, answer.status, answer.data)
        # A single check is not public: authorized (and refused), not shed.
        assert dave.request("GET", "/readyz/ping").status == 403
        assert dave.request("GET", "/api/v1/namespaces/default/configmaps").status == 429
    finally:
        small.loop.call_soon_threadsafe(empty)
    time.sleep(1.6)  # the 429 held the connection off: let it pass for the next test


def test_bodies_over_3_mib_are_413(small: testing.ServerThread, tmp_path: Path) -> None:
    admin = Caller(small, "")
    limit = body.MAX_BODY_BYTES
    assert limit == 3 * 1024 * 1024
    path = "/api/v1/namespaces/default/configmaps"
    shell = json.dumps(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"}, "data": {"x": ""}}
    )
    fits = shell.replace('"x": ""', '"x": "' + "a" * (limit - len(shell)) + '"').encode()
    assert len(fits) == limit
    resp = admin.request("POST", path, body=fits)
    # Read and decoded, not refused for its size: then a ConfigMap's own limit applies.
    assert resp.status == 422 and b"may not be more than 1048576 bytes" in resp.data
    over = shell.replace('"x": ""', '"x": "' + "a" * (limit + 1 - len(shell)) + '"').encode()
    over = over.replace(b'"big"', b'"bigger"')
    resp = admin.request("POST", path, body=over)
    assert resp.status == 413
    assert json.loads(resp.data) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f"Request entity too large: limit is {limit}",
        "reason": "RequestEntityTooLarge",
        "code": 413,
    }

    # Without a Content-Length (chunked), the limit holds as the body streams in.
    def chunks() -> Iterator[bytes]:
        for i in range(0, len(over), 65536):
            yield over[i : i + 65536]

    resp = admin.request(
        "POST", path, body=chunks(), headers={"Transfer-Encoding": "chunked"}, chunked=True
    )
    assert resp.status == 413
    # Patches are bodies too.
    resp = admin.request(
        "PATCH",
        path + "/big",
        body=b'{"data": {"y": "' + b"b" * limit + b'"}}',
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert resp.status == 413


# --- slow watchers ---------------------------------------------------------------------


def _raw_watch(srv: testing.ServerThread, path: str) -> ssl.SSLSocket:
    """A watch over a socket we read only when we choose to (a client that stalls)."""
    pki = srv.server.pki
    assert pki is not None
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    ctx.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window: fills at once
    raw.connect(("127.0.0.1", srv.server.port))
    conn = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    conn.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\n\r\n".encode())
    return conn


def _events(stream: bytes) -> list[dict[str, Any]]:
    """Complete events of a chunked watch response (a cut-off tail is dropped)."""
    _, _, rest = stream.partition(b"\r\n\r\n")
    payload = b""
    while rest:
        size_line, sep, rest = rest.partition(b"\r\n")
        if not sep:
            break
        try:
            size = int(size_line, 16)
        except ValueError:
            break
        if size == 0 or len(rest) < size + 2:
            payload += rest[:size]
            break
        payload += rest[:size]
        rest = rest[size + 2 :]
    out = []
    for line in payload.split(b"\n"):
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def test_a_watcher_that_cannot_keep_up_is_closed_and_resumes_without_a_gap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(resourcecache, "WATCHER_BACKLOG_LIMIT", 50)
    monkeypatch.setattr("pilothouse.apiserver.handlers.watch.SLOW_WATCHER_GRACE", 0.5)
    with testing.ServerThread(tmp_path / "data") as srv:
        admin = Caller(srv, "")
        ns = "/api/v1/namespaces/default/configmaps"
        start = json.loads(admin.request("GET", ns).data)["metadata"]["resourceVersion"]
        conn = _raw_watch(srv, f"{ns}?watch=true&resourceVersion={start}")
        time.sleep(0.3)
        written = []
        # Far more than the socket buffers hold (the kernel's send buffer grows to 4 MiB)
        # plus the backlog.
        for i in range(800):
            obj = json.loads(
                admin.request("POST", ns, {**cm(f"s{i}"), "data": {"pad": "x" * 8000}}).data
            )
            written.append((obj["metadata"]["name"], obj["metadata"]["resourceVersion"]))
        # The server gave up on this client: the connection ends (cleanly or cut).
        received = b""
        conn.settimeout(10)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                chunk = conn.recv(65536)
            except (ConnectionResetError, ssl.SSLError, TimeoutError):
                break
            if not chunk:
                break
            received += chunk
        else:
            raise AssertionError("the slow watcher was never closed")
        conn.close()
        ours = {name for name, _ in written}  # not kube-root-ca.crt, published meanwhile
        got = [
            (e["object"]["metadata"]["name"], e["object"]["metadata"]["resourceVersion"])
            for e in _events(received)
            if e["type"] == "ADDED" and e["object"]["metadata"]["name"] in ours
        ]
        assert 0 < len(got) < len(written)
        assert got == written[: len(got)]  # in order, no gap, no duplicate
        # Resuming from the last resourceVersion received brings exactly the rest (over a
        # few rounds here: a watch resumed this far behind overflows this tiny backlog
        # again, and resumes again, as an informer would).
        rest: list[tuple[str, str]] = []
        while len(got) + len(rest) < len(written):
            last = (got + rest)[-1][1]
            resp = admin.request("GET", f"{ns}?watch=true&resourceVersion={last}&timeoutSeconds=1")
            more = [
                (e["object"]["metadata"]["name"], e["object"]["metadata"]["resourceVersion"])
                for e in (json.loads(line) for line in resp.data.splitlines() if line.strip())
                if e["type"] == "ADDED" and e["object"]["metadata"]["name"] in ours
            ]
            assert more, "a resumed watch made no progress"
            rest += more
        assert got + rest == written
