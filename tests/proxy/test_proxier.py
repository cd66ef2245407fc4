"""The proxier against a real API server, with the in-memory kernel: full and
incremental syncs, failed transactions, skipped Services, events, conntrack."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from pilothouse import supervisor as supervision
from pilothouse.client import informer, rest
from pilothouse.proxy import fake, kernel, proxier, rules

from .conftest import r

SERVICES = r("", "services")
SLICES = r("discovery.k8s.io", "endpointslices")
T = rules.TABLE


@contextlib.asynccontextmanager
async def running(
    client: rest.Client, ns: str, k: fake.FakeKernel, **kw: Any
) -> AsyncIterator[proxier.Proxier]:
    services = informer.Informer(client, SERVICES, namespace=ns)
    slices = informer.Informer(client, SLICES, namespace=ns)
    p = proxier.Proxier(
        services=services,
        slices=slices,
        kernel=k,
        config=rules.Config(node_name="n1"),
        node_ips=("192.0.2.10",),
        **kw,
    )
    sup = supervision.Supervisor("proxy-test")
    services.start(sup)
    slices.start(sup)
    await services.wait_synced(10)
    await slices.wait_synced(10)
    try:
        yield p
    finally:
        await services.stop()
        await slices.stop()
        await sup.stop()


async def settle(p: proxier.Proxier, check: Any, timeout: float = 5.0) -> None:
    """Sync until ``check()`` holds (informer events arrive asynchronously)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        await p.sync()
        if check():
            return
        if loop.time() > deadline:
            raise AssertionError("rules did not settle")
        await asyncio.sleep(0.02)


def svc(name: str, ports: list[dict[str, Any]] | None = None, **spec: Any) -> dict[str, Any]:
    labels = spec.pop("labels", {})
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {"ports": ports or [{"name": "http", "port": 80}], "selector": {"a": name},
                 **spec},
    }  # fmt: skip


def eps_slice(service: str, ips: list[str], *, name: str = "", port: int = 8080,
              proto: str = "TCP", **conditions: bool) -> dict[str, Any]:  # fmt: skip
    return {
        "metadata": {
            "name": name or f"{service}-abcde",
            "labels": {"kubernetes.io/service-name": service},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": port, "protocol": proto}],
        "endpoints": [
            {"addresses": [ip], "nodeName": "n1",
             "conditions": {"ready": True, "serving": True, "terminating": False, **conditions}}
            for ip in ips
        ],
    }  # fmt: skip


def elements(k: fake.FakeKernel, container: str) -> dict[str, str]:
    return dict(k.tables[T].maps[container])


async def test_full_then_incremental_syncs(client: rest.Client, ns: str) -> None:
    k = fake.FakeKernel()
    web = await client.create(SERVICES, svc("web"), ns)
    await client.create(SLICES, eps_slice("web", ["10.42.0.5", "10.42.0.6"]), ns)
    await client.create(SERVICES, svc("empty"), ns)
    async with running(client, ns, k) as p:
        first = await p.sync()
        assert first.full and first.services == 2
        cip = web["spec"]["clusterIP"]
        assert f"{cip} . tcp . 80" in elements(k, rules.SERVICE_IPS)
        containers = {c for c, _ in p.ruleset.by_service[f"{ns}/empty"].elements}
        assert containers == {rules.CLUSTER_IPS, rules.NO_ENDPOINT_SERVICES}
        # One endpoint changes: a small transaction touching only that Service.
        s = await client.get(SLICES, "web-abcde", ns)
        s["endpoints"] = s["endpoints"][:1]
        await client.update(SLICES, s)
        await settle(p, lambda: "10.42.0.6 . 10.42.0.6" not in elements(k, rules.HAIRPIN))
        script = k.scripts[-1]
        assert "delete table" not in script and "empty" not in script
        assert p.last is not None and not p.last.full and p.last.lines < 10
        chain = next(c for c in k.tables[T].chains if c.startswith("service-") and "/web/" in c)
        assert k.tables[T].chains[chain][-1] == "meta l4proto tcp dnat ip to 10.42.0.5:8080"


async def test_incremental_syncs_end_where_a_full_sync_would(client: rest.Client, ns: str) -> None:
    """Random changes, synced incrementally, leave exactly the ruleset a full sync makes."""
    rng = random.Random(7)
    k = fake.FakeKernel()
    async with running(client, ns, k, min_interval=0) as p:
        await p.sync()
        names = [f"s{i}" for i in range(6)]
        actions = ["svc"] * 3 + ["slice"] * 4 + ["delete-slice", "delete-svc", "affinity"]
        for step in range(60):
            name = rng.choice(names)
            action = rng.choice(actions)
            with contextlib.suppress(Exception):
                if action == "svc":
                    kind = rng.choice(["ClusterIP", "NodePort"])
                    await client.create(SERVICES, svc(name, type=kind), ns)
                elif action == "affinity":
                    await client.patch(SERVICES, name, {"spec": {
                        "sessionAffinity": rng.choice(["ClientIP", "None"])}}, ns)  # fmt: skip
                elif action == "slice":
                    ips = [f"10.42.{rng.randint(0, 3)}.{rng.randint(2, 9)}" for _ in range(3)]
                    body = eps_slice(name, sorted(set(ips)))
                    try:
                        await client.create(SLICES, body, ns)
                    except Exception:
                        cur = await client.get(SLICES, body["metadata"]["name"], ns)
                        cur["endpoints"] = body["endpoints"]
                        await client.update(SLICES, cur)
                elif action == "delete-slice":
                    await client.delete(SLICES, f"{name}-abcde", ns)
                else:
                    await client.delete(SERVICES, name, ns)
            await asyncio.sleep(0.03 if step % 3 else 0.0)
            await p.sync()
        await asyncio.sleep(0.3)
        await p.sync()
        await asyncio.sleep(1.1)  # stale chains are deleted a second after they were flushed
        await p.sync()
        assert p.failures == 0
        partial = [s for s in k.scripts[1:] if s.strip()]
        assert len(partial) >= 25, len(partial)  # the changes were synced one by one
        incremental = k.snapshot(T)
        assert len(incremental["maps"][rules.SERVICE_IPS]) >= 2  # type: ignore[index]
        fresh = fake.FakeKernel()
        p.kernel = fresh
        await p.sync(full=True)
        assert incremental == fresh.snapshot(T)


async def test_a_refused_transaction_keeps_the_old_rules_and_is_retried(
    client: rest.Client, ns: str
) -> None:
    k = fake.FakeKernel()
    await client.create(SERVICES, svc("web"), ns)
    await client.create(SLICES, eps_slice("web", ["10.42.0.5"]), ns)
    async with running(client, ns, k, min_interval=0) as p:
        await p.sync()
        before = k.snapshot(T)
        s = await client.get(SLICES, "web-abcde", ns)
        s["endpoints"][0]["addresses"] = ["10.42.0.7"]
        await client.update(SLICES, s)
        await asyncio.sleep(0.2)
        k.fail_next = "Error: Could not process rule: No buffer space available"
        with pytest.raises(kernel.NftError):
            await p.sync()
        assert k.snapshot(T) == before  # nothing of it applied
        task = asyncio.create_task(p.run())
        try:
            await asyncio.sleep(1.5)  # first retry after a second's back-off, as a full sync
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        assert "10.42.0.7 . 10.42.0.7" in elements(k, rules.HAIRPIN)
        assert "delete table" in k.scripts[-1] or any("delete table" in s for s in k.scripts[-3:])
        await p.cleanup()
        assert T not in k.tables


async def test_other_proxies_services_and_headless_ones_get_no_rules(
    client: rest.Client, ns: str
) -> None:
    k = fake.FakeKernel()
    dns = svc("kube-dns", labels={"service.kubernetes.io/service-proxy-name": "pilothouse-dns"})
    await client.create(SERVICES, dns, ns)
    await client.create(SLICES, eps_slice("kube-dns", ["10.42.0.5"]), ns)
    await client.create(SERVICES, svc("headless", clusterIP="None"), ns)
    async with running(client, ns, k) as p:
        await p.sync()
        assert not elements(k, rules.SERVICE_IPS) and not elements(k, rules.CLUSTER_IPS)
        assert not [c for c in k.tables[T].chains if c.startswith("service-")]


async def test_load_balancer_port_held_by_a_host_process(client: rest.Client, ns: str) -> None:
    k = fake.FakeKernel(ports_in_use={("tcp", 22)})
    events: list[tuple[str, str, str]] = []

    class Recorder:
        def event(self, obj: Any, type: str, reason: str, message: str) -> None:
            events.append((type, reason, message))

    body = svc("ssh", [{"name": "http", "port": 22}], type="LoadBalancer")
    created = await client.create(SERVICES, body, ns)
    created["status"] = {"loadBalancer": {"ingress": [{"ip": "192.0.2.10", "ipMode": "VIP"},
                                                      {"ip": "192.0.2.11", "ipMode": "VIP"}]}}  # fmt: skip
    await client.update_status(SERVICES, created)
    await client.create(SLICES, eps_slice("ssh", ["10.42.0.5"]), ns)
    async with running(client, ns, k, recorder=Recorder()) as p:  # type: ignore[arg-type]
        await settle(p, lambda: "192.0.2.11 . tcp . 22" in elements(k, rules.SERVICE_IPS))
        assert "192.0.2.10 . tcp . 22" not in elements(k, rules.SERVICE_IPS)  # ours, and taken
        assert events and events[0][:2] == ("Warning", "PortInUse")
        assert "port 22/TCP is already in use on node n1 (192.0.2.10)" in events[0][2]
        await p.sync(full=True)
        assert len(events) == 1  # reported once


async def test_udp_flows_to_removed_endpoints_are_deleted(client: rest.Client, ns: str) -> None:
    k = fake.FakeKernel()
    created = await client.create(SERVICES, svc("dns", [{"name": "http", "port": 53,
                                                          "protocol": "UDP"}]), ns)  # fmt: skip
    await client.create(SLICES, eps_slice("dns", ["10.42.0.5", "10.42.0.6"], port=53,
                                          proto="UDP"), ns)  # fmt: skip
    async with running(client, ns, k) as p:
        await p.sync()
        s = await client.get(SLICES, "dns-abcde", ns)
        s["endpoints"] = s["endpoints"][1:]
        await client.update(SLICES, s)
        await settle(p, lambda: bool(k.conntrack_deletes))
        assert k.conntrack_deletes == [
            ["-p", "udp", "--orig-dst", created["spec"]["clusterIP"], "--orig-port-dst", "53",
             "--reply-src", "10.42.0.5"]
        ]  # fmt: skip
