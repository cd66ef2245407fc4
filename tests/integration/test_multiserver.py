"""Three ``pilothouse server`` processes on a real three-member etcd cluster: one cluster.

The first server founds it; the other two join with its token and ``--server`` and
nothing else. Every server serves the same objects and watch events; a server with
another token or another cluster's data directory is refused; losing an etcd member
or a server loses nothing acknowledged; killing the leader of the controllers and the
scheduler hands both Leases to a live server and the Deployment still converges.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import pathlib
import re
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest

from pilothouse import testing
from pilothouse.api import errors, resources
from pilothouse.client import config, rest
from pilothouse.storage.etcd import testing as etcd_testing

pytestmark = [pytest.mark.slow]

CONFIGMAPS = resources.DEFAULT.by_path("", "v1", "configmaps")
DEPLOYMENTS = resources.DEFAULT.by_path("apps", "v1", "deployments")
LEASES = resources.DEFAULT.by_path("coordination.k8s.io", "v1", "leases")
NAMESPACES = resources.DEFAULT.by_path("", "v1", "namespaces")


class Cluster:
    def __init__(self, root: pathlib.Path, etcd: etcd_testing.EtcdCluster) -> None:
        self.root = root
        self.etcd = etcd
        self.prefix = f"/ha/{uuid.uuid4().hex[:8]}"
        self.servers: list[testing.ServerProcess] = []
        self.token = ""

    def datastore_args(self) -> list[str]:
        return ["--datastore-endpoint", self.etcd.endpoint, "--datastore-prefix", self.prefix]

    def start(self, size: int = 3) -> None:
        first = testing.ServerProcess(self.root / "s0", extra_args=self.datastore_args())
        self.servers.append(first.start(timeout=60))
        self.token = (first.data_dir / "token").read_text().strip()
        for i in range(1, size):
            joining = testing.ServerProcess(
                self.root / f"s{i}",
                extra_args=[
                    *self.datastore_args(),
                    "--token",
                    self.token,
                    "--server",
                    first.url,
                ],
            )
            self.servers.append(joining.start(timeout=60))

    def client(self, i: int) -> rest.Client:
        return rest.Client(config.load_kubeconfig(self.servers[i].kubeconfig))

    def alive(self) -> list[int]:
        return [
            i for i, s in enumerate(self.servers) if s.proc is not None and s.proc.poll() is None
        ]

    def stop(self) -> None:
        for s in self.servers:
            s.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if not etcd_testing.available():
        pytest.fail("etcd is not installed: run `make install-test` (Debian's etcd-server)")
    root = tmp_path_factory.mktemp("ha")
    with etcd_testing.EtcdCluster(3) as etcd:
        c = Cluster(root, etcd)
        try:
            c.start()
            yield c
        finally:
            c.stop()


@contextlib.asynccontextmanager
async def clients(cluster: Cluster) -> AsyncIterator[list[rest.Client]]:
    made = [cluster.client(i) for i in range(len(cluster.servers))]
    try:
        yield made
    finally:
        for c in made:
            await c.close()


def configmap(name: str, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels},
        "data": {"k": "v"},
    }


@pytest.mark.kubectl
async def test_every_server_serves_the_same_objects_and_watch_events(cluster: Cluster) -> None:
    async with clients(cluster) as cs:
        listed = await cs[2].list(CONFIGMAPS, "default")
        events: list[tuple[str, str]] = []

        async def watch() -> None:
            async for event in cs[2].watch(
                CONFIGMAPS,
                "default",
                resource_version=listed["metadata"]["resourceVersion"],
                timeout_seconds=20,
            ):
                events.append((event["type"], event["object"]["metadata"]["name"]))
                if len(events) == 2:
                    return

        watcher = asyncio.create_task(watch())
        created = await cs[0].create(CONFIGMAPS, configmap("shared"), "default")
        for c in cs[1:]:
            got = await c.get(CONFIGMAPS, "shared", "default")
            assert got["metadata"]["uid"] == created["metadata"]["uid"]
        created["data"] = {"k": "changed on server 1"}
        await cs[1].update(CONFIGMAPS, created)
        await asyncio.wait_for(watcher, 20)
        assert events == [("ADDED", "shared"), ("MODIFIED", "shared")]
        for s in cluster.servers:  # and the real kubectl, against each server
            _, out, _ = await testing.run_kubectl(
                s.kubeconfig, "get", "configmap", "shared", "-o", "jsonpath={.data.k}"
            )
            assert out == "changed on server 1"


def run_server(data_dir: pathlib.Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pilothouse.cli.main",
            "server",
            "--data-dir",
            str(data_dir),
            "--bind-address",
            "127.0.0.1",
            "--https-port",
            str(testing.free_port()),
            "--advertise-address",
            "127.0.0.1",
            "--disable-agent",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_server_with_another_token_is_refused(cluster: Cluster, tmp_path: pathlib.Path) -> None:
    digest = cluster.token.partition("::")[0]
    proc = run_server(
        tmp_path / "other-token",
        *cluster.datastore_args(),
        "--token",
        f"{digest}::zzzzzz.zzzzzzzzzzzzzzzz",
    )
    assert proc.returncode == 1
    assert "bootstrap data already found and encrypted with different token" in proc.stderr
    assert "--token" in proc.stderr
    # No token at all on a datastore that holds a cluster: the same refusal.
    proc = run_server(tmp_path / "no-token", *cluster.datastore_args())
    assert proc.returncode == 1
    assert "encrypted with different token" in proc.stderr


def test_a_server_whose_data_dir_has_another_ca_is_refused(
    cluster: Cluster, tmp_path: pathlib.Path
) -> None:
    from pilothouse.apiserver.auth import certs

    certs.ensure_pki(tmp_path / "other")  # a data dir that once ran a cluster of its own
    proc = run_server(tmp_path / "other", *cluster.datastore_args(), "--token", cluster.token)
    assert proc.returncode == 1
    assert "belongs to another cluster" in proc.stderr
    assert "empty --data-dir" in proc.stderr


def test_server_url_of_another_cluster_is_refused(cluster: Cluster, tmp_path: pathlib.Path) -> None:
    with testing.ServerProcess(tmp_path / "stranger") as stranger:  # its own SQLite cluster
        proc = run_server(
            tmp_path / "joiner",
            *cluster.datastore_args(),
            "--token",
            cluster.token,
            "--server",
            stranger.url,
        )
    assert proc.returncode == 1
    assert "presents a CA that is not the cluster's" in proc.stderr


async def test_the_api_keeps_serving_when_an_etcd_member_dies(cluster: Cluster) -> None:
    victim = cluster.etcd.members[0]
    victim.stop()
    try:
        async with clients(cluster) as cs:
            failures = 0
            for n in range(30):
                c = cs[n % len(cs)]
                try:
                    await c.create(CONFIGMAPS, configmap(f"member-down-{n}"), "default")
                except errors.StatusError as exc:
                    # A write in flight on the dead member's connection is reported (503),
                    # never repeated; the client then moves to a live member.
                    assert exc.code in (503, 504), exc
                    failures += 1
                    await c.create(CONFIGMAPS, configmap(f"member-down-{n}"), "default")
            assert failures <= len(cs), failures
            for c in cs:
                names = {
                    o["metadata"]["name"] for o in (await c.list(CONFIGMAPS, "default"))["items"]
                }
                assert {f"member-down-{n}" for n in range(30)} <= names
    finally:
        victim.start()


async def test_concurrent_creates_while_a_server_dies_lose_nothing_acknowledged(
    cluster: Cluster,
) -> None:
    async with clients(cluster) as cs:
        await cs[0].create(
            NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "burst"}}
        )
        acknowledged: set[str] = set()
        sem = asyncio.Semaphore(48)
        victim = 2

        async def one(n: int) -> None:
            body = configmap("", request=f"r{n}")
            del body["metadata"]["name"]
            body["metadata"]["generateName"] = "burst-"
            async with sem:
                try:
                    await cs[n % 3].create(CONFIGMAPS, body, "burst")
                except (
                    errors.StatusError,
                    rest.TransportError,
                    aiohttp.ClientError,
                    OSError,
                    TimeoutError,
                ):
                    return  # not acknowledged: may or may not exist, never twice
                acknowledged.add(f"r{n}")
                if len(acknowledged) == 300:
                    cluster.servers[victim].kill()

        await asyncio.gather(*(one(n) for n in range(1000)))
        assert cluster.servers[victim].proc is not None
        assert cluster.servers[victim].proc.poll() is not None, "the server was not killed"
        assert len(acknowledged) >= 600, len(acknowledged)
        stored = await cs[0].list_all(CONFIGMAPS, "burst", label_selector="request")
        per_request = collections.Counter(
            o["metadata"]["labels"]["request"] for o in stored["items"]
        )
        assert acknowledged <= set(per_request), acknowledged - set(per_request)
        assert max(per_request.values()) == 1, per_request.most_common(3)
        print(f"{len(acknowledged)} of 1000 creates acknowledged, {len(stored['items'])} stored")
        # The survivors agree.
        other = await cs[1].list_all(CONFIGMAPS, "burst", label_selector="request")
        assert len(other["items"]) == len(stored["items"])
    cluster.servers[victim].start(timeout=60)  # it rejoins with what its data dir holds


def holder_log(cluster: Cluster, identity: str) -> int:
    for i, s in enumerate(cluster.servers):
        if f"{identity}: became leader" in s.log_path.read_text():
            return i
    raise AssertionError(f"no server log names {identity} as leader")


async def test_killing_the_leader_hands_over_and_a_scaled_deployment_converges(
    cluster: Cluster,
) -> None:
    async with clients(cluster) as cs:
        deployment = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}]},
                },
            },
        }
        await cs[0].create(DEPLOYMENTS, deployment, "default")

        async def holder(name: str) -> str:
            lease = await cs[cluster.alive()[0]].get(LEASES, name, "kube-system")
            return str(lease["spec"]["holderIdentity"])

        async def replicas() -> int:
            d = await cs[cluster.alive()[0]].get(DEPLOYMENTS, "web", "default")
            return int((d.get("status") or {}).get("replicas") or 0)

        async def scaled_to(n: int) -> bool:
            return await replicas() == n

        await testing.eventually(lambda: scaled_to(1), timeout=30)
        leader = await holder("kube-controller-manager")
        victim = holder_log(cluster, leader)
        scheduler_leader = await holder("kube-scheduler")
        cluster.servers[victim].kill()
        killed_at = time.monotonic()
        survivor = next(i for i in cluster.alive() if i != victim)
        await cs[survivor].patch(DEPLOYMENTS, "web", {"spec": {"replicas": 3}}, "default")
        await testing.eventually(lambda: scaled_to(3), timeout=20)
        converged = time.monotonic() - killed_at
        assert converged <= 20, converged
        assert await holder("kube-controller-manager") != leader
        if holder_log(cluster, scheduler_leader) == victim:

            async def moved() -> bool:
                return await holder("kube-scheduler") != scheduler_leader

            await testing.eventually(moved, timeout=20)
        print(f"leader killed -> Deployment scaled and converged in {converged:.1f}s")
    cluster.servers[victim].start(timeout=60)


def test_the_servers_took_their_shared_files_from_the_datastore(cluster: Cluster) -> None:
    first = cluster.servers[0].data_dir
    for s in cluster.servers[1:]:
        for rel in ("pki/ca.crt", "pki/ca.key", "pki/service-account.key"):
            assert (s.data_dir / rel).read_bytes() == (first / rel).read_bytes()
        assert (s.data_dir / "cred/encryption-config.json").read_bytes() == (
            first / "cred/encryption-config.json"
        ).read_bytes()
        assert re.match(r"K10[0-9a-f]{64}::", (s.data_dir / "token").read_text())


async def test_a_key_rotated_on_one_server_is_used_by_every_server(cluster: Cluster) -> None:
    secrets = resources.DEFAULT.by_path("", "v1", "secrets")
    assert secrets is not None

    def secret(name: str) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
                "stringData": {"k": name}}  # fmt: skip

    async with clients(cluster) as cs:
        await cs[0].create(secrets, secret("before-rotation"), "default")
        proc = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "pilothouse.cli.main", "secrets-encrypt", "rotate-keys",
             "--wait", "--data-dir", str(cluster.servers[0].data_dir)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        # Written at once under the new key by server 0, read by the others (their watch
        # caches decode it: they took the new key from the datastore).
        await cs[0].create(secrets, secret("after-rotation"), "default")
        await cs[2].create(secrets, secret("from-server-2"), "default")
        for c in cs:
            for name in ("before-rotation", "after-rotation", "from-server-2"):

                async def readable(c: rest.Client = c, name: str = name) -> bool:
                    with contextlib.suppress(errors.StatusError):
                        got = await c.get(secrets, name, "default")
                        return bool(got["data"]["k"])
                    return False

                await testing.eventually(readable, timeout=10)
        # Every server ends with server 0's configuration (the old key dropped after the
        # re-encryption, there too).
        config = (cluster.servers[0].data_dir / "cred/encryption-config.json").read_bytes()
        assert config.count(b'"name"') == 1, config

        async def same_everywhere() -> bool:
            return all(
                (s.data_dir / "cred/encryption-config.json").read_bytes() == config
                for s in cluster.servers[1:]
            )

        await testing.eventually(same_everywhere, timeout=10)
        # The servers still serve watches (no cache died on an unreadable Secret).
        listed = await cs[1].list(secrets, "default")
        assert {"before-rotation", "after-rotation", "from-server-2"} <= {
            o["metadata"]["name"] for o in listed["items"]
        }


async def test_reads_right_after_a_write_on_another_server_see_it(cluster: Cluster) -> None:
    # GET and LIST without a resourceVersion are linearizable, as upstream's (which reads
    # etcd): a client that wrote through one server reads it back through any other.
    async with clients(cluster) as cs:
        for n in range(30):
            writer, reader = cs[n % 3], cs[(n + 1) % 3]
            made = await writer.create(CONFIGMAPS, configmap(f"ryw-{n}"), "default")
            got = await reader.get(CONFIGMAPS, f"ryw-{n}", "default")
            assert got["metadata"]["resourceVersion"] == made["metadata"]["resourceVersion"]
            listed = await cs[(n + 2) % 3].list(CONFIGMAPS, "default")
            assert f"ryw-{n}" in {o["metadata"]["name"] for o in listed["items"]}
            await writer.delete(CONFIGMAPS, f"ryw-{n}", "default")
            with pytest.raises(errors.StatusError) as gone:
                await reader.get(CONFIGMAPS, f"ryw-{n}", "default")
            assert errors.is_not_found(gone.value)
