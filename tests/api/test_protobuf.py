"""Protobuf request bodies: envelope, field layout, Go's JSON rules, and errors.

Bodies are built with a few field helpers below (``s`` a string or bytes field, ``i`` a
varint, ``m`` a nested message), written the way upstream's encoder writes them:
every non-pointer field present, zero or not. Bodies captured from kubectl 1.32
(``-v=9``) check the same against what kubectl sends as JSON for the same command.
"""

from __future__ import annotations

import struct
import time
from typing import Any

import pytest

from pilothouse.api import protobuf, protobuf_table, resources


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def tag(number: int, wire: int) -> bytes:
    return varint(number << 3 | wire)


def s(number: int, value: str | bytes) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    return tag(number, 2) + varint(len(data)) + data


def m(number: int, *parts: bytes) -> bytes:
    return s(number, b"".join(parts))


def i(number: int, value: int) -> bytes:
    return tag(number, 0) + varint(value)


def entry(number: int, key: str, value: bytes) -> bytes:
    return m(number, s(1, key), value)


def envelope(api_version: str, kind: str, *raw: bytes) -> bytes:
    return protobuf.MAGIC + m(1, s(1, api_version), s(2, kind)) + m(2, *raw)


def meta(name: str, *extra: bytes, namespace: str = "") -> bytes:
    """An ObjectMeta as upstream writes it: every string, generation and the zero time."""
    return m(
        1,
        s(1, name), s(2, ""), s(3, namespace), s(4, ""), s(5, ""), s(6, ""), i(7, 0), m(8),
        *extra,
    )  # fmt: skip


def quantity(number: int, text: str) -> bytes:
    return m(number, s(1, text))


def int_or_string(number: int, value: int | str) -> bytes:
    if isinstance(value, int):
        return m(number, i(1, 0), i(2, value), s(3, ""))
    return m(number, i(1, 1), i(2, 0), s(3, value))


def test_namespace() -> None:
    body = envelope("v1", "Namespace", meta("x"), m(2), m(3, s(1, "")))
    assert protobuf.decode(body) == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "x", "creationTimestamp": None},
        "spec": {},
        "status": {},
    }


def test_configmap_with_data_and_binary_data() -> None:
    body = envelope(
        "v1",
        "ConfigMap",
        meta("c", namespace="ns"),
        entry(2, "a", s(2, "b")),
        entry(2, "empty", s(2, "")),
        entry(3, "bin", s(2, b"\x00\x01\xff\xfe")),
    )
    assert protobuf.decode(body) == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "ns", "creationTimestamp": None},
        "data": {"a": "b", "empty": ""},
        "binaryData": {"bin": "AAH//g=="},
    }


def test_secret_bytes_become_base64() -> None:
    body = envelope(
        "v1",
        "Secret",
        meta("s"),
        entry(2, "p", s(2, b"q")),
        entry(2, "key", s(2, b"\xde\xad\xbe\xef")),
        s(3, "Opaque"),
        entry(4, "plain", s(2, "text")),
    )
    assert protobuf.decode(body) == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s", "creationTimestamp": None},
        "data": {"p": "cQ==", "key": "3q2+7w=="},
        "type": "Opaque",
        "stringData": {"plain": "text"},
    }


CONTAINER = m(
    2,
    s(1, "web"),
    s(2, "nginx:1.27"),
    s(3, "nginx"),  # command (repeated)
    s(3, "-g"),
    m(6, s(1, "http"), i(2, 0), i(3, 8080), s(4, "TCP"), s(5, "")),  # ports
    m(6, s(1, ""), i(2, 0), i(3, 0), s(4, ""), s(5, "")),  # a port of all zero values
    m(
        8,  # resources
        entry(1, "cpu", quantity(2, "500m")),
        entry(1, "memory", quantity(2, "128Mi")),
        entry(2, "cpu", quantity(2, "0.1")),
    ),
    s(5, ""),  # workingDir
    i(16, 0),  # stdin
)

DEPLOYMENT = envelope(
    "apps/v1",
    "Deployment",
    meta("web", entry(11, "app", s(2, "web")), entry(11, "tier", s(2, "front")), namespace="prod"),
    m(
        2,
        i(1, 3),  # replicas (a pointer)
        m(2, entry(1, "app", s(2, "web"))),  # selector
        m(3, meta("", entry(11, "app", s(2, "web"))), m(2, CONTAINER, s(3, "Always"))),
        m(4, s(1, "RollingUpdate"), m(2, int_or_string(1, 0), int_or_string(2, "25%"))),
        i(5, 0),  # minReadySeconds
        i(7, 0),  # paused
    ),
    m(3, i(1, 0), i(2, 0)),
)


def test_deployment() -> None:
    assert protobuf.decode(DEPLOYMENT) == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "prod",
            "creationTimestamp": None,
            "labels": {"app": "web", "tier": "front"},
        },
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"creationTimestamp": None, "labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": "nginx:1.27",
                            "command": ["nginx", "-g"],
                            "ports": [
                                {"name": "http", "containerPort": 8080, "protocol": "TCP"},
                                {"containerPort": 0},  # no omitempty on containerPort
                            ],
                            "resources": {
                                "limits": {"cpu": "500m", "memory": "128Mi"},
                                "requests": {"cpu": "100m"},  # canonical, as upstream shows it
                            },
                        }
                    ],
                    "restartPolicy": "Always",
                },
            },
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"},
            },
        },
        "status": {},
    }


def test_pointer_zero_values_stay() -> None:
    body = envelope("apps/v1", "Deployment", meta("d"), m(2, i(1, 0), i(6, 0)))
    assert protobuf.decode(body)["spec"] == {"replicas": 0, "revisionHistoryLimit": 0}


def test_eviction_with_delete_options() -> None:
    body = envelope(
        "policy/v1",
        "Eviction",
        meta("web-1", namespace="prod"),
        m(2, i(1, 0), m(2, s(1, "uid-1"), s(2, "42")), s(4, "Foreground")),
    )
    assert protobuf.decode(body) == {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": "web-1", "namespace": "prod", "creationTimestamp": None},
        "deleteOptions": {
            "gracePeriodSeconds": 0,
            "preconditions": {"uid": "uid-1", "resourceVersion": "42"},
            "propagationPolicy": "Foreground",
        },
    }


def test_delete_options_in_any_group_version() -> None:
    options = (i(1, 30), m(2, s(1, "u"), s(2, "7")), s(4, "Background"), s(5, "All"))
    expected = {
        "gracePeriodSeconds": 30,
        "preconditions": {"uid": "u", "resourceVersion": "7"},
        "propagationPolicy": "Background",
        "dryRun": ["All"],
    }
    for api_version in ("v1", "apps/v1", "meta.k8s.io/v1"):
        body = envelope(api_version, "DeleteOptions", *options)
        assert protobuf.decode(body) == {
            "apiVersion": api_version,
            "kind": "DeleteOptions",
            **expected,
        }


def test_negative_and_wide_integers() -> None:
    # int64 -1 is ten bytes on the wire; int32 fields keep the low 32 bits, signed.
    body = envelope("v1", "DeleteOptions", i(1, -1))
    assert protobuf.decode(body)["gracePeriodSeconds"] == -1
    body = envelope("apps/v1", "Deployment", m(2, i(1, -5)))
    assert protobuf.decode(body)["spec"] == {"replicas": -5}


def test_times_durations_and_managed_fields() -> None:
    fields_v1 = b'{"f:data":{"f:a":{}}}'
    body = envelope(
        "coordination.k8s.io/v1",
        "Lease",
        meta(
            "l",
            m(9, i(1, 1795624762), i(2, 999)),  # deletionTimestamp: nanoseconds dropped
            m(17, s(1, "kubectl"), s(2, "Update"), s(3, "v1"), m(4, i(1, 0)), s(6, "FieldsV1"),
              m(7, s(1, fields_v1)), s(8, "")),
        ),
        m(2, s(1, "me"), i(2, 15), m(3, i(1, 1795624762), i(2, 123456789)), m(4)),
    )  # fmt: skip
    obj = protobuf.decode(body)
    assert obj["metadata"]["deletionTimestamp"] == "2026-11-25T16:39:22Z"
    assert obj["metadata"]["managedFields"] == [
        {
            "manager": "kubectl",
            "operation": "Update",
            "apiVersion": "v1",
            "time": "1970-01-01T00:00:00Z",  # present seconds=0 is the epoch, not zero
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:data": {"f:a": {}}},
        }
    ]
    assert obj["spec"] == {
        "holderIdentity": "me",
        "leaseDurationSeconds": 15,
        "acquireTime": "2026-11-25T16:39:22.123456Z",
        "renewTime": None,
    }


@pytest.mark.parametrize(
    ("nanoseconds", "text"),
    [
        (0, "0s"),
        (1, "1ns"),
        (1500, "1.5µs"),
        (1_500_000, "1.5ms"),
        (999_999_999, "999.999999ms"),
        (1_000_000_000, "1s"),
        (3_723_000_000_000, "1h2m3s"),
        (3_600_000_000_000, "1h0m0s"),
        (90_500_000_000, "1m30.5s"),
        (-2_000_000_000, "-2s"),
        (-(1 << 63), "-2562047h47m16.854775808s"),
    ],
)
def test_go_duration(nanoseconds: int, text: str) -> None:
    assert protobuf.go_duration(nanoseconds) == text


def test_inline_structs_join_their_parent() -> None:
    volume = m(1, s(1, "data"), m(2, m(2, s(1, "Memory"))))  # volumeSource.emptyDir
    probe = m(11, m(1, m(2, s(1, "/healthz"), int_or_string(2, "http"))), i(2, 5))
    container = m(2, s(1, "c"), probe)
    body = envelope("v1", "Pod", meta("p"), m(2, volume, container))
    assert protobuf.decode(body)["spec"] == {
        "volumes": [{"name": "data", "emptyDir": {"medium": "Memory"}}],
        "containers": [
            {
                "name": "c",
                "readinessProbe": {
                    "httpGet": {"path": "/healthz", "port": "http"},
                    "initialDelaySeconds": 5,
                },
            }
        ],
    }


def test_named_slices_raw_extensions_and_packed_repeats() -> None:
    review = envelope(
        "authorization.k8s.io/v1",
        "SubjectAccessReview",
        meta(""),
        m(2, s(3, "alice"), entry(5, "team", m(2, s(1, "a"), s(1, "b"))), s(6, "uid")),
    )
    assert protobuf.decode(review)["spec"] == {
        "user": "alice",
        "extra": {"team": ["a", "b"]},
        "uid": "uid",
    }
    revision = envelope(
        "apps/v1", "ControllerRevision", meta("r"), m(2, s(1, b'{"spec":{"x":1}}')), i(3, 2)
    )
    assert protobuf.decode(revision)["data"] == {"spec": {"x": 1}}
    # supplementalGroups (repeated int64), packed and unpacked
    packed = s(4, varint(1000) + varint(2000))
    body = envelope("v1", "Pod", m(2, m(14, packed, i(4, 3000))))
    assert protobuf.decode(body)["spec"]["securityContext"] == {
        "supplementalGroups": [1000, 2000, 3000]
    }


def test_repeated_message_field_merges_and_unknown_fields_are_skipped() -> None:
    unknown = (
        i(99, 7)
        + s(98, "ignored")
        + tag(97, 1) + struct.pack("<d", 1.5)
        + tag(96, 5) + struct.pack("<I", 3)
    )  # fmt: skip
    body = envelope("v1", "ConfigMap", meta("c"), unknown, m(1, s(3, "ns")), i(4, 1))
    assert protobuf.decode(body) == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "ns", "creationTimestamp": None},
        "immutable": True,
    }


def test_envelope_without_raw_is_an_empty_object() -> None:
    body = protobuf.MAGIC + m(1, s(1, "v1"), s(2, "Namespace"))
    assert protobuf.decode(body) == {"apiVersion": "v1", "kind": "Namespace"}


# Captured from kubectl 1.32.4 -v=9; the expected dicts are what the same commands
# print with --dry-run=client -o json (Go's JSON of the same struct).
KUBECTL_BODIES = [
    (
        "create namespace z",
        "6b3873000a0f0a02763112094e616d657370616365121"
        "90a110a017a12001a0022002a003200380042001200" "1a020a001a002200",
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": {"name": "z", "creationTimestamp": None}, "spec": {}, "status": {}},
    ),
    (
        "create secret generic tls -n x --from-literal=p=q --from-literal=empty=",
        "6b3873000a0c0a0276311206536563726574122b0a140a03746c7312001a017822002a003200380042"
        "0012090a05656d707479120012060a01701201711a001a002200",
        {"apiVersion": "v1", "kind": "Secret",
         "metadata": {"name": "tls", "namespace": "x", "creationTimestamp": None},
         "data": {"empty": "", "p": "cQ=="}},
    ),
    (
        "create deployment web -n x --image=nginx:1.27 --replicas=3 --port=80",
        "6b3873000a150a07617070732f7631120a4465706c6f796d656e7412be010a200a0377656212001a01"
        "7822002a003200380042005a0a0a036170701203776562128b010803120c0a0a0a0361707012037765"
        "621a710a1c0a0012001a0022002a003200380042005a0a0a036170701203776562125112330a056e67"
        "696e78120a6e67696e783a312e32372a00320a0a001000185022002a0042006a007200800100880100"
        "900100a201001a00320042004a0052005800600068008201008a01009a0100c2010022020a00280038"
        "001a0c0800100018002000280038001a002200",
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "web", "namespace": "x", "creationTimestamp": None,
                      "labels": {"app": "web"}},
         "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                  "template": {"metadata": {"creationTimestamp": None, "labels": {"app": "web"}},
                               "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27",
                                                        "ports": [{"containerPort": 80}],
                                                        "resources": {}}]}},
                  "strategy": {}},
         "status": {}},
    ),
    (
        "auth can-i get pods -n x",
        "6b3873000a320a17617574686f72697a6174696f6e2e6b38732e696f2f7631121753656c665375626a"
        "65637441636365737352657669657712360a100a0012001a0022002a0032003800420012180a160a01"
        "7812036765741a0022002a04706f647332003a001a08080012001a0020001a002200",
        {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
         "metadata": {"creationTimestamp": None},
         "spec": {"resourceAttributes": {"namespace": "x", "verb": "get", "resource": "pods"}},
         "status": {"allowed": False}},
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("command", "body", "expected"), KUBECTL_BODIES, ids=[c for c, _, _ in KUBECTL_BODIES]
)
def test_bodies_kubectl_sends(command: str, body: str, expected: dict[str, Any]) -> None:
    assert protobuf.decode(bytes.fromhex(body)) == expected


def test_a_deployment_decodes_well_under_a_millisecond() -> None:
    body = bytes.fromhex(KUBECTL_BODIES[2][1])
    protobuf.decode(body)  # loads the table
    best = min(_timed(protobuf.decode, body) for _ in range(50))
    assert best < 0.001


def _timed(fn: Any, arg: Any) -> float:
    start = time.perf_counter()
    fn(arg)
    return time.perf_counter() - start


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty data"),
        (b'{"kind":"Pod"}', "provided data does not appear to be a protobuf message"),
        (protobuf.MAGIC, "empty body"),
        (protobuf.MAGIC + b"\x0a\x05\x0a", "unexpected EOF"),  # length past the end
        (envelope("v1", "Namespace", b"\x0a"), "unexpected EOF"),  # tag without its length
        (envelope("v1", "Namespace", b"\x38\x80"), "unexpected EOF"),  # unfinished varint
        (envelope("v1", "Namespace", b"\x38" + b"\xff" * 10 + b"\x01"), "proto: integer overflow"),
        (envelope("v1", "Namespace", m(1, b"\x0a\x7f")), "unexpected EOF"),  # nested overrun
        (envelope("v1", "Namespace", b"\x0a" + varint(-1)), "negative length"),
        (envelope("v1", "Namespace", tag(1, 0) + b"\x01"), "wrong wireType = 0 for field Metadata"),
        (envelope("v1", "Namespace", tag(99, 3)), "group wire types are not supported"),
        (envelope("v1", "Namespace", tag(99, 4)), "wiretype end group for non-group"),
        (envelope("v1", "Namespace", tag(99, 6)), "illegal wireType 6"),
        (envelope("v1", "Namespace", b"\x00\x00"), "illegal tag 0"),
        (protobuf.MAGIC + m(1, s(1, "v1")) + m(2), "Object 'Kind' is missing"),
        (protobuf.MAGIC + m(1, s(2, "Pod")) + m(2), "Object 'apiVersion' is missing"),
        (envelope("v1", "Gizmo"), 'no kind "Gizmo" is registered for version "v1"'),
        (envelope("v1", "Pod", m(2, m(2, m(8, entry(1, "cpu", quantity(2, "lots")))))),
         "quantities must match the regular expression"),
        (envelope("v1", "Service", m(2, m(1, int_or_string(4, 1) + m(4, i(1, 7))))),
         "impossible IntOrString.Type"),
        (envelope("apps/v1", "ControllerRevision", m(2, s(1, b"{not json"))),
         "embedded object is not JSON"),
    ],
)  # fmt: skip
def test_malformed_bodies(body: bytes, message: str) -> None:
    with pytest.raises(protobuf.ProtobufError, match=message):
        protobuf.decode(body)


def test_is_protobuf() -> None:
    assert protobuf.is_protobuf("application/vnd.kubernetes.protobuf")
    assert protobuf.is_protobuf("Application/vnd.kubernetes.protobuf; charset=binary")
    assert not protobuf.is_protobuf("application/json")
    assert not protobuf.is_protobuf("")
    assert not protobuf.is_protobuf(None)


def test_table_legend_matches_the_decoder() -> None:
    codes = protobuf_table.KIND_CODES
    assert codes["string"] == protobuf.STRING
    assert codes["int64"] == protobuf.INT64
    assert codes["sfixed64"] == protobuf.SFIXED64
    assert codes["map"] == protobuf.MAP
    assert codes["time"] == protobuf.TIME
    assert codes["wrapper"] == protobuf.WRAPPER
    assert protobuf_table.FLAG_CODES == {
        "omit_zero": protobuf.OMIT_ZERO,
        "inline": protobuf.INLINE,
        "repeated": protobuf.REPEATED,
        "no_json": protobuf.NO_JSON,
    }


def test_table_covers_every_kind_we_serve_and_resolves_every_reference() -> None:
    kinds = set(protobuf_table.KINDS)
    for r in resources.RESOURCES:
        if not r.stored:
            continue  # read-only and computed (metrics.k8s.io): no body is ever decoded
        if r.group == "apiextensions.k8s.io":
            # CRDs arrive as JSON: kubectl sends them unstructured, and client-go's
            # apiextensions clientset defaults to JSON too.
            continue
        if r.group == "apiregistration.k8s.io":
            # kube-aggregator's clientset and kubectl send APIServices as JSON.
            continue
        assert f"{r.api_version} {r.kind}" in kinds, r.kind
        assert f"{r.api_version} {r.list_kind}" in kinds or r.kind == "Binding", r.list_kind
    for group, version, kind in resources.SUBRESOURCE_KINDS.values():
        key = f"{group}/{version} {kind}" if group else f"{version} {kind}"
        assert key in kinds
    extra = [
        "policy/v1 Eviction", "autoscaling/v1 Scale", "meta.k8s.io/v1 DeleteOptions",
        "meta.k8s.io/v1 Status", "authentication.k8s.io/v1 TokenRequest",
        "authentication.k8s.io/v1 TokenReview", "authorization.k8s.io/v1 SelfSubjectAccessReview",
        "authorization.k8s.io/v1 SubjectAccessReview", "authorization.k8s.io/v1 SelfSubjectRulesReview",
        "rbac.authorization.k8s.io/v1 Role", "rbac.authorization.k8s.io/v1 ClusterRole",
        "rbac.authorization.k8s.io/v1 RoleBinding", "rbac.authorization.k8s.io/v1 ClusterRoleBinding",
        "networking.k8s.io/v1 Ingress", "networking.k8s.io/v1 NetworkPolicy",
        "networking.k8s.io/v1 IngressClass", "v1 ResourceQuota", "v1 LimitRange",
        "v1 ReplicationController", "v1 PodTemplate", "v1 Binding",
    ]  # fmt: skip
    assert [k for k in extra if k not in kinds] == []
    table = protobuf._table()
    for name, fields in table.messages.items():
        for number, (_json, kind, ref, _flags) in fields.items():
            target = ref[2] if kind == protobuf.MAP else ref
            assert not target or target in table.messages, (name, number, target)
