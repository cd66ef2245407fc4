"""Cluster DNS end to end: real pods asking the node's DNS with busybox's nslookup.

`pilothouse server` with its agent serving cluster DNS on 10.43.0.10, real
containers, the real kubectl. Names outside the cluster go to a fake upstream
of ours on 127.0.0.77:53 (``--resolv-conf dns-upstream.resolv.conf``), so no
test needs the internet. Headless Services here carry EndpointSlices written
by the test (a Service without a selector, as users do for outside endpoints),
so they need no EndpointSlice controller; the selector-based variant runs when
that controller is part of the build. Needs root; CI runs as root.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pilothouse.controllers import manager
from pilothouse.dns import fake

from .realcluster import Cluster, pod_manifest

pytestmark = [
    pytest.mark.root,
    pytest.mark.containers,
    pytest.mark.netns,
    pytest.mark.kubectl,
    pytest.mark.slow,
]

UPSTREAM_CONF = Path(__file__).parent / "dns-upstream.resolv.conf"
UPSTREAM_IP = "127.0.0.77"
SERVER_ARGS = ["--resolv-conf", str(UPSTREAM_CONF)]
OUTSIDE = {"outside.example": {"A": ["192.0.2.10"]}, "alias.example": {"A": ["192.0.2.11"]}}


@pytest.fixture(scope="module")
def upstream() -> Iterator[fake.FixedDNSServer]:
    """The host's resolver, as far as the cluster DNS knows (its own thread and loop)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fake-upstream", daemon=True)
    thread.start()
    server = asyncio.run_coroutine_threadsafe(
        fake.FixedDNSServer(OUTSIDE).start(UPSTREAM_IP, 53), loop
    ).result(10)
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


@pytest.fixture
def client_pod(cluster: Cluster, ns: str) -> str:
    run_pod(cluster, ns, "client")
    return "client"


def run_pod(
    cluster: Cluster, ns: str, name: str, labels: dict[str, str] | None = None, **spec: Any
) -> dict[str, Any]:
    """A busybox pod that sleeps, with these pod spec fields, once it runs."""
    manifest = pod_manifest(name, cluster.image, ["sleep", "3600"], **spec)
    manifest["metadata"]["labels"].update(labels or {})
    cluster.apply(ns, manifest)
    return cluster.running(ns, name)


def nslookup(cluster: Cluster, ns: str, *args: str, pod: str = "client") -> str:
    proc = cluster.kubectl("-n", ns, "exec", pod, "--", "nslookup", *args, check=False)
    return proc.stdout + proc.stderr


def nslookup_until(
    cluster: Cluster, ns: str, *args: str, until: Any, timeout: float = 20, what: str = ""
) -> str:
    """nslookup until ``until(output)`` holds (DNS follows the API within a watch event)."""
    out: list[str] = []

    def ok() -> bool:
        out[:] = [nslookup(cluster, ns, *args)]
        return bool(until(out[0]))

    cluster.wait(ok, timeout=timeout, what=what or " ".join(args))
    return out[0]


def libc_lookup(cluster: Cluster, ns: str, name: str, pod: str = "client") -> str:
    """The address the C library's resolver finds for ``name`` (search path, ndots:5), from
    the line busybox wget prints before it connects ("" when the name did not resolve).
    busybox nslookup is no help here: it applies the search path only to names without
    a dot. (``timeout``, not ``wget -T``: see COMPAT-NOTES.)"""
    proc = cluster.kubectl(
        "-n",
        ns,
        "exec",
        pod,
        "--",
        "timeout",
        "3",
        "wget",
        "-O",
        "/dev/null",
        f"http://{name}:1/",
        check=False,
    )
    for line in (proc.stdout + proc.stderr).splitlines():
        if line.startswith(f"Connecting to {name}:1 ("):  # "Connecting to web:1 (10.43.0.7:1)"
            return line.split("(", 1)[1].rsplit(":", 1)[0]
    return ""


def addresses(output: str) -> list[str]:
    """The answers' addresses in busybox nslookup's output (not the server's)."""
    return sorted(
        line.split()[-1]
        for line in output.splitlines()
        if line.startswith("Address:") and ":53" not in line
    )


def service(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


def endpoint_slice(
    name: str, svc: str, endpoints: list[dict[str, Any]], ports: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/service-name": svc,
                "endpointslice.kubernetes.io/managed-by": "e2e.pilothouse.dev",
            },
        },
        "addressType": "IPv4",
        "ports": ports,
        "endpoints": endpoints,
    }


def test_pods_get_cluster_dns_in_resolv_conf_and_their_fqdn_in_hosts(
    cluster: Cluster, ns: str
) -> None:
    run_pod(cluster, ns, "db-0", hostname="db-0", subdomain="db")
    resolv = cluster.kubectl("-n", ns, "exec", "db-0", "--", "cat", "/etc/resolv.conf").stdout
    assert resolv.splitlines() == [
        f"search {ns}.svc.cluster.local svc.cluster.local cluster.local upstream.example",
        "nameserver 10.43.0.10",
        "options ndots:5",
    ]
    ip = cluster.pod(ns, "db-0")["status"]["podIP"]
    hosts = cluster.kubectl("-n", ns, "exec", "db-0", "--", "cat", "/etc/hosts").stdout
    assert f"{ip}\tdb-0.db.{ns}.svc.cluster.local\tdb-0" in hosts.splitlines()
    assert cluster.kubectl("-n", ns, "exec", "db-0", "--", "hostname").stdout.strip() == "db-0"
    # Default: the node's resolv.conf (here --resolv-conf); None: only dnsConfig.
    run_pod(cluster, ns, "plain", dnsPolicy="Default")
    plain = cluster.kubectl("-n", ns, "exec", "plain", "--", "cat", "/etc/resolv.conf").stdout
    assert plain.splitlines() == ["search upstream.example", f"nameserver {UPSTREAM_IP}"]
    run_pod(
        cluster,
        ns,
        "custom",
        dnsPolicy="None",
        dnsConfig={
            "nameservers": ["10.43.0.10"],
            "searches": [f"{ns}.svc.cluster.local"],
            "options": [{"name": "ndots", "value": "1"}],
        },
    )
    custom = cluster.kubectl("-n", ns, "exec", "custom", "--", "cat", "/etc/resolv.conf").stdout
    assert custom.splitlines() == [
        f"search {ns}.svc.cluster.local",
        "nameserver 10.43.0.10",
        "options ndots:1",
    ]


def test_a_service_name_resolves_from_a_pod(cluster: Cluster, ns: str, client_pod: str) -> None:
    cluster.apply(ns, service("web", ports=[{"name": "http", "port": 80, "targetPort": 8080}]))
    ip = cluster.json("-n", ns, "get", "svc", "web")["spec"]["clusterIP"]
    out = nslookup_until(cluster, ns, f"web.{ns}.svc.cluster.local", until=lambda o: ip in o)
    assert addresses(out) == [ip], out
    assert ip in addresses(nslookup(cluster, ns, "web"))
    # Through the C library, as programs resolve: the search path finds every short form.
    for name in (f"web.{ns}.svc.cluster.local", f"web.{ns}.svc", f"web.{ns}", "web"):
        assert libc_lookup(cluster, ns, name) == ip, name
    out = nslookup(cluster, ns, ip)
    assert f"name = web.{ns}.svc.cluster.local" in out, out
    missing = nslookup(cluster, ns, f"nope.{ns}.svc.cluster.local")
    assert "NXDOMAIN" in missing, missing
    # The kube-dns Service says where cluster DNS is.
    kube_dns = cluster.json("-n", "kube-system", "get", "svc", "kube-dns")
    assert kube_dns["spec"]["clusterIP"] == "10.43.0.10"
    assert addresses(nslookup(cluster, ns, "kube-dns.kube-system.svc.cluster.local")) == [
        "10.43.0.10"
    ]


def test_a_headless_service_resolves_to_every_ready_pod(
    cluster: Cluster, ns: str, client_pod: str
) -> None:
    ips = {}
    for name in ("pg-0", "pg-1"):
        ips[name] = run_pod(cluster, ns, name)["status"]["podIP"]
    cluster.apply(
        ns, service("pg", clusterIP="None", ports=[{"name": "pg", "port": 5432, "protocol": "TCP"}])
    )
    endpoints = [
        {"addresses": [ips["pg-0"]], "conditions": {"ready": True}, "hostname": "pg-0"},
        {"addresses": [ips["pg-1"]], "conditions": {"ready": True}},
        {"addresses": ["10.42.255.254"], "conditions": {"ready": False}},  # not ready: not in DNS
    ]
    cluster.apply(
        ns,
        endpoint_slice(
            "pg-manual", "pg", endpoints, [{"name": "pg", "port": 5432, "protocol": "TCP"}]
        ),
    )
    want = sorted(ips.values())
    out = nslookup_until(cluster, ns, "pg", until=lambda o: addresses(o) == want)
    assert addresses(out) == want
    out = nslookup(cluster, ns, f"pg-0.pg.{ns}.svc.cluster.local")
    assert addresses(out) == [ips["pg-0"]], out
    # SRV for the named port: one target per ready endpoint.
    out = nslookup(cluster, ns, "-type=srv", f"_pg._tcp.pg.{ns}.svc.cluster.local")
    targets = sorted(line.split()[-1] for line in out.splitlines() if "service =" in line)
    dashed = ips["pg-1"].replace(".", "-")
    assert targets == sorted(
        [f"pg-0.pg.{ns}.svc.cluster.local", f"{dashed}.pg.{ns}.svc.cluster.local"]
    ), out
    assert all(" 5432 " in line for line in out.splitlines() if "service =" in line), out
    # No ready endpoint at all: the name does not exist.
    cluster.apply(ns, service("empty", clusterIP="None", ports=[{"port": 1}]))
    assert "NXDOMAIN" in nslookup(cluster, ns, f"empty.{ns}.svc.cluster.local")


@pytest.mark.skipif(
    not any("endpointslice" in name for name in manager.default_controllers()),
    reason="needs the EndpointSlice controller (services work, issue 10); the slices written "
    "by hand in test_a_headless_service_resolves_to_every_ready_pod cover DNS itself",
)
def test_a_headless_service_by_selector_follows_readiness(
    cluster: Cluster, ns: str, client_pod: str
) -> None:
    ips = []
    for name in ("sel-0", "sel-1"):
        ips.append(run_pod(cluster, ns, name, labels={"tier": "sel"})["status"]["podIP"])
    cluster.apply(
        ns,
        service(
            "sel", clusterIP="None", selector={"tier": "sel"}, ports=[{"name": "http", "port": 80}]
        ),
    )
    out = nslookup_until(
        cluster, ns, "sel", until=lambda o: addresses(o) == sorted(ips), timeout=30
    )
    assert addresses(out) == sorted(ips)


@pytest.mark.skipif(
    importlib.util.find_spec("pilothouse.proxy") is None
    or not any("endpointslice" in name for name in manager.default_controllers()),
    reason="needs the service proxy and the EndpointSlice controller (services work, issue 10)",
)
def test_a_service_is_reached_by_every_form_of_its_name(
    cluster: Cluster, ns: str, client_pod: str
) -> None:
    container = {
        "name": "httpd",
        "image": cluster.image,
        "command": ["httpd", "-f", "-p", "8080", "-h", "/etc"],
        "ports": [{"containerPort": 8080}],
    }
    cluster.apply(
        ns,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [container], "terminationGracePeriodSeconds": 2},
                },
            },
        },
    )
    cluster.apply(
        ns,
        service(
            "web", selector={"app": "web"}, ports=[{"name": "http", "port": 80, "targetPort": 8080}]
        ),
    )
    cluster.kubectl("-n", ns, "rollout", "status", "deployment/web", "--timeout=90s")
    ip = cluster.json("-n", ns, "get", "svc", "web")["spec"]["clusterIP"]
    pods = {
        p["metadata"]["name"]
        for p in cluster.json("-n", ns, "get", "pods", "-l", "app=web")["items"]
    }
    for host in ("web", f"web.{ns}", f"web.{ns}.svc.cluster.local", ip):

        def answered(h: str = host) -> str:
            proc = cluster.kubectl(
                "-n",
                ns,
                "exec",
                "client",
                "--",
                "timeout",
                "5",
                "wget",
                "-q",
                "-O",
                "-",
                f"http://{h}/hostname",
                check=False,
            )
            return proc.stdout.strip() if proc.stdout.strip() in pods else ""

        assert cluster.wait(answered, timeout=30, what=f"http://{host}/") in pods


def test_external_name_answers_a_cname(
    cluster: Cluster, ns: str, client_pod: str, upstream: fake.FixedDNSServer
) -> None:
    cluster.apply(ns, service("web", ports=[{"port": 80}]))
    ip = cluster.json("-n", ns, "get", "svc", "web")["spec"]["clusterIP"]
    cluster.apply(
        ns, service("inside", type="ExternalName", externalName=f"web.{ns}.svc.cluster.local")
    )
    cluster.apply(ns, service("outside", type="ExternalName", externalName="alias.example"))
    out = nslookup_until(cluster, ns, "inside", until=lambda o: ip in o)
    assert f"canonical name = web.{ns}.svc.cluster.local" in out, out
    assert addresses(out) == [ip]
    out = nslookup(cluster, ns, f"outside.{ns}.svc.cluster.local")
    assert "canonical name = alias.example" in out, out
    assert addresses(out) == ["192.0.2.11"]  # followed through the upstream


def test_names_outside_the_cluster_are_forwarded(
    cluster: Cluster, ns: str, client_pod: str, upstream: fake.FixedDNSServer
) -> None:
    out = nslookup(cluster, ns, "outside.example.")
    assert addresses(out) == ["192.0.2.10"], out
    assert ("outside.example.", "A", "udp") in upstream.queries
    # With ndots:5 the C library tries the search path first; each cluster step is a quick
    # NXDOMAIN, then the upstream's search domain, then the name itself.
    del upstream.queries[:]
    assert libc_lookup(cluster, ns, "outside.example") == "192.0.2.10"
    asked = [q[0] for q in upstream.queries if q[1] == "A"]
    assert asked[-2:] == ["outside.example.upstream.example.", "outside.example."], asked
    assert not [q for q in asked if q.endswith("cluster.local.")]  # never leaked upstream


def test_cluster_dns_comes_back_after_the_node_restarts(
    cluster: Cluster, ns: str, client_pod: str
) -> None:
    cluster.apply(ns, service("web", ports=[{"port": 80}]))
    ip = cluster.json("-n", ns, "get", "svc", "web")["spec"]["clusterIP"]
    cluster.wait(lambda: ip in nslookup(cluster, ns, "web"), timeout=20, what="web to resolve")
    cluster.srv.kill()  # the agent (and the server) die without cleaning up
    cluster.srv.start(timeout=60)
    out = nslookup_until(cluster, ns, "web", until=lambda o: ip in o, timeout=60)
    assert addresses(out) == [ip]
    assert (
        json.loads(cluster.kubectl("-n", ns, "get", "pod", "client", "-o", "json").stdout)[
            "status"
        ]["containerStatuses"][0]["restartCount"]
        == 0
    )
