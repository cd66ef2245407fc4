"""The pod-template-hash against values computed by upstream's own code.

The expected hashes come from a Go program that decodes each template into
k8s.io/api v0.32.0's ``v1.PodTemplateSpec`` and runs upstream's ComputeHash
(go-spew ``%#v`` with SortKeys and DisableMethods, FNV-32a, the collision count as
eight little-endian bytes, rand.SafeEncodeString). Templates are written as
upstream's API server serves them (defaulted, canonical quantities).
"""

from __future__ import annotations

import json

import pytest

from pilothouse.controllers.deployment import hash as template_hash

# (template JSON, hash, hash with collisionCount 1)
GOLDEN = [
    (
        '{"metadata":{"creationTimestamp":null,"labels":{"app":"web"}},"spec":{"containers":[{"name":"nginx","image":"nginx","resources":{},"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File","imagePullPolicy":"Always"}],"restartPolicy":"Always","terminationGracePeriodSeconds":30,"dnsPolicy":"ClusterFirst","securityContext":{},"schedulerName":"default-scheduler"}}',
        "65d846d465",
        "559cc76d96",
    ),
    (
        '{"metadata":{"labels":{"app":"api","tier":"backend"},"annotations":{"kubectl.kubernetes.io/restartedAt":"2025-01-01T00:00:00Z"}},"spec":{"nodeName":"n1","nodeSelector":{"disk":"ssd","zone":"a"},"volumes":[{"name":"cache","emptyDir":{}},{"name":"cfg","configMap":{"name":"app-config","defaultMode":420,"items":[{"key":"a","path":"b"}]}},{"name":"scratch","emptyDir":{"medium":"Memory","sizeLimit":"64Mi"}}],"containers":[{"name":"app","image":"busybox:1.36","command":["sh","-c","sleep 3600"],"ports":[{"name":"http","containerPort":8080,"protocol":"TCP"}],"env":[{"name":"A","value":"1"},{"name":"POD","valueFrom":{"fieldRef":{"apiVersion":"v1","fieldPath":"metadata.name"}}}],"resources":{"limits":{"cpu":"1","memory":"1536Mi"},"requests":{"cpu":"100m","memory":"128Mi","ephemeral-storage":"1Gi"}},"readinessProbe":{"httpGet":{"path":"/healthz","port":"http","scheme":"HTTP"},"initialDelaySeconds":1,"timeoutSeconds":1,"periodSeconds":10,"successThreshold":1,"failureThreshold":3},"livenessProbe":{"tcpSocket":{"port":8080},"timeoutSeconds":1,"periodSeconds":10,"successThreshold":1,"failureThreshold":3},"securityContext":{"capabilities":{"add":["NET_ADMIN"],"drop":["ALL"]},"runAsNonRoot":true,"runAsUser":1000,"allowPrivilegeEscalation":false},"volumeMounts":[{"name":"cache","mountPath":"/cache"},{"name":"cfg","mountPath":"/etc/cfg","readOnly":true}],"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File","imagePullPolicy":"IfNotPresent"}],"restartPolicy":"Always","terminationGracePeriodSeconds":60,"dnsPolicy":"ClusterFirst","securityContext":{"fsGroup":2000},"schedulerName":"default-scheduler","tolerations":[{"key":"k","operator":"Equal","value":"v","effect":"NoSchedule","tolerationSeconds":30}],"affinity":{"podAntiAffinity":{"preferredDuringSchedulingIgnoredDuringExecution":[{"weight":100,"podAffinityTerm":{"labelSelector":{"matchLabels":{"app":"api"},"matchExpressions":[{"key":"tier","operator":"In","values":["backend"]}]},"topologyKey":"kubernetes.io/hostname"}}]}},"enableServiceLinks":true,"priority":0,"hostNetwork":false}}',
        "567c8c98fd",
        "5bc74b75cf",
    ),
    (
        '{"metadata":{"labels":{"app":"q"}},"spec":{"containers":[{"name":"c","image":"x","resources":{"limits":{"memory":"12345678901234567890","cpu":"1e3","nvidia.com/gpu":"2"},"requests":{"cpu":"1500m","memory":"1Ki","x":"0"}}}]}}',
        "867899fcdf",
        "bdd9478bd",
    ),
]


@pytest.mark.parametrize(("template", "expected", "expected_collision"), GOLDEN)
def test_hash_matches_upstream(template: str, expected: str, expected_collision: str) -> None:
    obj = json.loads(template)
    assert template_hash.compute_hash(obj, None) == expected
    assert template_hash.compute_hash(obj, 1) == expected_collision


def test_spew_text_starts_like_upstreams() -> None:
    text = template_hash.spew_template(json.loads(GOLDEN[0][0]))
    assert text.startswith(
        "(v1.PodTemplateSpec){ObjectMeta:(v1.ObjectMeta){Name:(string) GenerateName:(string) "
        "Namespace:(string) SelfLink:(string) UID:(types.UID) ResourceVersion:(string) "
        "Generation:(int64)0 CreationTimestamp:(v1.Time){Time:(time.Time){wall:(uint64)0 ext:(int64)0 "
        "loc:(*time.Location)<nil>}} DeletionTimestamp:(*v1.Time)<nil> "
        "DeletionGracePeriodSeconds:(*int64)<nil> Labels:(map[string]string)map[app:web] "
    )


def test_quantities_hash_as_the_server_would_store_them() -> None:
    def tmpl(cpu: str) -> dict[str, object]:
        container = {"name": "c", "image": "i", "resources": {"requests": {"cpu": cpu}}}
        return {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [container]}}

    # Upstream serves "0.5" as "500m" and "1000m" as "1": same quantity, same hash.
    assert template_hash.compute_hash(tmpl("0.5"), None) == template_hash.compute_hash(
        tmpl("500m"), None
    )
    assert template_hash.compute_hash(tmpl("1000m"), None) == template_hash.compute_hash(
        tmpl("1"), None
    )
    assert template_hash.compute_hash(tmpl("1"), None) != template_hash.compute_hash(
        tmpl("2"), None
    )


def test_empty_lists_and_maps_hash_like_absent_ones() -> None:
    # The controller manager decodes protobuf, where empty and absent are the same.
    base = json.loads(GOLDEN[0][0])
    with_empties = json.loads(GOLDEN[0][0])
    with_empties["metadata"]["annotations"] = {}
    with_empties["spec"]["volumes"] = []
    assert template_hash.compute_hash(with_empties, None) == template_hash.compute_hash(base, None)


def test_collision_count_and_encoding() -> None:
    obj = json.loads(GOLDEN[0][0])
    hashes = {template_hash.compute_hash(obj, n) for n in (None, 0, 1, 2)}
    assert len(hashes) == 4
    assert set("".join(hashes)) <= set("456789bcdf")  # SafeEncodeString of decimal digits
    assert template_hash.safe_encode_string("0123456789") == "456789bcdf"
