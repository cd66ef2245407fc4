"""ValidatingAdmissionPolicy evaluation in process: what one pod create costs the policy
plugin, beside the naive evaluation measured in the same run.

The policy of ``bench/webhooks.py`` (two CEL validations over every container) and its
Deny binding, on a hand-filled watch cache; the request is a pod as the server holds
it at admission (defaulted, with ``managedFields``). Figures, in µs per request:

* ``plugin_us`` — the plugin's whole validation: matching, params, the request's
  inputs prepared once and only what the expressions read converted for the engine;
* ``naive_us`` — the same expressions each evaluated on the whole request (object,
  oldObject, request, namespaceObject converted for every expression): the baseline;
* ``convert_whole_object_us`` and ``execute_us`` — one conversion of the pod for the
  engine and one execution with it converted: where the time goes.

Usage: python bench/policies.py [--iterations 5000]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from collections.abc import Callable
from typing import Any

import api as bench_api  # bench/: the pod the other benches create
import webhooks as bench_webhooks  # bench/: the policy it measures on the write path
from pilothouse.api import cel, defaults, resources
from pilothouse.apiserver import cacheentry, resourcecache
from pilothouse.apiserver.admission.policy import evaluate, policies
from pilothouse.apiserver.admission.webhook import matching, review

NAMESPACES = "/registry/namespaces/"


def _pod() -> dict[str, Any]:
    pod: dict[str, Any] = json.loads(bench_api.pod("web-1"))
    pod["metadata"]["namespace"] = "policed"
    defaults.apply_defaults("", "v1", "Pod", pod)
    pod["metadata"]["uid"] = "8e0c5f39-6d7e-4b8e-a0f4-3c0b1b6d2a11"
    pod["metadata"]["creationTimestamp"] = "2026-12-06T06:00:00Z"
    pod["metadata"]["managedFields"] = [
        {
            "manager": "kubectl-client-side-apply",
            "operation": "Update",
            "apiVersion": "v1",
            "time": "2026-12-06T06:00:00Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {"f:labels": {".": {}, "f:app": {}, "f:tier": {}}},
                "f:spec": {
                    "f:containers": {
                        'k:{"name":"web"}': {
                            ".": {},
                            "f:command": {},
                            "f:image": {},
                            "f:name": {},
                            "f:ports": {},
                            "f:resources": {"f:requests": {"f:cpu": {}, "f:memory": {}}},
                        }
                    },
                    "f:dnsPolicy": {},
                    "f:restartPolicy": {},
                },
            },
        }
    ]
    return pod


class _Cache:
    """The two caches the plugin reads, filled by hand."""

    def __init__(self) -> None:
        self.caches = {
            p: resourcecache.ResourceCache(p, 0)
            for p in (policies.POLICIES, policies.BINDINGS, NAMESPACES)
        }
        self.revision = 1

    def put(self, prefix: str, key: str, obj: dict[str, Any]) -> None:
        self.revision += 1
        entry = cacheentry.Entry(prefix + key, obj, self.revision)
        self.caches[prefix].apply(cacheentry.WatchEvent(cacheentry.ADDED, entry, None))


def _per_call_us(fn: Callable[[], object], iterations: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(iterations):
        fn()
    return (time.perf_counter() - start) / iterations * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--iterations", type=int, default=5000)
    args = parser.parse_args()

    cache = _Cache()
    cache.put(NAMESPACES, "policed", {"metadata": {"name": "policed", "labels": {"b": "on"}}})
    (_, policy), (_, binding) = bench_webhooks.policy_objects()
    group, version = "admissionregistration.k8s.io", "v1"
    defaults.apply_defaults(group, version, "ValidatingAdmissionPolicy", policy)
    defaults.apply_defaults(group, version, "ValidatingAdmissionPolicyBinding", binding)
    policy["spec"]["matchConstraints"]["namespaceSelector"] = {"matchLabels": {"b": "on"}}
    cache.put(policies.POLICIES, "bench", policy)
    cache.put(policies.BINDINGS, "bench", binding)
    pods = resources.DEFAULT.by_path("", "v1", "pods")
    assert pods is not None
    pod = _pod()
    source = policies.Source(cache)  # type: ignore[arg-type]
    evaluator = evaluate.Evaluator(
        cache=cache,  # type: ignore[arg-type]
        registry=resources.DEFAULT,
        namespace=lambda n: cache.caches[NAMESPACES].objects[NAMESPACES + n].obj,
    )

    def request() -> matching.Request:
        return matching.Request(
            operation="CREATE",
            resource=pods,
            subresource="",
            namespace="policed",
            name="web-1",
            obj=pod,
            user={"username": "bench", "groups": ["system:authenticated"]},
        )

    def plugin() -> None:
        evaluator.validate(request(), source.policies())

    compiled = source.policies()[0]
    programs = [v.expression.compiled.program for v in compiled.validations]
    invocation = matching.Invocation(None, pods, "", ("", "v1", "Pod"))  # type: ignore[arg-type]

    def naive() -> None:
        req = request()
        whole = {
            "object": pod,
            "oldObject": None,
            "request": review.request_fields(req, invocation),
            "namespaceObject": cache.caches[NAMESPACES].objects[NAMESPACES + "policed"].obj,
        }
        for program in programs:
            assert program is not None
            assert program.evaluate(whole) is True

    bad = copy.deepcopy(pod)
    bad["spec"]["containers"][0]["image"] = "busybox:latest"
    refused = request()
    refused.obj = bad
    try:
        evaluator.validate(refused, source.policies())
        raise AssertionError("the policy did not refuse a :latest image")
    except Exception as exc:  # the StatusError the plugin answers
        assert "images must be pinned" in str(exc), exc

    first = programs[0]
    assert first is not None
    activation = cel.Activation({"object": pod})
    out = {
        "plugin_us": round(_per_call_us(plugin, args.iterations), 1),
        "naive_us": round(_per_call_us(naive, args.iterations), 1),
        "convert_whole_object_us": round(
            _per_call_us(lambda: cel.Activation({"object": pod}), args.iterations), 1
        ),
        "execute_us": round(_per_call_us(lambda: first.evaluate(activation), args.iterations), 1),
        "pod_json_bytes": len(json.dumps(pod)),
        "iterations": args.iterations,
        "cpus": os.cpu_count(),
    }
    out["plugin_vs_naive"] = round(out["plugin_us"] / out["naive_us"], 3)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
