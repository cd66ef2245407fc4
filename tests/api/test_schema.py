"""The 1.32 schemas: look-ups, strict-decoding field checks and strategic-merge metadata."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from pilothouse.api import errors, schema, schema_walk


def deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}, "annotations": {"a": "b"}},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1},
            },
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": "nginx:1.27",
                            "ports": [{"containerPort": 80, "protocol": "TCP"}],
                            "env": [{"name": "A", "value": "1"}],
                            "resources": {"limits": {"cpu": "500m", "memory": 1073741824}},
                            "livenessProbe": {"httpGet": {"path": "/", "port": "http"}},
                            "readinessProbe": {"tcpSocket": {"port": 8080}},
                        }
                    ],
                    "nodeSelector": {"disk": "ssd"},
                    "tolerations": None,
                },
            },
        },
    }


def test_definitions_are_loaded_once_and_shared() -> None:
    assert schema.definitions() is schema.definitions()
    assert "io.k8s.api.apps.v1.Deployment" in schema.definitions()
    assert schema.schema_file().name == "_definitions.json"
    assert "v1.32." in str(schema.schema_file())


def test_kind_schema_is_found_by_group_version_kind() -> None:
    found = schema.kind_schema("apps", "v1", "Deployment")
    assert found is schema.definitions()["io.k8s.api.apps.v1.Deployment"]
    assert schema.kind_schema("", "v1", "Pod") is schema.definitions()["io.k8s.api.core.v1.Pod"]
    assert schema.kind_schema("autoscaling", "v1", "Scale") is not None
    assert schema.kind_schema("example.com", "v1", "Widget") is None


def test_a_valid_deployment_has_no_problems() -> None:
    problems = schema.field_problems("apps", "v1", "Deployment", deployment())
    assert not problems
    assert problems.unknown == [] and problems.type_errors == []


def test_unknown_fields_are_reported_with_full_paths() -> None:
    obj = deployment()
    spec = obj["spec"]["template"]["spec"]
    spec["containers"][0]["imagePullPolicyy"] = "Always"
    spec["containers"][0]["ports"][0]["hostPortt"] = 1
    spec["foo"] = 1
    obj["metadata"]["nam"] = "x"
    obj["status"] = {"replicas": 1, "bogus": True}
    problems = schema.field_problems("apps", "v1", "Deployment", obj)
    assert problems.unknown == [
        "metadata.nam",
        "spec.template.spec.containers[0].ports[0].hostPortt",
        "spec.template.spec.containers[0].imagePullPolicyy",
        "spec.template.spec.foo",
        "status.bogus",
    ]
    assert problems.type_errors == []


def test_map_keys_are_free_but_map_values_are_checked() -> None:
    obj = deployment()
    obj["metadata"]["labels"] = {"anything.example.com/goes": "yes", "n": 1}
    obj["spec"]["template"]["spec"]["nodeSelector"] = {"zone": "a"}
    problems = schema.field_problems("apps", "v1", "Deployment", obj)
    assert problems.unknown == []
    assert problems.type_errors == [
        "json: cannot unmarshal number into Go struct field ObjectMeta.metadata.labels of type string"
    ]


def test_type_errors_are_worded_as_go_json() -> None:
    obj = deployment()
    obj["spec"]["replicas"] = "3"
    container = obj["spec"]["template"]["spec"]["containers"][0]
    container["env"][0]["value"] = 1
    container["ports"] = {"containerPort": 80}
    container["stdin"] = "yes"
    obj["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 1.5
    obj["spec"]["minReadySeconds"] = 2**40
    problems = schema.field_problems("apps", "v1", "Deployment", obj)
    assert problems.type_errors == [
        "json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32",
        "json: cannot unmarshal object into Go struct field Container.spec.template.spec.containers.ports of type []v1.ContainerPort",
        "json: cannot unmarshal number into Go struct field EnvVar.spec.template.spec.containers.env.value of type string",
        "json: cannot unmarshal string into Go struct field Container.spec.template.spec.containers.stdin of type bool",
        "json: cannot unmarshal number 1.5 into Go struct field PodSpec.spec.template.spec.terminationGracePeriodSeconds of type int64",
        "json: cannot unmarshal number 1099511627776 into Go struct field DeploymentSpec.spec.minReadySeconds of type int32",
    ]


def test_object_where_a_struct_is_expected() -> None:
    obj = deployment()
    obj["spec"]["template"] = "nope"
    problems = schema.field_problems("apps", "v1", "Deployment", obj)
    assert problems.type_errors == [
        "json: cannot unmarshal string into Go struct field DeploymentSpec.spec.template of type v1.PodTemplateSpec"
    ]


@pytest.mark.parametrize("value", [80, "http", "25%"])
def test_int_or_string_accepts_both(value: Any) -> None:
    obj = deployment()
    obj["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["port"] = value
    obj["spec"]["strategy"]["rollingUpdate"]["maxSurge"] = value
    assert not schema.field_problems("apps", "v1", "Deployment", obj)


@pytest.mark.parametrize(
    ("value", "what"),
    [(True, "bool"), (1.5, "number 1.5"), ({}, "object"), (2**31, "number 2147483648")],
)
def test_int_or_string_rejects_other_values_as_int32(value: Any, what: str) -> None:
    svc = {"spec": {"ports": [{"port": 80, "targetPort": value}]}}
    problems = schema.field_problems("", "v1", "Service", svc)
    assert problems.type_errors == [
        f"json: cannot unmarshal {what} into Go struct field ServicePort.spec.ports.targetPort of type int32"
    ]


def test_quantities_are_parsed_as_upstream_decodes_them() -> None:
    obj = deployment()
    resources = obj["spec"]["template"]["spec"]["containers"][0]["resources"]
    resources["limits"] = {"cpu": 0.5, "memory": "1Gi"}
    assert not schema.field_problems("apps", "v1", "Deployment", obj)
    resources["requests"] = {"cpu": "abc"}
    problems = schema.field_problems("apps", "v1", "Deployment", obj)
    assert problems.type_errors == [
        "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    ]


def test_secret_data_must_be_base64() -> None:
    assert not schema.field_problems("", "v1", "Secret", {"data": {"a": "aGVsbG8=", "b": "aGk=\n"}})
    problems = schema.field_problems("", "v1", "Secret", {"data": {"a": "hello!", "b": "abc"}})
    assert problems.type_errors == [
        "illegal base64 data at input byte 5",
        "illegal base64 data at input byte 0",
    ]


def test_raw_and_time_fields() -> None:
    revision = {
        "data": {"anything": [1, {"goes": True}]},
        "revision": 1,
        "metadata": {"creationTimestamp": 5},
    }
    problems = schema.field_problems("apps", "v1", "ControllerRevision", revision)
    assert problems.unknown == []
    assert problems.type_errors == [
        "json: cannot unmarshal number into Go struct field ObjectMeta.metadata.creationTimestamp of type string"
    ]


def test_nulls_are_accepted_everywhere() -> None:
    obj = {
        "metadata": None,
        "spec": {"replicas": None, "template": {"spec": {"containers": [None]}}},
    }
    assert not schema.field_problems("apps", "v1", "Deployment", obj)


def test_top_level_type_meta_is_known_and_left_to_the_caller() -> None:
    problems = schema.field_problems(
        "", "v1", "ConfigMap", {"apiVersion": 1, "kind": [], "data": {"a": "b"}}
    )
    assert not problems


def test_kinds_without_a_schema_have_no_problems() -> None:
    assert not schema.field_problems("example.com", "v1", "Widget", {"spec": {"whatever": 1}})


def test_prune_drops_unknown_fields_in_place() -> None:
    obj = deployment()
    obj["spec"]["template"]["spec"]["containers"][0]["bogus"] = 1
    obj["extra"] = True
    expected = copy.deepcopy(deployment())
    problems = schema.field_problems("apps", "v1", "Deployment", obj, prune=True)
    assert problems.unknown == ["spec.template.spec.containers[0].bogus", "extra"]
    assert obj == expected


def test_preserve_unknown_fields_is_honoured() -> None:
    compiler_schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": True,
                "properties": {"a": {"type": "integer"}},
            },
            "port": {"x-kubernetes-int-or-string": True},
        },
    }
    node = schema_walk.Compiler({}).schema(compiler_schema)
    walk = schema_walk.Walk(prune=False)
    walk.top(node, {"spec": {"a": "x", "free": 1}, "port": "http", "other": 1}, skip=frozenset())
    assert walk.unknown == ["other"]
    assert walk.type_errors == [
        "json: cannot unmarshal string into Go struct field struct.spec.a of type int64"
    ]


def test_strict_decoding_error_reads_like_upstream() -> None:
    err = schema.strict_decoding_error(
        "Deployment",
        "v1",
        [schema.unknown_field("spec.foo"), schema.duplicate_field("metadata.name")],
    )
    assert isinstance(err, errors.StatusError)
    assert err.code == 400 and err.reason == errors.BAD_REQUEST
    assert err.message == (
        'Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: '
        'unknown field "spec.foo", duplicate field "metadata.name"'
    )
    typed = schema.decode_error("Pod", "v1", "json: cannot unmarshal …")
    assert (
        typed.message == 'Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal …'
    )


def test_patch_meta_exposes_merge_directives() -> None:
    kind = schema.kind_schema("apps", "v1", "Deployment")
    assert kind is not None
    containers = schema.patch_meta(kind, ["spec", "template", "spec", "containers"])
    assert containers is not None
    assert containers.patch_merge_key == "name"
    assert containers.patch_strategy == ("merge",)
    assert containers.list_type == "map" and containers.list_map_keys == ("name",)
    assert (
        containers.is_list
        and containers.items is not None
        and "image" in containers.items["properties"]
    )
    ports = schema.patch_meta(kind, ["spec", "template", "spec", "containers", "ports"])
    assert ports is not None and ports.list_map_keys == ("containerPort", "protocol")
    # An index or "*" may name the list item explicitly.
    assert schema.patch_meta(kind, ["spec", "template", "spec", "containers", 0, "ports"]) == ports
    volumes = schema.patch_meta(kind, ["spec", "template", "spec", "volumes"])
    assert volumes is not None and volumes.patch_strategy == ("merge", "retainKeys")
    strategy = schema.patch_meta(kind, ["spec", "strategy"])
    assert strategy is not None and strategy.patch_strategy == ("retainKeys",)
    assert "rollingUpdate" in strategy.schema["properties"]
    label = schema.patch_meta(kind, ["metadata", "labels", "app"])
    assert (
        label is not None
        and label.patch_merge_key is None
        and label.schema["type"] == ["string", "null"]
    )
    assert schema.patch_meta(kind, ["spec", "nope"]) is None


def test_resolve_follows_refs() -> None:
    assert (
        schema.resolve({"$ref": "#/$defs/io.k8s.api.core.v1.PodSpec"})
        is schema.definitions()["io.k8s.api.core.v1.PodSpec"]
    )
    plain = {"type": "string"}
    assert schema.resolve(plain) is plain
