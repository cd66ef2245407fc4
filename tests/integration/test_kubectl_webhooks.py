"""Admission webhooks with the real kubectl (issue 16's "what it must show").

The test serves its own webhooks over HTTPS with a CA of its own: a validating one
that refuses labelled pods with its message (reached by ``clientConfig.url``), a
mutating one that labels pods with a JSON patch (reached through a Service and its
Endpoints), and broken ones — unreachable, too slow, answering garbage — with both
failure policies. Each test keeps to namespaces of its own through the webhooks'
``namespaceSelector``.
"""

from __future__ import annotations

import contextlib
import json
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from pilothouse import testing, testing_https

pytestmark = pytest.mark.kubectl

Kubectl = Any


def host_address() -> str:
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("10.255.255.255", 1))
        address: str = s.getsockname()[0]
        if not address.startswith("127."):
            return address
    pytest.skip("this machine has no address besides loopback for a Service's endpoints")


def deny_labelled(request: dict[str, Any]) -> dict[str, Any]:
    labels = request["object"]["metadata"].get("labels") or {}
    if labels.get("forbidden") == "true":
        return testing_https.deny(
            request, f"pod {request['object']['metadata']['name']} carries forbidden=true"
        )
    return testing_https.allow(request, warnings=["pods here are checked by a webhook"])


def add_label(request: dict[str, Any]) -> dict[str, Any]:
    labels = request["object"]["metadata"].get("labels")
    if labels is None:
        operations = [{"op": "add", "path": "/metadata/labels", "value": {"mutated-by": "webhook"}}]
    else:
        operations = [{"op": "add", "path": "/metadata/labels/mutated-by", "value": "webhook"}]
    return testing_https.json_patch(request, operations)


async def slow(request: dict[str, Any]) -> dict[str, Any]:
    import asyncio

    await asyncio.sleep(3)
    return testing_https.allow(request)


async def garbage(http: web.Request) -> web.Response:
    return web.Response(text="this is not an AdmissionReview")


@pytest.fixture(scope="module")
def env(kubectl_as: type) -> Iterator[tuple[Kubectl, testing_https.HTTPSServer, str]]:
    address = host_address()
    app = testing_https.webhook_app(
        {
            "/validate": testing_https.admission_webhook(deny_labelled),
            "/mutate": testing_https.admission_webhook(add_label),
            "/slow": testing_https.admission_webhook(slow),
            "/garbage": garbage,
        }
    )
    hooks = testing_https.HTTPSServer(
        app, host="0.0.0.0", hostnames=["hooks.webhooks.svc"], ips=["127.0.0.1", address]
    )
    with (
        tempfile.TemporaryDirectory(prefix="pilothouse-webhooks-") as tmp,
        testing.server_thread(Path(tmp) / "data") as srv,
        hooks,
    ):
        k = kubectl_as(srv.kubeconfig)
        k("create", "namespace", "webhooks")
        service = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "hooks", "namespace": "webhooks"},
            "spec": {"ports": [{"name": "https", "port": 443, "targetPort": hooks.port}]},
        }
        endpoints = {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": "hooks", "namespace": "webhooks"},
            "subsets": [
                {"addresses": [{"ip": address}], "ports": [{"name": "https", "port": hooks.port}]}
            ],
        }
        k("apply", "-f", "-", input=yaml.safe_dump_all([service, endpoints]))
        yield k, hooks, address


def namespace(k: Kubectl, **labels: str) -> str:
    name = "t-" + uuid.uuid4().hex[:8]
    doc = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}
    k("create", "-f", "-", input=json.dumps(doc))
    return name


def configuration(kind: str, name: str, hooks: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name},
        "webhooks": hooks,
    }


def pod_hook(name: str, client_config: dict[str, Any], test: str, **fields: Any) -> dict[str, Any]:
    return {
        "name": name,
        "clientConfig": client_config,
        "rules": [
            {
                "operations": ["CREATE"],
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "resources": ["pods"],
            }
        ],
        "namespaceSelector": {"matchLabels": {"test": test}},
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        **fields,
    }


def pod(name: str, **labels: str) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": labels},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        }
    )


def test_validating_webhook_denies_a_labelled_pod(
    env: tuple[Kubectl, testing_https.HTTPSServer, str],
) -> None:
    k, hooks, _ = env
    test = "deny-" + uuid.uuid4().hex[:6]
    ns = namespace(k, test=test)
    config = configuration(
        "ValidatingWebhookConfiguration",
        test,
        [
            pod_hook(
                "deny-labelled.example.com",
                {
                    "url": hooks.url("/validate").replace("0.0.0.0", "127.0.0.1"),
                    "caBundle": hooks.ca_bundle,
                },
                test,
            )
        ],
    )
    created = k("create", "-f", "-", input=json.dumps(config))
    assert (
        created.stdout.strip()
        == f"validatingwebhookconfiguration.admissionregistration.k8s.io/{test} created"
    )
    table = k("get", "validatingwebhookconfigurations", test).stdout.splitlines()
    assert table[0].split() == ["NAME", "WEBHOOKS", "AGE"]
    assert table[1].split()[:2] == [test, "1"]

    refused = k("create", "-n", ns, "-f", "-", input=pod("bad", forbidden="true"), check=False)
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        'Error from server (Forbidden): error when creating "STDIN": admission webhook '
        '"deny-labelled.example.com" denied the request: pod bad carries forbidden=true'
    )
    allowed = k("create", "-n", ns, "-f", "-", input=pod("good", forbidden="false"))
    assert allowed.stdout.strip() == "pod/good created"
    assert allowed.stderr.strip() == "Warning: pods here are checked by a webhook"
    # Other namespaces are not the webhook's business.
    other = namespace(k)
    k("create", "-n", other, "-f", "-", input=pod("bad", forbidden="true"))
    k("delete", "validatingwebhookconfiguration", test)


def test_mutating_webhook_adds_a_label_through_a_service(
    env: tuple[Kubectl, testing_https.HTTPSServer, str],
) -> None:
    k, hooks, _ = env
    test = "mutate-" + uuid.uuid4().hex[:6]
    ns = namespace(k, test=test)
    service = {
        "service": {"namespace": "webhooks", "name": "hooks", "path": "/mutate"},
        "caBundle": hooks.ca_bundle,
    }
    config = configuration(
        "MutatingWebhookConfiguration", test, [pod_hook("add-label.example.com", service, test)]
    )
    k("create", "-f", "-", input=json.dumps(config))
    stored = json.loads(k("get", "mutatingwebhookconfiguration", test, "-o", "json").stdout)
    hook = stored["webhooks"][0]
    assert (hook["failurePolicy"], hook["matchPolicy"], hook["timeoutSeconds"]) == (
        "Fail",
        "Equivalent",
        10,
    )
    assert hook["reinvocationPolicy"] == "Never"
    assert hook["clientConfig"]["service"]["port"] == 443
    assert hook["objectSelector"] == {}

    k("create", "-n", ns, "-f", "-", input=pod("plain"))
    k("create", "-n", ns, "-f", "-", input=pod("labelled", app="web"))
    labels = k(
        "get",
        "pods",
        "-n",
        ns,
        "-o",
        'jsonpath={range .items[*]}{.metadata.name}={.metadata.labels}{"\\n"}{end}',
    ).stdout.splitlines()
    assert sorted(labels) == [
        'labelled={"app":"web","mutated-by":"webhook"}',
        'plain={"mutated-by":"webhook"}',
    ]
    shown = k("get", "pods", "-n", ns, "-L", "mutated-by").stdout.splitlines()
    assert shown[0].split()[-1] == "MUTATED-BY"
    assert all(line.split()[-1] == "webhook" for line in shown[1:])
    k("delete", "mutatingwebhookconfiguration", test)


def test_broken_webhooks_fail_closed_or_open(
    env: tuple[Kubectl, testing_https.HTTPSServer, str],
) -> None:
    k, hooks, _ = env
    test = "broken-" + uuid.uuid4().hex[:6]
    ns = namespace(k, test=test)
    unreachable = {"url": "https://127.0.0.1:1/validate", "caBundle": hooks.ca_bundle}
    base = hooks.url("").replace("0.0.0.0", "127.0.0.1")

    def attempt(config_hooks: list[dict[str, Any]], pod_name: str) -> Any:
        name = f"{test}-{pod_name}"
        k(
            "apply",
            "-f",
            "-",
            input=json.dumps(configuration("ValidatingWebhookConfiguration", name, config_hooks)),
        )
        try:
            return k("create", "-n", ns, "-f", "-", input=pod(pod_name), check=False, timeout=30)
        finally:
            k("delete", "validatingwebhookconfiguration", name)

    dead = attempt([pod_hook("dead.example.com", unreachable, test)], "p1")
    assert dead.returncode == 1
    assert dead.stderr.strip() == (
        'Error from server (InternalError): error when creating "STDIN": Internal error occurred: '
        'failed calling webhook "dead.example.com": failed to call webhook: Post '
        '"https://127.0.0.1:1/validate?timeout=10s": dial tcp 127.0.0.1:1: connect: connection refused'
    )
    ignored = attempt(
        [pod_hook("dead.example.com", unreachable, test, failurePolicy="Ignore")], "p2"
    )
    assert ignored.returncode == 0, ignored.stderr

    started = time.monotonic()
    late = attempt(
        [
            pod_hook(
                "slow.example.com",
                {"url": base + "/slow", "caBundle": hooks.ca_bundle},
                test,
                timeoutSeconds=1,
            )
        ],
        "p3",
    )
    assert time.monotonic() - started < 10
    assert late.returncode == 1
    assert late.stderr.strip().endswith(
        f'failed calling webhook "slow.example.com": failed to call webhook: Post "{base}/slow?timeout=1s": '
        "context deadline exceeded"
    )
    junk = attempt(
        [
            pod_hook(
                "junk.example.com", {"url": base + "/garbage", "caBundle": hooks.ca_bundle}, test
            )
        ],
        "p4",
    )
    assert junk.returncode == 1
    assert (
        'failed calling webhook "junk.example.com": failed to call webhook: couldn\'t get version/kind'
        in junk.stderr
    )
    survived = attempt(
        [
            pod_hook(
                "junk.example.com",
                {"url": base + "/garbage", "caBundle": hooks.ca_bundle},
                test,
                failurePolicy="Ignore",
            ),
            pod_hook(
                "slow.example.com",
                {"url": base + "/slow", "caBundle": hooks.ca_bundle},
                test,
                failurePolicy="Ignore",
                timeoutSeconds=1,
            ),
        ],
        "p5",
    )
    assert survived.returncode == 0, survived.stderr
    assert sorted(k("get", "pods", "-n", ns, "-o", "name").stdout.split()) == ["pod/p2", "pod/p5"]


def test_invalid_configurations(env: tuple[Kubectl, testing_https.HTTPSServer, str]) -> None:
    k, _, _ = env
    bad = configuration(
        "ValidatingWebhookConfiguration",
        "bad-config",
        [
            {
                "name": "short",
                "clientConfig": {"url": "http://example.com/x?y=1"},
                "rules": [
                    {
                        "operations": ["CREATE", "*"],
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "resources": ["pods"],
                    }
                ],
                "timeoutSeconds": 31,
                "admissionReviewVersions": ["v2"],
            }
        ],
    )
    refused = k("create", "-f", "-", input=json.dumps(bad), check=False)
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        'The ValidatingWebhookConfiguration "bad-config" is invalid: \n'
        '* webhooks[0].name: Invalid value: "short": should be a domain with at least three '
        "segments separated by dots\n"
        '* webhooks[0].rules[0].operations: Invalid value: []admissionregistration.OperationType{"CREATE", "*"}: '
        "if '*' is present, must not specify other operations\n"
        "* webhooks[0].sideEffects: Required value: must specify one of None, NoneOnDryRun\n"
        "* webhooks[0].timeoutSeconds: Invalid value: 31: the timeout value must be between 1 and 30 seconds\n"
        "* webhooks[0].clientConfig.url: Invalid value: \"http\": 'https' is the only allowed URL scheme; "
        "desired format: https://host[/path]\n"
        '* webhooks[0].clientConfig.url: Invalid value: "y=1": query parameters are not permitted in the URL\n'
        '* webhooks[0].admissionReviewVersions: Invalid value: []string{"v2"}: must include at least one of v1, v1beta1'
    )
