"""config.json generation (no root needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pilothouse.node.runtime import cgroups, ocispec, protocol

HYBRID = cgroups.Layout(
    mode="hybrid", v1={"memory": Path("/sys/fs/cgroup/memory")}, swap_accounting=True
)
V2 = cgroups.Layout(
    mode="v2", unified=Path("/sys/fs/cgroup"), v2_controllers=frozenset({"cpu", "memory"})
)
POD = ocispec.PodContext(
    hostname="web-0",
    netns_path="/run/netns/pilothouse-s1",
    uts_path="/state/s1/uts",
    ipc_path="/state/s1/ipc",
    hosts_path="/state/s1/hosts",
    resolv_path="/state/s1/resolv.conf",
    hostname_path="/state/s1/hostname",
    shm_path="/state/s1/shm",
    sandbox_id="s1",
)
IMAGE = protocol.Image(id="sha256:abc", repo_tags=("app:1",), repo_digests=(), size=0, layers=())


def config(**fields: Any) -> protocol.ContainerConfig:
    return protocol.ContainerConfig(
        name="app", image=fields.pop("image", IMAGE), command=("/app", "--serve"), **fields
    )


def build(
    cfg: protocol.ContainerConfig,
    *,
    pod: ocispec.PodContext = POD,
    layout: cgroups.Layout = HYBRID,
    tmp: Path = Path("/nonexistent"),
) -> dict[str, Any]:
    return ocispec.build(
        cfg,
        container_id="c1",
        rootfs=tmp / "rootfs",
        cgroups_path="/pilothouse/podu1/c1",
        pod=pod,
        layout=layout,
        user=ocispec.User(0, 0),
        seccomp_dir=tmp,
        last_cap=40,
    )


def test_process_and_defaults() -> None:
    spec = build(config(env=(("A", "1"),), working_dir="/srv", oom_score_adj=-997))
    proc = spec["process"]
    assert proc["args"] == ["/app", "--serve"]
    assert proc["env"][0].startswith("PATH=/usr/local/sbin:")
    assert "A=1" in proc["env"] and "HOSTNAME=web-0" in proc["env"]
    assert (proc["cwd"], proc["terminal"], proc["oomScoreAdj"]) == ("/srv", False, -997)
    assert proc["capabilities"]["bounding"] == list(ocispec.DEFAULT_CAPABILITIES)
    assert "inheritable" not in proc["capabilities"] and "ambient" not in proc["capabilities"]
    [nofile] = proc["rlimits"]
    assert nofile["type"] == "RLIMIT_NOFILE" and nofile["soft"] == nofile["hard"] > 0
    assert spec["root"] == {"path": "/nonexistent/rootfs", "readonly": False}
    linux = spec["linux"]
    assert linux["cgroupsPath"] == "/pilothouse/podu1/c1"
    assert linux["maskedPaths"] == list(ocispec.MASKED_PATHS)
    assert "/proc/sys" in linux["readonlyPaths"]
    assert linux["seccomp"]["defaultAction"] == "SCMP_ACT_ALLOW"
    destinations = [m["destination"] for m in spec["mounts"]]
    for d in (
        "/proc",
        "/dev",
        "/dev/pts",
        "/dev/mqueue",
        "/sys",
        "/sys/fs/cgroup",
        "/dev/shm",
        "/etc/hosts",
        "/etc/resolv.conf",
        "/etc/hostname",
    ):
        assert d in destinations
    sysfs = next(m for m in spec["mounts"] if m["destination"] == "/sys")
    assert "ro" in sysfs["options"]


def test_namespaces_join_the_pod_by_path() -> None:
    ns = {n["type"]: n.get("path") for n in build(config())["linux"]["namespaces"]}
    assert ns == {
        "pid": None,
        "mount": None,
        "ipc": "/state/s1/ipc",
        "uts": "/state/s1/uts",
        "network": "/run/netns/pilothouse-s1",
    }
    hostnet = ocispec.PodContext(**{**POD.__dict__, "netns_path": "", "uts_path": ""})
    ns = {n["type"]: n.get("path") for n in build(config(), pod=hostnet)["linux"]["namespaces"]}
    assert "network" not in ns and "uts" not in ns
    assert "cgroup" in {n["type"] for n in build(config(), layout=V2)["linux"]["namespaces"]}


def test_resources() -> None:
    res = build(config(cpu_shares=512, cpu_quota=25_000, memory_limit=1 << 26, pids_limit=100))[
        "linux"
    ]["resources"]
    assert res["cpu"] == {"shares": 512, "quota": 25_000, "period": 100_000}
    assert res["memory"] == {"limit": 1 << 26, "swap": 1 << 26}
    assert res["pids"] == {"limit": 100}
    assert res["devices"][0] == {"allow": False, "access": "rwm"}
    res = build(config(memory_limit=1 << 26), layout=V2)["linux"]["resources"]
    assert res["memory"] == {"limit": 1 << 26}  # no swap accounting there
    assert "memory" not in build(config())["linux"]["resources"]


@pytest.mark.parametrize(
    ("add", "drop", "expected_in", "expected_out"),
    [
        (("NET_ADMIN",), (), {"CAP_NET_ADMIN", "CAP_CHOWN"}, set()),
        ((), ("NET_RAW", "cap_mknod"), {"CAP_CHOWN"}, {"CAP_NET_RAW", "CAP_MKNOD"}),
        (("NET_BIND_SERVICE",), ("ALL",), {"CAP_NET_BIND_SERVICE"}, {"CAP_CHOWN"}),
        (("ALL",), (), {"CAP_SYS_ADMIN", "CAP_BPF"}, set()),
    ],
)
def test_capabilities(
    add: tuple[str, ...], drop: tuple[str, ...], expected_in: set[str], expected_out: set[str]
) -> None:
    caps = set(ocispec.capabilities(config(add_capabilities=add, drop_capabilities=drop), 40))
    assert expected_in <= caps
    assert not (expected_out & caps)


def test_privileged_has_everything_and_no_confinement() -> None:
    spec = build(config(privileged=True, no_new_privileges=True))
    assert len(spec["process"]["capabilities"]["bounding"]) == 41
    assert spec["process"]["noNewPrivileges"] is False
    linux = spec["linux"]
    assert "seccomp" not in linux and "maskedPaths" not in linux
    assert linux["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    sysfs = next(m for m in spec["mounts"] if m["destination"] == "/sys")
    assert "rw" in sysfs["options"]


def test_seccomp_choices(tmp_path: Path) -> None:
    assert "seccomp" not in build(config(seccomp="Unconfined"))["linux"]
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "audit.json").write_text('{"defaultAction": "SCMP_ACT_LOG"}')
    spec = build(config(seccomp="Localhost/profiles/audit.json"), tmp=tmp_path)
    assert spec["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_LOG"
    with pytest.raises(ValueError, match=r"missing\.json"):
        build(config(seccomp="Localhost/missing.json"), tmp=tmp_path)


def test_agent_mounts_and_overrides() -> None:
    mounts = (
        protocol.Mount("/data", "/var/lib/pods/u1/volumes/data", readonly=True),
        protocol.Mount("/etc/hosts", "/custom/hosts"),
        protocol.Mount("/shared", "/host/shared", propagation="rslave"),
    )
    spec = build(config(mounts=mounts, read_only_rootfs=True))
    by_dest: dict[str, list[dict[str, Any]]] = {}
    for m in spec["mounts"]:
        by_dest.setdefault(m["destination"], []).append(m)
    assert by_dest["/data"][0]["options"] == ["rbind", "rprivate", "ro"]
    assert [m["source"] for m in by_dest["/etc/hosts"]] == ["/custom/hosts"]
    assert by_dest["/shared"][0]["options"][1] == "rslave"
    assert spec["linux"]["rootfsPropagation"] == "rslave"
    assert spec["root"]["readonly"] is True
    assert "ro" in by_dest["/etc/resolv.conf"][0]["options"]  # read-only rootfs: managed files too


def test_resolve_user(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text(
        "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n"
    )
    (root / "etc" / "group").write_text("root:x:0:\napp:x:1001:\nwheel:x:10:app,bob\nstaff:x:50:\n")

    def user(**fields: Any) -> ocispec.User:
        image = fields.pop("image", IMAGE)
        return ocispec.resolve_user(root, config(image=image, **fields))

    assert user() == ocispec.User(0, 0, (0,))
    assert user(run_as_user=1000) == ocispec.User(1000, 1001, (1001, 10))
    assert user(run_as_user=1000, run_as_group=50, supplemental_groups=(7,)) == ocispec.User(
        1000, 50, (50, 10, 7)
    )
    assert user(run_as_user=4242) == ocispec.User(4242, 0, (0,))
    named = protocol.Image(
        id="x", repo_tags=(), repo_digests=(), size=0, layers=(), user="app:staff"
    )
    assert user(image=named) == ocispec.User(1000, 50, (50, 10))
    numeric = protocol.Image(id="x", repo_tags=(), repo_digests=(), size=0, layers=(), user="12:34")
    assert user(image=numeric) == ocispec.User(12, 34, (34,))
    missing = protocol.Image(id="x", repo_tags=(), repo_digests=(), size=0, layers=(), user="ghost")
    with pytest.raises(ValueError, match="unable to find user ghost"):
        user(image=missing)


def test_image_symlinks_cannot_reach_host_files(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").symlink_to("/etc/passwd")  # absolute: the host's on our side
    assert ocispec.resolve_user(root, config(run_as_user=0)) == ocispec.User(0, 0, (0,))
    assert ocispec._table(root, "etc/passwd") == []


def test_exec_process_reuses_the_container_process() -> None:
    spec = build(config(tty=True, run_as_user=5))
    proc = ocispec.exec_process(spec, ["cat", "/etc/hostname"])
    assert proc["args"] == ["cat", "/etc/hostname"]
    assert proc["terminal"] is False
    assert proc["env"] == spec["process"]["env"]
    assert "oomScoreAdj" not in proc
