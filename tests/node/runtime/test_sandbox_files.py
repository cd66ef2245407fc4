"""The pod's /etc files and its sandbox record."""

from __future__ import annotations

from pathlib import Path

from pilothouse.node.runtime import protocol, sandbox


def cfg(**fields: object) -> protocol.SandboxConfig:
    return protocol.SandboxConfig(
        uid="u1", namespace="ns", name="web-0", hostname="web-0", **fields
    )  # type: ignore[arg-type]


def test_hosts_file_like_kubelet() -> None:
    text = sandbox.hosts_file(cfg(host_aliases=(("10.0.0.9", ("db", "db.local")),)), "10.42.0.7")
    lines = text.splitlines()
    assert lines[0] == "# Kubernetes-managed hosts file."
    assert "127.0.0.1\tlocalhost" in lines and "::1\tlocalhost ip6-localhost ip6-loopback" in lines
    assert "10.42.0.7\tweb-0" in lines
    assert lines[-2:] == ["# Entries added by HostAliases.", "10.0.0.9\tdb\tdb.local"]


def test_hosts_file_host_network(tmp_path: Path) -> None:
    node = tmp_path / "hosts"
    node.write_text("127.0.0.1 localhost\n192.168.1.5 node1\n")
    text = sandbox.hosts_file(cfg(host_network=True), "", node_hosts=node)
    assert text.startswith("# Kubernetes-managed hosts file (host network).\n127.0.0.1 localhost\n")
    assert "192.168.1.5 node1" in text


def test_resolv_conf(tmp_path: Path) -> None:
    dns = protocol.DNSConfig(
        servers=("10.43.0.10",),
        searches=("ns.svc.cluster.local", "svc.cluster.local"),
        options=("ndots:5",),
    )
    assert sandbox.resolv_conf(dns) == (
        "search ns.svc.cluster.local svc.cluster.local\nnameserver 10.43.0.10\noptions ndots:5\n"
    )
    node = tmp_path / "resolv.conf"
    node.write_text("nameserver 1.1.1.1\n")
    assert sandbox.resolv_conf(protocol.DNSConfig(), node_resolv=node) == "nameserver 1.1.1.1\n"


def test_record_round_trip(tmp_path: Path) -> None:
    rec = sandbox.SandboxRecord(
        id="s1", uid="u1", namespace="ns", name="web-0", hostname="web-0", host_network=False,
        cgroup_parent="/pilothouse/podu1", created_at=12.5, ip="10.42.0.7", netns_path="/run/netns/x",
    )  # fmt: skip
    rec.save(tmp_path)
    loaded = sandbox.SandboxRecord.load(tmp_path)
    assert loaded == rec
    sb = loaded.to_sandbox()
    assert (sb.id, sb.ip, sb.state, sb.hostname) == ("s1", "10.42.0.7", "notready", "web-0")
    assert sandbox.SandboxRecord.load(tmp_path / "missing") is None


def test_pinned_tells_a_mount_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("")
    assert not sandbox.pinned(str(tmp_path / "plain"))
    assert not sandbox.pinned("")
    assert not sandbox.pinned(str(tmp_path / "gone"))


def test_hosts_file_names_the_fqdn_with_a_subdomain() -> None:
    text = sandbox.hosts_file(cfg(domain="db.shop.svc.cluster.local"), "10.42.0.7")
    assert "10.42.0.7\tweb-0.db.shop.svc.cluster.local\tweb-0" in text.splitlines()


def test_kernel_hostname() -> None:
    assert sandbox.kernel_hostname(cfg()) == "web-0"
    fqdn = "web-0.db.shop.svc.cluster.local"
    assert (
        sandbox.kernel_hostname(cfg(domain="db.shop.svc.cluster.local", kernel_hostname=fqdn))
        == fqdn
    )
