"""API aggregation with the real kubectl: an extension API server run by the test
(the sample-apiserver's ``wardle.example.com/v1alpha1`` Flunders, HTTPS with its own
CA, trusting the aggregator's front-proxy certificate from the
``extension-apiserver-authentication`` ConfigMap) behind an APIService.
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

from pilothouse import testing, testing_apiserver, testing_https

pytestmark = pytest.mark.kubectl

Kubectl = Any


def host_address() -> str:
    """An address of this machine other than loopback (Endpoints may not be loopback)."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("10.255.255.255", 1))
        address: str = s.getsockname()[0]
        if not address.startswith("127."):
            return address
    pytest.skip("this machine has no address besides loopback for a Service's endpoints")


def eventually(check: Any, timeout: float = 20.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        else:
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what or check}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def cluster(kubectl_as: type) -> Iterator[tuple[testing.ServerThread, Kubectl, Path]]:
    with (
        tempfile.TemporaryDirectory(prefix="pilothouse-aggregation-") as tmp,
        testing.server_thread(Path(tmp) / "data") as srv,
    ):
        k = kubectl_as(srv.kubeconfig)
        yield srv, k, Path(tmp) / "kubectl-cache"


@pytest.fixture(scope="module")
def wardle(
    cluster: tuple[testing.ServerThread, Kubectl, Path],
) -> Iterator[tuple[testing_apiserver.ExtensionAPIServer, testing_https.HTTPSServer]]:
    _, k, _ = cluster
    # What a real extension server does: trust the front proxy named in the ConfigMap.
    cm = json.loads(
        k(
            "get",
            "configmap",
            "-n",
            "kube-system",
            "extension-apiserver-authentication",
            "-o",
            "json",
        ).stdout
    )
    assert json.loads(cm["data"]["requestheader-allowed-names"]) == ["front-proxy-client"]
    api = testing_apiserver.ExtensionAPIServer(
        requestheader_ca=cm["data"]["requestheader-client-ca-file"].encode()
    )
    address = host_address()
    server = api.serve(host=address, hostnames=["api.wardle.svc"], ips=[address]).start()
    k("create", "namespace", "wardle")
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "api", "namespace": "wardle"},
        "spec": {"ports": [{"name": "https", "port": 443, "targetPort": server.port}]},
    }
    endpoints = {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": "api", "namespace": "wardle"},
        "subsets": [
            {"addresses": [{"ip": address}], "ports": [{"name": "https", "port": server.port}]}
        ],
    }
    k("apply", "-f", "-", input=yaml.safe_dump_all([service, endpoints]))
    k(
        "apply",
        "-f",
        "-",
        input=json.dumps(api_service(server.ca_bundle)),
    )
    yield api, server
    server.stop()


def api_service(ca_bundle: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apiregistration.k8s.io/v1",
        "kind": "APIService",
        "metadata": {"name": "v1alpha1.wardle.example.com"},
        "spec": {
            "group": "wardle.example.com",
            "version": "v1alpha1",
            "groupPriorityMinimum": 1000,
            "versionPriority": 15,
            "service": {"namespace": "wardle", "name": "api", "port": 443},
            "caBundle": ca_bundle,
            **spec,
        },
    }


def test_builtin_groups_are_local_apiservices(
    cluster: tuple[testing.ServerThread, Kubectl, Path],
) -> None:
    _, k, _ = cluster
    out = k("get", "apiservices").stdout.splitlines()
    assert out[0].split() == ["NAME", "SERVICE", "AVAILABLE", "AGE"]
    rows = {line.split()[0]: line.split()[1:3] for line in out[1:]}
    for name in ("v1.", "v1.apps", "v1.batch", "v2.autoscaling", "v1.admissionregistration.k8s.io"):
        assert rows[name] == ["Local", "True"], (name, rows)
    apps = json.loads(k("get", "apiservice", "v1.apps", "-o", "json").stdout)
    assert apps["metadata"]["labels"] == {"kube-aggregator.kubernetes.io/automanaged": "onstart"}
    assert apps["spec"] == {
        "group": "apps",
        "version": "v1",
        "groupPriorityMinimum": 17800,
        "versionPriority": 15,
    }
    (condition,) = apps["status"]["conditions"]
    assert (condition["type"], condition["status"], condition["reason"], condition["message"]) == (
        "Available",
        "True",
        "Local",
        "Local APIServices are always available",
    )


def test_extension_server_behind_an_apiservice(
    cluster: tuple[testing.ServerThread, Kubectl, Path],
    wardle: tuple[testing_apiserver.ExtensionAPIServer, testing_https.HTTPSServer],
) -> None:
    _, k, cache = cluster
    api, _ = wardle
    cached = ("--cache-dir", str(cache / uuid.uuid4().hex))

    def available() -> bool:
        row = k("get", "apiservice", "v1alpha1.wardle.example.com").stdout.splitlines()[1].split()
        assert row[1:3] == ["wardle/api", "True"], row
        return True

    eventually(available, what="the APIService to become available")
    status = json.loads(k("get", "apiservice", "v1alpha1.wardle.example.com", "-o", "json").stdout)
    (condition,) = status["status"]["conditions"]
    assert (condition["reason"], condition["message"]) == ("Passed", "all checks passed")

    def discovered() -> bool:
        out = k("api-resources", "--api-group=wardle.example.com", *cached).stdout
        assert "flunders" in out, out
        return True

    eventually(discovered, what="flunders in discovery")
    groups = json.loads(k("get", "--raw", "/apis").stdout)["groups"]
    wardle_group = next(g for g in groups if g["name"] == "wardle.example.com")
    assert wardle_group["preferredVersion"] == {
        "groupVersion": "wardle.example.com/v1alpha1",
        "version": "v1alpha1",
    }
    index = json.loads(k("get", "--raw", "/openapi/v3").stdout)["paths"]
    assert index["apis/wardle.example.com/v1alpha1"] == {
        "serverRelativeURL": "/openapi/v3/apis/wardle.example.com/v1alpha1?hash=WARDLE1"
    }
    line = next(
        ln
        for ln in k("api-resources", "--api-group=wardle.example.com", *cached).stdout.splitlines()
        if ln.startswith("flunders")
    )
    assert line.split() == ["flunders", "fl", "wardle.example.com/v1alpha1", "true", "Flunder"]

    k("create", "namespace", "ponds", *cached)
    flunder = {
        "apiVersion": "wardle.example.com/v1alpha1",
        "kind": "Flunder",
        "metadata": {"name": "first", "namespace": "ponds"},
        "spec": {"reference": "none"},
    }
    created = k("create", "-f", "-", *cached, input=json.dumps(flunder))
    assert created.stdout.strip() == "flunder.wardle.example.com/first created"
    table = k("get", "flunders", "-n", "ponds", *cached).stdout.splitlines()
    assert table[0].split() == ["NAME", "REFERENCE", "CREATED", "AT"]
    assert table[1].split()[:2] == ["first", "none"]
    got = json.loads(k("get", "fl", "first", "-n", "ponds", "-o", "json", *cached).stdout)
    assert got["spec"] == {"reference": "none"} and got["metadata"]["uid"]

    # Strict validation and explain come from the extension server's OpenAPI.
    bad = {
        **flunder,
        "metadata": {"name": "second", "namespace": "ponds"},
        "spec": {"referenz": "x"},
    }
    refused = k("create", "-f", "-", *cached, input=json.dumps(bad), check=False)
    assert refused.returncode != 0
    assert 'unknown field "spec.referenz"' in refused.stderr, refused.stderr
    explained = k("explain", "flunders.spec", *cached).stdout
    assert "reference" in explained and "The name of another flunder." in explained

    # The extension server knew who asked, from the front proxy; no credentials leaked.
    proxied = [r for r in api.requests if r.path.endswith("/ponds/flunders") and r.method == "POST"]
    assert proxied, api.requests
    assert proxied[-1].user == "admin", proxied[-1]
    assert "system:masters" in proxied[-1].groups
    assert all(r.authorization is None for r in api.requests)

    deleted = k("delete", "flunder", "first", "-n", "ponds", "--wait=false", *cached)
    assert deleted.stdout.strip() == 'flunder.wardle.example.com "first" deleted'
    missing = k("get", "flunder", "first", "-n", "ponds", *cached, check=False)
    assert 'flunders.wardle.example.com "first" not found' in missing.stderr


def test_watch_through_the_proxy(
    cluster: tuple[testing.ServerThread, Kubectl, Path],
    wardle: tuple[testing_apiserver.ExtensionAPIServer, testing_https.HTTPSServer],
) -> None:
    _, k, cache = cluster
    api, _ = wardle
    cached = ("--cache-dir", str(cache / uuid.uuid4().hex))
    eventually(
        lambda: "flunders" in k("api-resources", "--api-group=wardle.example.com", *cached).stdout
    )
    k("create", "namespace", "streams", *cached, check=False)
    watcher = k.popen(
        "get",
        "flunders",
        "-n",
        "streams",
        "--watch-only",
        "-o",
        "name",
        "--request-timeout=20s",
        *cached,
    )
    try:
        time.sleep(1.0)
        flunder = {
            "apiVersion": "wardle.example.com/v1alpha1",
            "kind": "Flunder",
            "metadata": {"name": "streamed", "namespace": "streams"},
        }
        k("create", "-f", "-", *cached, input=json.dumps(flunder))
        assert watcher.stdout is not None
        line = watcher.stdout.readline().decode().strip()
        assert line == "flunder.wardle.example.com/streamed"
        assert api.open_watches == 1
    finally:
        watcher.kill()
        watcher.wait(10)
    # The client is gone: the proxied watch does not keep the extension server's open.
    eventually(lambda: api.open_watches == 0, timeout=5, what="the upstream watch to close")


def test_unavailable_apiservices_say_why(
    cluster: tuple[testing.ServerThread, Kubectl, Path],
) -> None:
    _, k, _ = cluster
    other_ca = testing_https.HTTPSServer(testing_apiserver.ExtensionAPIServer(b"").app())
    spec: dict[str, Any] = {
        "apiVersion": "apiregistration.k8s.io/v1",
        "kind": "APIService",
        "metadata": {"name": "v1.nowhere.example.com"},
        "spec": {
            "group": "nowhere.example.com",
            "version": "v1",
            "groupPriorityMinimum": 1000,
            "versionPriority": 15,
            "service": {"namespace": "wardle", "name": "missing", "port": 443},
            "caBundle": other_ca.ca_bundle,
        },
    }
    k("apply", "-f", "-", input=json.dumps(spec))

    def condition(name: str) -> dict[str, Any]:
        obj = json.loads(k("get", "apiservice", name, "-o", "json").stdout)
        conditions = obj.get("status", {}).get("conditions") or []
        assert conditions, obj
        return dict(conditions[0])

    missing = eventually(lambda: condition("v1.nowhere.example.com"))
    assert (missing["status"], missing["reason"], missing["message"]) == (
        "False",
        "ServiceNotFound",
        'service/missing in "wardle" is not present',
    )
    row = k("get", "apiservice", "v1.nowhere.example.com").stdout.splitlines()[1].split()
    assert row[1:4] == ["wardle/missing", "False", "(ServiceNotFound)"]
    refused = k("get", "--raw", "/apis/nowhere.example.com/v1", check=False)
    assert refused.returncode != 0
    assert "the server is currently unable to handle the request" in refused.stderr

    # A Service whose server presents a certificate the caBundle did not sign.
    k("create", "namespace", "wardle", check=False)
    spec["spec"]["service"]["name"] = "api"
    k("apply", "-f", "-", input=json.dumps(spec))

    def tls_failure() -> dict[str, Any]:
        found = condition("v1.nowhere.example.com")
        assert found["reason"] == "FailedDiscoveryCheck", found
        return found

    failed = eventually(tls_failure)
    assert failed["status"] == "False"
    assert "failing or missing response from https://" in failed["message"]
    assert "x509: certificate signed by unknown authority" in failed["message"], failed["message"]
    k("delete", "apiservice", "v1.nowhere.example.com")
    other_ca.stop()


def test_apiservice_validation(cluster: tuple[testing.ServerThread, Kubectl, Path]) -> None:
    _, k, _ = cluster
    bad = api_service("")
    bad["metadata"]["name"] = "wrong.name"
    bad["spec"].pop("caBundle")
    bad["spec"]["groupPriorityMinimum"] = 0
    refused = k("create", "-f", "-", input=json.dumps(bad), check=False)
    assert refused.returncode != 0
    assert refused.stderr.strip() == (
        'The APIService "wrong.name" is invalid: \n'
        '* metadata.name: Invalid value: "wrong.name": must be `spec.version+"."+spec.group`: '
        '"v1alpha1.wardle.example.com"\n'
        "* spec.groupPriorityMinimum: Invalid value: 0: must be positive and less than 20000"
    )
