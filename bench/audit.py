"""The audit log's own work per request, in process, beside the same loop without it.

``bench/api.py --audit`` measures what users see (creates per second with the audit
log off, at Metadata and at RequestResponse); on a shared two-core machine its
figures swing with the neighbours' load. This one isolates the audit path: for one
pod create it runs what the server does for the audit log — evaluate the policy,
build the event, complete objectRef from the body (and at Request and up keep the
defaulted body), record the response, encode and write the RequestReceived and
ResponseComplete lines — thousands of times, and subtracts the same loop with no
auditor (the baseline, same run). The server's CPU per create comes from
``bench/api.py --audit``; the ratio of the two is the audit log's share.

Usage: python bench/audit.py [--requests 20000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from multidict import CIMultiDict, MultiDict

from pilothouse.api import defaults
from pilothouse.apiserver import requestcontext
from pilothouse.apiserver.audit import auditor, backend, policy
from pilothouse.apiserver.authn import user as user_module

POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "p", "labels": {"app": "bench", "tier": "web"}},
    "spec": {
        "containers": [
            {
                "name": "web",
                "image": "busybox:1.36",
                "command": ["httpd", "-f", "-p", "8080"],
                "ports": [{"containerPort": 8080}],
                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
            }
        ]
    },
}


class Request:
    """What the auditor reads of an aiohttp request."""

    method = "POST"
    path = "/api/v1/namespaces/bench/pods"
    raw_path = path + "?fieldManager=kubectl-create"
    query: MultiDict[str] = MultiDict({"fieldManager": "kubectl-create"})
    remote = "127.0.0.1"
    headers: CIMultiDict[str] = CIMultiDict({"User-Agent": "kubectl/v1.32.4 (linux/amd64)"})


# The admin kubeconfig's client certificate, as the authenticator sees it.
ADMIN = user_module.UserInfo("system:admin", ("system:masters", "system:authenticated"))


def response_for(obj: dict[str, Any]) -> web.Response:
    stored = orjson.loads(orjson.dumps(obj))
    defaults.apply_defaults("", "v1", "Pod", stored)
    stored["metadata"].update(namespace="bench", uid="9d2b5bd4", resourceVersion="42")
    return web.Response(body=orjson.dumps(stored), status=201, content_type="application/json")


def one_request(audit: auditor.Auditor | None, response: web.Response) -> None:
    ctx = requestcontext.RequestContext()
    ctx.user = ADMIN
    if audit is None:
        return
    req: Any = Request()
    audit.begin(req, ctx)
    if ctx.audit is not None:
        body = POD
        if ctx.audit.keeps_request_object():
            body = orjson.loads(orjson.dumps(POD))
            defaults.apply_defaults("", "v1", "Pod", body)
        ctx.log_request_object(body, group="", version="v1", plural="pods")
    audit.response_started(ctx, response)
    audit.finish(ctx)


def per_request_us(audit: auditor.Auditor | None, n: int, response: web.Response) -> float:
    rounds = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n // 5):
            one_request(audit, response)
        rounds.append((time.perf_counter() - t0) / (n // 5) * 1e6)
    return statistics.median(rounds)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=20000)
    args = parser.parse_args()
    response = response_for(POD)
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="pilothouse-audit-bench-") as tmp:
        base = per_request_us(None, args.requests, response)
        out["baseline_no_audit_us_per_request"] = round(base, 2)
        for level in ("Metadata", "Request", "RequestResponse"):
            log = Path(tmp) / f"{level}.log"
            audit = auditor.Auditor(
                policy.parse(
                    {"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [{"level": level}]}
                ),
                backend.LogBackend(backend.Options(path=str(log))),
            )
            audit.backend.open()
            cost = per_request_us(audit, args.requests, response) - base
            out[f"audit_{level.lower()}_us_per_request"] = round(cost, 2)
            lines = log.read_bytes().splitlines()
            out[f"audit_{level.lower()}_bytes_per_event"] = round(
                sum(len(line) + 1 for line in lines) / len(lines)
            )
    out["requests"] = args.requests
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
