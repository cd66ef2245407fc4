"""The real kubectl against CustomResourceDefinitions: issue 16's CronTab walk-through.

A CRD with a schema, printer columns, status and scale subresources and a CEL rule is
applied; its resource is served at once (discovery, OpenAPI, tables); bad objects are
refused with upstream's messages; ``kubectl scale`` goes through ``/scale``; deleting
the CRD deletes its objects.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.kubectl

CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: crontabs.{group}
spec:
  group: {group}
  scope: Namespaced
  names:
    plural: crontabs
    singular: crontab
    kind: CronTab
    shortNames: [ct]
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            description: The desired state of the CronTab.
            x-kubernetes-validations:
            - rule: "self.replicas <= self.maxReplicas"
              message: "replicas must not exceed maxReplicas"
            properties:
              cronSpec:
                type: string
                description: When the job runs, in cron syntax.
                pattern: '^(\\d+|\\*)(/\\d+)?(\\s+(\\d+|\\*)(/\\d+)?){{4}}$'
              image:
                type: string
              replicas:
                type: integer
                minimum: 0
              maxReplicas:
                type: integer
                default: 10
          status:
            type: object
            properties:
              replicas: {{type: integer}}
              labelSelector: {{type: string}}
    subresources:
      status: {{}}
      scale:
        specReplicasPath: .spec.replicas
        statusReplicasPath: .status.replicas
        labelSelectorPath: .status.labelSelector
    additionalPrinterColumns:
    - name: Spec
      type: string
      description: The cron spec defining the interval a CronJob is run
      jsonPath: .spec.cronSpec
    - name: Replicas
      type: integer
      description: The number of jobs launched by the CronJob
      jsonPath: .spec.replicas
    - name: Age
      type: date
      jsonPath: .metadata.creationTimestamp
"""

CRONTAB = """\
apiVersion: {group}/v1
kind: CronTab
metadata:
  name: {name}
spec:
  cronSpec: "{cron}"
  image: my-awesome-cron-image
  replicas: {replicas}
"""


@pytest.fixture
def crontabs(kubectl, tmp_path: Path):  # type: ignore[no-untyped-def]
    group = f"stable{int(time.time() * 1000) % 1000000}.example.com"
    f = tmp_path / "crd.yaml"
    f.write_text(CRD.format(group=group))
    kubectl("apply", "-f", str(f))
    yield group
    kubectl(
        "delete", "crd", f"crontabs.{group}", "--ignore-not-found", "--timeout=30s", check=False
    )


def _apply(kubectl, tmp_path: Path, text: str, *extra: str, check: bool = True):  # type: ignore[no-untyped-def]
    f = tmp_path / f"obj-{time.monotonic_ns()}.yaml"
    f.write_text(text)
    return kubectl("apply", *extra, "-f", str(f), check=check)


def test_crontab_walkthrough(kubectl, namespace: str, crontabs: str, tmp_path: Path) -> None:
    group = crontabs
    resource = f"crontabs.{group}"
    # Served at once, with its short name, in discovery.
    rows = kubectl("api-resources", f"--api-group={group}", "--no-headers").stdout.split()
    assert rows[:5] == ["crontabs", "ct", f"{group}/v1", "true", "CronTab"]
    crd = kubectl.json("get", "crd", f"crontabs.{group}")
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions == {"NamesAccepted": "True", "Established": "True"}
    assert crd["status"]["storedVersions"] == ["v1"]

    _apply(
        kubectl,
        tmp_path,
        CRONTAB.format(group=group, name="my-new-cron-object", cron="* * * * */5", replicas=2),
        "-n",
        namespace,
    )
    # The declared columns (no extra Age: one is declared).
    lines = kubectl("-n", namespace, "get", resource).stdout.splitlines()
    assert lines[0].split() == ["NAME", "SPEC", "REPLICAS", "AGE"]
    assert lines[1].split()[:7] == ["my-new-cron-object", "*", "*", "*", "*", "*/5", "2"]
    assert kubectl("-n", namespace, "get", "ct", "-o", "name").stdout.strip() == (
        f"crontab.{group}/my-new-cron-object"
    )
    # Defaulted from the schema.
    obj = kubectl.json("-n", namespace, "get", resource, "my-new-cron-object")
    assert obj["spec"]["maxReplicas"] == 10

    # kubectl explain reads the OpenAPI v3 built from the schema.
    explained = kubectl("explain", f"{resource}.spec").stdout
    assert "KIND:       CronTab" in explained
    assert "The desired state of the CronTab." in explained
    assert "cronSpec\t<string>" in explained
    assert "When the job runs, in cron syntax." in explained

    # An object breaking the schema and the CEL rule: upstream's messages.
    bad = _apply(
        kubectl,
        tmp_path,
        CRONTAB.format(group=group, name="bad", cron="* * * *", replicas=20).replace(
            "replicas: 20", "replicas: 20\n  maxReplicas: 5"
        ),
        "-n",
        namespace,
        check=False,
    )
    assert bad.returncode != 0
    assert 'The CronTab "bad" is invalid:' in bad.stderr
    assert (
        'spec.cronSpec: Invalid value: "* * * *": spec.cronSpec in body should match '
        "'^(\\d+|\\*)(/\\d+)?(\\s+(\\d+|\\*)(/\\d+)?){4}$'"
    ) in bad.stderr
    assert 'spec: Invalid value: "object": replicas must not exceed maxReplicas' in bad.stderr

    # Unknown fields: strict decoding error under kubectl's fieldValidation=Strict.
    unknown = _apply(
        kubectl,
        tmp_path,
        CRONTAB.format(group=group, name="strict", cron="* * * * *", replicas=1)
        + "  colour: red\n",
        "-n",
        namespace,
        check=False,
    )
    assert (
        'CronTab in version "v1" cannot be handled as a CronTab: strict decoding error: '
        'unknown field "spec.colour"'
    ) in unknown.stderr

    # A strategic merge patch is refused as upstream refuses it for custom kinds.
    smp = kubectl(
        "-n",
        namespace,
        "patch",
        resource,
        "my-new-cron-object",
        "-p",
        '{"spec":{"replicas":3}}',
        check=False,
    )
    assert (
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
        in smp.stderr
    )

    # kubectl scale goes through the scale subresource.
    kubectl("-n", namespace, "scale", f"{resource}/my-new-cron-object", "--replicas=5")
    assert (
        kubectl.json("-n", namespace, "get", resource, "my-new-cron-object")["spec"]["replicas"]
        == 5
    )
    scale = json.loads(
        kubectl(
            "get",
            "--raw",
            f"/apis/{group}/v1/namespaces/{namespace}/crontabs/my-new-cron-object/scale",
        ).stdout
    )
    assert scale["kind"] == "Scale" and scale["spec"] == {"replicas": 5}

    # Deleting the CRD deletes its objects first, then the resource is gone.
    kubectl("delete", "crd", f"crontabs.{group}", "--timeout=60s")
    assert kubectl("get", "crd", f"crontabs.{group}", check=False).returncode != 0
    gone = kubectl("-n", namespace, "get", resource, check=False)
    assert gone.returncode != 0
    assert "the server doesn't have a resource type" in gone.stderr or "NotFound" in gone.stderr
    # The object is gone from the store too: recreating the CRD shows nothing.
    f = tmp_path / "crd-again.yaml"
    f.write_text(CRD.format(group=group))
    kubectl("apply", "-f", str(f))
    assert "No resources found" in kubectl("-n", namespace, "get", resource).stderr


def test_status_subresource_and_generation(
    kubectl, namespace: str, crontabs: str, tmp_path: Path
) -> None:
    group = crontabs
    resource = f"crontabs.{group}"
    _apply(
        kubectl,
        tmp_path,
        CRONTAB.format(group=group, name="gen", cron="* * * * *", replicas=1),
        "-n",
        namespace,
    )
    base = f"/apis/{group}/v1/namespaces/{namespace}/crontabs/gen"
    # Status through /status; the main resource ignores status.
    kubectl(
        "-n",
        namespace,
        "patch",
        resource,
        "gen",
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status":{"replicas":3,"labelSelector":"app=x"}}',
    )
    kubectl(
        "-n", namespace, "patch", resource, "gen", "--type=merge", "-p", '{"status":{"replicas":9}}'
    )
    obj = kubectl.json("-n", namespace, "get", resource, "gen")
    assert obj["status"] == {"replicas": 3, "labelSelector": "app=x"}
    assert obj["metadata"]["generation"] == 1  # status writes never bump it
    kubectl(
        "-n", namespace, "patch", resource, "gen", "--type=merge", "-p", '{"spec":{"image":"v2"}}'
    )
    assert kubectl.json("-n", namespace, "get", resource, "gen")["metadata"]["generation"] == 2
    scale = json.loads(kubectl("get", "--raw", base + "/scale").stdout)
    assert scale["status"] == {"replicas": 3, "selector": "app=x"}


def test_watch_and_server_side_apply(
    kubectl, namespace: str, crontabs: str, tmp_path: Path
) -> None:
    group = crontabs
    resource = f"crontabs.{group}"
    watch = kubectl.popen(
        "-n",
        namespace,
        "get",
        resource,
        "-w",
        "--output-watch-events",
        "-o",
        "name",
        "--request-timeout=20s",
    )
    try:
        time.sleep(1.0)
        _apply(
            kubectl,
            tmp_path,
            CRONTAB.format(group=group, name="watched", cron="* * * * *", replicas=1),
            "-n",
            namespace,
            "--server-side",
        )
        assert watch.stdout is not None
        line = watch.stdout.readline().decode()
        assert line.strip() == f"crontab.{group}/watched"
    finally:
        watch.terminate()
        watch.wait(10)
    managed = kubectl.json("-n", namespace, "get", resource, "watched", "--show-managed-fields")[
        "metadata"
    ]["managedFields"]
    assert [m["manager"] for m in managed] == ["kubectl"]
    assert managed[0]["operation"] == "Apply"


def test_the_readme_examples_apply(kubectl, namespace: str) -> None:  # type: ignore[no-untyped-def]
    """README's tour applies examples/crontab-crd.yaml, then examples/crontab.yaml."""
    examples = Path(__file__).parents[2] / "examples"
    kubectl("apply", "-f", str(examples / "crontab-crd.yaml"))
    try:
        kubectl("apply", "-n", namespace, "-f", str(examples / "crontab.yaml"))
        row = kubectl("get", "ct", "-n", namespace, "--no-headers").stdout
        assert row.startswith("my-new-cron-object   * * * * */5   1 "), row
        bad = kubectl(
            "patch", "ct", "my-new-cron-object", "-n", namespace, "--type=merge",
            "-p", '{"spec":{"image":""}}', check=False,
        )  # fmt: skip
        assert bad.returncode != 0 and "image must not be empty" in bad.stderr, bad.stderr
    finally:
        kubectl(
            "delete", "crd", "crontabs.stable.example.com", "--ignore-not-found",
            "--timeout=30s", check=False,
        )  # fmt: skip
