"""Into running containers: exec (probes and streams), attach, and the security defaults (root)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from pilothouse.node.runtime import logs, protocol

from .conftest import RuntimeEnv
from .pods import read, start

pytestmark = [
    pytest.mark.root,
    pytest.mark.containers,
    pytest.mark.netns,
    pytest.mark.usefixtures("host_ready"),
]


async def test_exec_sync_output_exit_code_and_timeout(
    runtime_env: RuntimeEnv, busybox_image: protocol.Image
) -> None:
    rt = await runtime_env.started()
    sb = await rt.run_pod_sandbox(runtime_env.sandbox_config())
    cid = await start(rt, sb.id, busybox_image, ("sleep", "300"), env=(("GREETING", "hi"),))
    code, out, err = await rt.exec_sync(
        cid, ["sh", "-c", "echo $GREETING; echo oops >&2; exit 3"], timeout=5
    )
    assert (code, out, err) == (3, b"hi\n", b"oops\n")
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        await rt.exec_sync(cid, ["sleep", "30"], timeout=0.5)
    assert time.monotonic() - t0 < 5
    _, ps, _ = await rt.exec_sync(cid, ["ps", "-o", "args"], timeout=5)
    assert b"sleep 30" not in ps.splitlines()  # killed (a zombie "[sleep]" at most)
    await rt.stop_container(cid, timeout=0)
    with pytest.raises(protocol.RuntimeError_):
        await rt.exec_sync(cid, ["true"], timeout=5)


async def test_exec_streams_with_pipes_and_a_terminal(
    runtime_env: RuntimeEnv, busybox_image: protocol.Image
) -> None:
    rt = await runtime_env.started()
    sb = await rt.run_pod_sandbox(runtime_env.sandbox_config())
    cid = await start(rt, sb.id, busybox_image, ("sleep", "300"))

    proc = await rt.exec(
        cid, ["sh", "-c", "tr a-z A-Z; echo done >&2; exit 4"], tty=False, stdin=True
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    proc.stdin.write(b"hello\n")
    await proc.stdin.drain()
    proc.stdin.close()
    assert await asyncio.wait_for(proc.stdout.read(), 5) == b"HELLO\n"
    assert await proc.stderr.read() == b"done\n"
    assert await asyncio.wait_for(proc.wait(), 5) == 4
    await proc.close()

    term = await rt.exec(cid, ["sh"], tty=True, stdin=True)
    assert term.stdin is not None and term.stdout is not None and term.stderr is None
    term.resize(100, 40)
    term.stdin.write(b"tty; stty size; exit 3\n")
    await term.stdin.drain()
    output = await asyncio.wait_for(term.stdout.read(), 5)
    assert b"/dev/pts/" in output and b"40 100" in output, output
    assert await asyncio.wait_for(term.wait(), 5) == 3
    await term.close()

    runaway = await rt.exec(cid, ["sleep", "100"], tty=False, stdin=False)
    await runaway.close()  # kills it
    _, ps, _ = await rt.exec_sync(cid, ["ps", "-o", "args"], timeout=5)
    assert b"sleep 100" not in ps.splitlines()


async def test_attach_to_the_main_process(
    runtime_env: RuntimeEnv, busybox_image: protocol.Image
) -> None:
    rt = await runtime_env.started()
    sb = await rt.run_pod_sandbox(runtime_env.sandbox_config())
    script = (
        "while read line; do echo got $line; echo err $line >&2; [ $line = bye ] && exit 5; done"
    )
    cid = await start(
        rt,
        sb.id,
        busybox_image,
        ("sh", "-c", script),
        stdin=True,
        log_path=runtime_env.log_path("attach"),
    )
    session = await rt.attach(cid, stdin=True, tty=False)
    assert session.stdin is not None and session.stdout is not None and session.stderr is not None
    session.stdin.write(b"hi\n")
    await session.stdin.drain()
    assert await asyncio.wait_for(session.stdout.readline(), 5) == b"got hi\n"
    assert await asyncio.wait_for(session.stderr.readline(), 5) == b"err hi\n"
    session.stdin.write(b"bye\n")
    await session.stdin.drain()
    assert await asyncio.wait_for(session.wait(), 10) == 5
    await session.close()
    assert logs.messages(Path(runtime_env.log_path("attach")), stream="stdout") == [
        b"got hi",
        b"got bye",
    ]


async def test_security_defaults(runtime_env: RuntimeEnv, busybox_image: protocol.Image) -> None:
    rt = await runtime_env.started()
    sb = await rt.run_pod_sandbox(runtime_env.sandbox_config())
    default = await start(rt, sb.id, busybox_image, ("sleep", "300"), name="default")
    code, out, _ = await rt.exec_sync(
        default, ["sh", "-c", "grep CapEff /proc/self/status"], timeout=5
    )
    # CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP NET_BIND_SERVICE NET_RAW
    # SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP
    assert out.split()[1] == b"00000000a80425fb"
    code, _, err = await rt.exec_sync(default, ["unshare", "-U", "true"], timeout=5)
    assert code != 0 and b"Operation not permitted" in err  # seccomp: no user namespaces
    code, out, _ = await rt.exec_sync(default, ["sh", "-c", "wc -c < /proc/timer_list"], timeout=5)
    assert (code, out.strip()) == (0, b"0")  # masked (the host's is not empty)
    assert read("/proc/timer_list")
    code, _, _ = await rt.exec_sync(
        default, ["sh", "-c", "echo 1 > /proc/sys/kernel/panic"], timeout=5
    )
    assert code != 0  # read-only

    locked = await start(
        rt, sb.id, busybox_image, ("sleep", "300"), name="locked",
        run_as_user=1000, read_only_rootfs=True, drop_capabilities=("ALL",),
        add_capabilities=("NET_BIND_SERVICE",), seccomp="Unconfined", no_new_privileges=True,
    )  # fmt: skip
    code, out, _ = await rt.exec_sync(locked, ["id"], timeout=5)
    assert out.startswith(b"uid=1000(app) gid=1000(app) groups=1000(app),2000(extra)"), out
    code, _, _ = await rt.exec_sync(locked, ["touch", "/newfile"], timeout=5)
    assert code != 0
    code, out, _ = await rt.exec_sync(
        locked, ["sh", "-c", "grep -E 'CapBnd|NoNewPrivs' /proc/self/status"], timeout=5
    )
    assert b"0000000000000400" in out and b"NoNewPrivs:\t1" in out
