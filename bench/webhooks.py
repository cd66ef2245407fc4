"""Admission webhook and policy benchmark: pod creates per second with one validating
webhook on the path, and with one ValidatingAdmissionPolicy on the path, beside the same
creates with neither, on one server in the same run.

``pilothouse server`` runs as a child process (controllers off), the webhook as
another child process (an aiohttp HTTPS server with its own CA that allows every
request after decoding it, as a real webhook would). One
ValidatingWebhookConfiguration selects the namespace ``hooked`` by label; creates go
alternately, in rounds, into ``hooked`` (webhook called) and ``plain`` (webhook not
matched), so both see the same server state and machine noise. The goal: with the
webhook at least 50 % of the rate without.

A ValidatingAdmissionPolicy (two CEL validations over every container, as a
"no :latest images, requests set" rule is written) and its Deny binding select the
namespace ``policed`` the same way; its creates run in the same rounds. The policy
is evaluated in the server, so the figure is the cost of CEL on the write path. Beside
the rates, the server's CPU per create on each path (``server_cpu_ms_per_create_*``,
from ``/proc``), which a machine shared with other work disturbs less than the rates.

Usage: python bench/webhooks.py [--creates 2000] [--concurrency 32] [--rounds 4] [--quick]
       (also: python bench/api.py --webhook)
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import api as bench_api  # bench/: the shared client and helpers
from pilothouse import testing, testing_https


def serve(port: int, directory: Path) -> None:
    """The webhook process: allow everything, after reading the review."""

    def allow(request: dict[str, Any]) -> dict[str, Any]:
        return testing_https.allow(request)

    app = testing_https.webhook_app({"/validate": testing_https.admission_webhook(allow)})
    server = testing_https.HTTPSServer(app)
    server.port = port
    (directory / "ca.crt").write_bytes(server.ca_pem)
    server.start()
    (directory / "ready").write_text("ok")
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    server.stop()


def start_webhook(directory: Path) -> tuple[subprocess.Popen[bytes], int, str]:
    port = testing.free_port()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port), str(directory)],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while not (directory / "ready").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the webhook server did not start")
        time.sleep(0.05)
    ca = base64.b64encode((directory / "ca.crt").read_bytes()).decode()
    return proc, port, ca


async def webhook_figures(args: argparse.Namespace, data: Path) -> dict[str, Any]:
    hook_dir = data.parent / "webhook"
    hook_dir.mkdir(parents=True, exist_ok=True)
    hook, port, ca = start_webhook(hook_dir)
    srv = testing.ServerProcess(
        data, extra_args=["--disable-scheduler", "--disable-controller-manager"]
    ).start(timeout=60)
    out: dict[str, Any] = {}
    try:
        client = bench_api.Client(srv.url, data, args.concurrency)
        for name, labels in (
            ("hooked", {"bench-webhook": "on"}),
            ("policed", {"bench-policy": "on"}),
            ("plain", {}),
        ):
            status, body = await client.request(
                "POST",
                "/api/v1/namespaces",
                json.dumps({"metadata": {"name": name, "labels": labels}}).encode(),
            )
            assert status == 201, body
            await bench_api.namespace_ready(client, name)
        config = {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "bench"},
            "webhooks": [
                {
                    "name": "allow.bench.example.com",
                    "clientConfig": {"url": f"https://127.0.0.1:{port}/validate", "caBundle": ca},
                    "rules": [
                        {
                            "operations": ["CREATE"],
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "resources": ["pods"],
                        }
                    ],
                    "namespaceSelector": {"matchLabels": {"bench-webhook": "on"}},
                    "sideEffects": "None",
                    "admissionReviewVersions": ["v1"],
                }
            ],
        }
        status, body = await client.request(
            "POST",
            "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
            json.dumps(config).encode(),
        )
        assert status == 201, body
        for path, obj in policy_objects():
            status, body = await client.request("POST", path, json.dumps(obj).encode())
            assert status == 201, body
        # The policy is in effect: a pod with a :latest image is refused in ``policed``.
        latest = json.loads(bench_api.pod("latest"))
        latest["spec"]["containers"][0]["image"] = "busybox:latest"
        status, body = await client.request(
            "POST", "/api/v1/namespaces/policed/pods", json.dumps(latest).encode()
        )
        assert status == 422 and b"images must be pinned" in body, (status, body)
        # Warm every path (connections to the webhook, compiled policy, caches).
        for namespace in ("hooked", "policed", "plain"):
            await bench_api.bench_creates_existing(client, 200, args.concurrency, namespace)
        with_hook: list[float] = []
        with_policy: list[float] = []
        without: list[float] = []
        # The server's CPU per create: steadier than rates on a machine others share.
        cpu: dict[str, list[float]] = {"hooked": [], "policed": [], "plain": []}
        assert srv.proc is not None
        offset = 1000
        for _ in range(args.rounds):
            for namespace, rates in (
                ("hooked", with_hook),
                ("policed", with_policy),
                ("plain", without),
            ):
                before = bench_api.cpu_seconds(srv.proc.pid)
                rates.append(
                    await creates(client, args.creates, args.concurrency, namespace, offset)
                )
                spent = bench_api.cpu_seconds(srv.proc.pid) - before
                cpu[namespace].append(spent * 1000 / args.creates)
            offset += args.creates
        median = lambda rates: round(sorted(rates)[len(rates) // 2], 1)  # noqa: E731
        out["creates_per_s_with_webhook"] = median(with_hook)
        out["creates_per_s_with_policy"] = median(with_policy)
        out["creates_per_s_without_webhook"] = median(without)
        out["webhook_vs_without"] = round(
            out["creates_per_s_with_webhook"] / out["creates_per_s_without_webhook"], 3
        )
        out["policy_vs_without"] = round(
            out["creates_per_s_with_policy"] / out["creates_per_s_without_webhook"], 3
        )
        for namespace, key in (("hooked", "webhook"), ("policed", "policy"), ("plain", "none")):
            out[f"server_cpu_ms_per_create_{key}"] = round(
                sorted(cpu[namespace])[len(cpu[namespace]) // 2], 3
            )
        out["policy_cpu_vs_without"] = round(
            out["server_cpu_ms_per_create_policy"] / out["server_cpu_ms_per_create_none"], 3
        )
        out["rounds_with"] = [round(r, 1) for r in with_hook]
        out["rounds_with_policy"] = [round(r, 1) for r in with_policy]
        out["rounds_without"] = [round(r, 1) for r in without]
        out["server_rss_mb"] = round(bench_api.rss_mb(srv.proc.pid), 1) if srv.proc else None
        await client.close()
    finally:
        srv.stop()
        hook.send_signal(signal.SIGTERM)
        hook.wait(10)
    return out


def policy_objects() -> list[tuple[str, dict[str, Any]]]:
    """One ValidatingAdmissionPolicy on pod creates and its Deny binding, for ``policed``."""
    base = "/apis/admissionregistration.k8s.io/v1/"
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": "bench.example.com"},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "namespaceSelector": {"matchLabels": {"bench-policy": "on"}},
                "resourceRules": [
                    {
                        "operations": ["CREATE"],
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "resources": ["pods"],
                    }
                ],
            },
            "validations": [
                {
                    "expression": "object.spec.containers.all(c, !c.image.endsWith(':latest'))",
                    "message": "images must be pinned",
                },
                {
                    "expression": "object.spec.containers.all(c, has(c.resources.requests))",
                    "messageExpression": "'pod ' + object.metadata.name + ' needs requests'",
                },
            ],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": "bench-binding.example.com"},
        "spec": {"policyName": "bench.example.com", "validationActions": ["Deny"]},
    }
    return [
        (base + "validatingadmissionpolicies", policy),
        (base + "validatingadmissionpolicybindings", binding),
    ]


async def creates(
    client: bench_api.Client, n: int, concurrency: int, namespace: str, offset: int
) -> float:
    async def make(i: int) -> None:
        status, body = await client.request(
            "POST", f"/api/v1/namespaces/{namespace}/pods", bench_api.pod(f"p{offset + i}")
        )
        if status != 201:
            raise RuntimeError(f"create failed: {status} {body[:200]!r}")

    elapsed = await bench_api.run_concurrently(n, concurrency, make)
    return n / elapsed


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="pilothouse-bench-") as tmp:
        figures = await webhook_figures(args, Path(tmp) / "data")
    return {
        **figures,
        "goal_webhook_vs_without": 0.5,
        "concurrency": args.concurrency,
        "creates_per_round": args.creates,
        "cpus": os.cpu_count(),
    }


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]), Path(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--creates", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="shorter runs (for CI smoke checks)")
    args = parser.parse_args()
    if args.quick:
        args.creates, args.rounds = 300, 2
    print(json.dumps(asyncio.run(main_async(args)), indent=2))


if __name__ == "__main__":
    main()
