"""A real one-node cluster for end-to-end tests: `pilothouse server` with its agent
(crun under conmon, the CNI bridge), images from the local registry, driven with the
real kubectl. The fixtures live in conftest.py; each test module gets its own server.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from typing import Any

from pilothouse import testing


class Cluster:
    def __init__(self, srv: testing.ServerProcess, image: str) -> None:
        self.srv = srv
        self.image = image
        self.uids: set[str] = set()  # every pod the tests saw, for the leftovers check

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.srv.kubeconfig), **extra}

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            ["kubectl", *args],
            input=input,
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {proc.stdout}\n{proc.stderr}")
        return proc

    def kubectl_bytes(
        self,
        *args: str,
        input: bytes | None = None,
        check: bool = True,
        timeout: float = 120,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        """kubectl with bytes in and out (exec, cp, attach carry binary data)."""
        proc = subprocess.run(
            ["kubectl", *args],
            input=input,
            capture_output=True,
            env=self.env(**(env or {})),
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {proc.stdout!r}\n{proc.stderr!r}")
        return proc

    def json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json").stdout)

    def apply(self, ns: str, manifest: dict[str, Any]) -> None:
        self.kubectl("-n", ns, "apply", "-f", "-", input=json.dumps(manifest))

    def pod(self, ns: str, name: str) -> dict[str, Any]:
        obj: dict[str, Any] = self.json("-n", ns, "get", "pod", name)
        self.uids.add(obj["metadata"]["uid"])
        return obj

    def wait(self, check: Any, *, timeout: float = 60.0, what: str = "") -> Any:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = check()
            if last:
                return last
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what or check}: last {last!r}")

    def running(self, ns: str, name: str, timeout: float = 60.0) -> dict[str, Any]:
        def ok() -> dict[str, Any] | None:
            p = self.pod(ns, name)
            st = p.get("status") or {}
            return p if st.get("phase") == "Running" and st.get("podIP") else None

        try:
            result: dict[str, Any] = self.wait(ok, timeout=timeout, what=f"{ns}/{name} running")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.diagnose(ns, name)}") from None
        return result

    def diagnose(self, ns: str, name: str) -> str:
        """What a pod that did not come up says of itself: its status, its events and the
        end of the server's log (the agent runs in it), for a failure message."""
        pod = self.kubectl("-n", ns, "get", "pod", name, "-o", "json", check=False)
        status = json.loads(pod.stdout).get("status", {}) if pod.returncode == 0 else pod.stderr
        events = self.kubectl(
            "-n", ns, "get", "events", "--field-selector", f"involvedObject.name={name}",
            check=False,
        ).stdout  # fmt: skip
        log = self.srv.log_path.read_text(errors="replace").splitlines()[-25:]
        return (
            f"pod status: {json.dumps(status, indent=1)}\nevents:\n{events}"
            f"server log, last lines ({self.srv.log_path}):\n" + "\n".join(log)
        )

    def canary(self, timeout: float = 90.0) -> None:
        """Run one pod of the cluster's image to completion, or fail with why not: a cluster
        that cannot run pods then fails its module's tests at once, with the reason, instead
        of each test waiting out its own timeouts (and a whole run its time limit)."""
        ns, name = "e2e-canary", "canary"
        self.kubectl("create", "namespace", ns)
        self.apply(ns, pod_manifest(name, self.image, ["true"], restartPolicy="Never"))

        def phase() -> str | None:
            value = (self.pod(ns, name).get("status") or {}).get("phase")
            return value if value in ("Succeeded", "Failed") else None

        try:
            ended = self.wait(phase, timeout=timeout, what="a first pod to run")
        except AssertionError as exc:
            why = f"this cluster cannot run a pod: {exc}\n{self.diagnose(ns, name)}"
            raise AssertionError(why) from None
        if ended != "Succeeded":
            raise AssertionError(f"a first pod ended {ended}\n{self.diagnose(ns, name)}")
        self.kubectl("-n", ns, "delete", "pod", name)

    def run(self, ns: str, name: str, command: list[str], **container: Any) -> dict[str, Any]:
        """Start a one-container pod of the cluster's image and wait until it runs."""
        self.apply(ns, pod_manifest(name, self.image, command, container=container))
        return self.running(ns, name)


def pod_manifest(name: str, image: str, command: list[str], **spec: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": image, "command": command}
    container.update(spec.pop("container", {}))
    # sh as PID 1 ignores SIGTERM: without this every pod takes the whole default 30 s to go.
    spec.setdefault("terminationGracePeriodSeconds", 2)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"containers": [container], **spec},
    }
