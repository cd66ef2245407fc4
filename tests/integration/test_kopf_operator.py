"""A kopf operator (kopf from PyPI) runs unchanged against pilothouse.

``kopf run --standalone -A`` with a handler module written here: its create handler
runs once per object, the status patch it returns lands, the Event it posts is
listed by ``kubectl get events``, and its ``on.delete`` handler runs under kopf's
finalizer before the object goes.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = [pytest.mark.kubectl, pytest.mark.slow]

CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: greetings.kopf.example.com
spec:
  group: kopf.example.com
  scope: Namespaced
  names: {plural: greetings, singular: greeting, kind: Greeting}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              who: {type: string}
          status:
            type: object
            x-kubernetes-preserve-unknown-fields: true
"""

HANDLERS = """\
import pathlib
import kopf

LOG = pathlib.Path({log!r})


@kopf.on.create("kopf.example.com", "v1", "greetings")
def greet(body, spec, name, namespace, **_):
    with LOG.open("a") as f:
        f.write(f"create {{namespace}}/{{name}}\\n")
    kopf.info(body, reason="Greeted", message=f"hello {{spec.get('who')}}")
    return {{"message": f"hello {{spec.get('who')}}"}}


@kopf.on.delete("kopf.example.com", "v1", "greetings")
def farewell(name, namespace, **_):
    with LOG.open("a") as f:
        f.write(f"delete {{namespace}}/{{name}}\\n")
"""

GREETING = """\
apiVersion: kopf.example.com/v1
kind: Greeting
metadata:
  name: {name}
spec:
  who: {who}
"""


def eventually(check: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_kopf_operator(kubectl, namespace: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    crd = tmp_path / "crd.yaml"
    crd.write_text(CRD)
    kubectl("apply", "-f", str(crd))
    calls = tmp_path / "calls.log"
    calls.write_text("")
    handlers = tmp_path / "greeter.py"
    handlers.write_text(HANDLERS.format(log=str(calls)))
    log = (tmp_path / "kopf.log").open("wb")
    operator = subprocess.Popen(
        [sys.executable, "-m", "kopf", "run", "--standalone", "-A", "--verbose", str(handlers)],
        env=kubectl.env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        for name, who in (("one", "world"), ("two", "kopf")):
            f = tmp_path / f"{name}.yaml"
            f.write_text(GREETING.format(name=name, who=who))
            kubectl("-n", namespace, "apply", "-f", str(f))

        def handled() -> bool:
            objs = [kubectl.json("-n", namespace, "get", "greetings", n) for n in ("one", "two")]
            return all((o.get("status") or {}).get("greet") for o in objs)

        eventually(handled, what="kopf's status patches")
        one = kubectl.json("-n", namespace, "get", "greetings", "one")
        assert one["status"]["greet"] == {"message": "hello world"}
        assert "kopf.zalando.org/KopfFinalizerMarker" in one["metadata"]["finalizers"]

        def posted() -> bool:
            out = kubectl("-n", namespace, "get", "events", check=False).stdout
            return out.count("Greeted") >= 2

        eventually(posted, what="kopf's events")
        events = kubectl("-n", namespace, "get", "events").stdout
        assert "greeting/one" in events and "hello world" in events
        assert "greeting/two" in events and "hello kopf" in events

        # Once per object, even after more events on the objects.
        kubectl("-n", namespace, "label", "greetings", "one", "touched=yes")
        time.sleep(2)
        assert sorted(calls.read_text().splitlines()) == [
            f"create {namespace}/one",
            f"create {namespace}/two",
        ]

        kubectl("-n", namespace, "delete", "greetings", "one", "--timeout=30s")
        assert f"delete {namespace}/one" in calls.read_text().splitlines()
        gone = kubectl("-n", namespace, "get", "greetings", "one", check=False)
        assert gone.returncode != 0 and "NotFound" in gone.stderr
    finally:
        operator.terminate()
        try:
            operator.wait(15)
        except subprocess.TimeoutExpired:
            operator.kill()
            operator.wait(5)
        log.close()
        kubectl(
            "-n",
            namespace,
            "patch",
            "greetings",
            "two",
            "--type=merge",
            "-p",
            '{"metadata":{"finalizers":null}}',
            check=False,
        )
        kubectl("delete", "crd", "greetings.kopf.example.com", "--timeout=30s", check=False)
