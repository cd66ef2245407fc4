"""The in-memory runtime the agent's unit tests use."""

from __future__ import annotations

import pytest

from pilothouse.node.runtime import fake, protocol


async def test_pod_lifecycle_and_records() -> None:
    rt = fake.FakeRuntime()
    await rt.start()
    image = await rt.images.pull("busybox:1.36")
    assert image.repo_tags == ("busybox:1.36",) and rt.images.get(image.id) is image
    sb = await rt.run_pod_sandbox(
        protocol.SandboxConfig(uid="u1", namespace="ns", name="p", hostname="p")
    )
    assert sb.ip == "10.42.0.2" and sb.state == "ready"
    cid = await rt.create_container(
        sb.id, protocol.ContainerConfig(name="app", image=image, command=("sh",))
    )
    assert (await rt.container_status(cid)).state == "created"
    await rt.start_container(cid)
    st = await rt.container_status(cid)
    assert st.state == "running" and st.pid > 0 and st.image_ref.startswith("busybox@sha256:")
    assert rt.find("app").id == cid

    rt.exit(cid, 1)
    st = await rt.container_status(cid)
    assert (st.state, st.exit_code, st.reason, st.pid) == ("exited", 1, "Error", 0)
    assert [c[0] for c in rt.calls][:4] == [
        "start",
        "run_pod_sandbox",
        "create_container",
        "container_status",
    ]

    await rt.stop_pod_sandbox(sb.id)
    assert (await rt.list_sandboxes())[0].state == "notready"
    await rt.remove_pod_sandbox(sb.id)
    assert await rt.list_sandboxes() == [] and await rt.list_containers() == []


async def test_stop_codes_exit_on_start_and_exec() -> None:
    rt = fake.FakeRuntime()
    image = fake.FakeImageService.make("app:1")
    sb = await rt.run_pod_sandbox(
        protocol.SandboxConfig(uid="u", namespace="ns", name="p", hostname="p")
    )
    a = await rt.create_container(
        sb.id, protocol.ContainerConfig(name="a", image=image, command=("x",))
    )
    b = await rt.create_container(
        sb.id, protocol.ContainerConfig(name="b", image=image, command=("x",))
    )
    await rt.start_container(a)
    await rt.start_container(b)
    await rt.stop_container(a, timeout=30)
    await rt.stop_container(b, timeout=0)
    assert (await rt.container_status(a)).exit_code == 143
    assert (await rt.container_status(b)).exit_code == 137

    rt.exit_on_start["init"] = (0, "")
    c = await rt.create_container(
        sb.id, protocol.ContainerConfig(name="init", image=image, command=("x",))
    )
    await rt.start_container(c)
    assert (await rt.container_status(c)).reason == "Completed"

    d = await rt.create_container(
        sb.id, protocol.ContainerConfig(name="probe", image=image, command=("x",))
    )
    await rt.start_container(d)
    rt.exec_handler = lambda _cid, cmd: (0 if cmd == ["ok"] else 1, b"out", b"")
    assert await rt.exec_sync(d, ["ok"], timeout=1) == (0, b"out", b"")
    assert (await rt.exec_sync(d, ["nope"], timeout=1))[0] == 1
    assert rt.containers[d].exec_calls == [["ok"], ["nope"]]
    with pytest.raises(protocol.RuntimeError_):
        await rt.exec_sync(a, ["ok"], timeout=1)


async def test_injected_failures_and_pull_errors() -> None:
    rt = fake.FakeRuntime()
    rt.fail_next("run_pod_sandbox")
    with pytest.raises(protocol.RuntimeError_):
        await rt.run_pod_sandbox(
            protocol.SandboxConfig(uid="u", namespace="ns", name="p", hostname="p")
        )
    sb = await rt.run_pod_sandbox(
        protocol.SandboxConfig(uid="u", namespace="ns", name="p", hostname="p")
    )
    assert sb.ip == "10.42.0.2"
    rt.fake_images.fail("private/app:1", "pull access denied")
    with pytest.raises(protocol.ImagePullError) as err:
        await rt.images.pull("private/app:1")
    assert err.value.reason == "ErrImagePull" and "denied" in err.value.message
    rt.fake_images.heal("private/app:1")
    assert (await rt.images.pull("private/app:1")).repo_tags == ("private/app:1",)


async def test_changed_event_and_logs(tmp_path: object) -> None:
    from pathlib import Path

    log = Path(str(tmp_path)) / "logs" / "0.log"
    rt = fake.FakeRuntime()
    sb = await rt.run_pod_sandbox(
        protocol.SandboxConfig(uid="u", namespace="ns", name="p", hostname="p", host_network=True)
    )
    assert sb.ip == "" and sb.netns_path == ""
    cid = await rt.create_container(
        sb.id,
        protocol.ContainerConfig(
            name="a", image=fake.FakeImageService.make("a"), command=("x",), log_path=str(log)
        ),
    )
    await rt.start_container(cid)
    changed = rt.changed
    rt.exit(cid, 0)
    assert changed.is_set()
    rt.write_log(cid, "hello")
    assert log.read_text().endswith(" stdout F hello\n")


async def test_streams_in_the_fake() -> None:
    import asyncio

    rt = fake.FakeRuntime()
    image = fake.FakeImageService.make("app:1")
    sb = await rt.run_pod_sandbox(
        protocol.SandboxConfig(uid="u", namespace="ns", name="p", hostname="p")
    )
    cid = await rt.create_container(
        sb.id, protocol.ContainerConfig(name="a", image=image, command=("x",))
    )
    await rt.start_container(cid)
    rt.exec_handler = lambda _cid, cmd: (2, b"out:" + " ".join(cmd).encode(), b"err")
    proc = await rt.exec(cid, ["ls", "/"], tty=False, stdin=True)
    assert proc.stdout is not None and proc.stderr is not None and proc.stdin is not None
    assert (await proc.stdout.read(), await proc.stderr.read(), await proc.wait()) == (
        b"out:ls /",
        b"err",
        2,
    )
    proc.stdin.write(b"typed")
    proc.stdin.close()
    assert isinstance(proc, fake.FakeProcess) and await proc.stdin_data() == b"typed"
    proc.resize(80, 24)
    assert proc.resizes == [(80, 24)]

    rt.attach_output[cid] = b"log line\n"
    session = await rt.attach(cid, stdin=False, tty=True)
    assert session.stderr is None and session.stdout is not None
    assert await session.stdout.read() == b"log line\n"
    waiter = asyncio.create_task(session.wait())
    await asyncio.sleep(0)
    assert not waiter.done()
    rt.exit(cid, 9)
    assert await asyncio.wait_for(waiter, 1) == 9

    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    rt.port_targets[(sb.id, 80)] = ("127.0.0.1", port)
    reader, writer = await rt.port_forward(sb.id, 80)
    assert await reader.read() == b""
    writer.close()
    server.close()
    with pytest.raises(protocol.RuntimeError_):
        await rt.port_forward(sb.id, 81)
    stats = await rt.container_stats(cid)
    assert stats.cpu_usage_ns == 0


async def test_scripted_containers_end_as_their_command_says() -> None:
    import asyncio

    rt = fake.FakeRuntime(scripted=True)
    image = await rt.images.pull("busybox:1.36")
    sb = await rt.run_pod_sandbox(
        protocol.SandboxConfig(uid="u1", namespace="ns", name="p", hostname="p")
    )

    async def started(name: str, *argv: str) -> str:
        cid = await rt.create_container(
            sb.id, protocol.ContainerConfig(name=name, image=image, command=argv)
        )
        await rt.start_container(cid)
        return cid

    at_once = await started("quick", "sh", "-c", "exit 3")
    later = await started("later", "sh", "-c", "sleep 0.2; exit 7")
    forever = await started("server", "httpd", "-f")
    assert (await rt.container_status(at_once)).exit_code == 3
    assert (await rt.container_status(later)).state == "running"
    await asyncio.sleep(0.4)
    st = await rt.container_status(later)
    assert (st.state, st.exit_code, st.reason) == ("exited", 7, "Error")
    assert (await rt.container_status(forever)).state == "running"
    await rt.close()
