"""Fixtures of the integration tests: a small valid object of every kind."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pilothouse.api import resources

Obj = dict[str, Any]

_CONTAINERS = [{"name": "c", "image": "busybox"}]


def _template(app: str) -> Obj:
    return {"metadata": {"labels": {"app": app}}, "spec": {"containers": _CONTAINERS}}


def _workload(name: str, ns: str = "", **spec: Any) -> Obj:
    return {
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": _template(name),
            **spec,
        }
    }


_RULES = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]


def _binding(role_kind: str) -> Obj:
    group = "rbac.authorization.k8s.io"
    return {
        "roleRef": {"apiGroup": group, "kind": role_kind, "name": "view"},
        "subjects": [{"kind": "User", "name": "someone", "apiGroup": group}],
    }


def _csr_request(name: str) -> str:
    """A PEM certificate request for ``name``, base64-encoded as the API wants it."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .sign(key, hashes.SHA256())
    )
    return base64.b64encode(csr.public_bytes(serialization.Encoding.PEM)).decode()


# The smallest valid body of each kind (by group and resource), from its name
# and namespace, without metadata; one object of every kind a test goes through.
_SAMPLES: dict[tuple[str, str], Callable[[str, str], Obj]] = {
    ("", "namespaces"): lambda name, ns: {},
    ("", "nodes"): lambda name, ns: {},
    ("", "pods"): lambda name, ns: {"spec": {"containers": _CONTAINERS}},
    ("", "replicationcontrollers"): lambda name, ns: {"spec": {"template": _template(name)}},
    ("", "services"): lambda name, ns: {"spec": {"ports": [{"port": 80}]}},
    ("", "endpoints"): lambda name, ns: {},
    ("", "configmaps"): lambda name, ns: {"data": {"k": "v"}},
    ("", "secrets"): lambda name, ns: {"stringData": {"k": "v"}},
    ("", "serviceaccounts"): lambda name, ns: {},
    ("", "events"): lambda name, ns: {
        "involvedObject": {"kind": "Pod", "name": "x", "namespace": ns},
        "reason": "Tested",
        "message": "m",
    },
    ("", "persistentvolumes"): lambda name, ns: {
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "hostPath": {"path": "/tmp/" + name},
        }
    },
    ("", "persistentvolumeclaims"): lambda name, ns: {
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    },
    ("", "podtemplates"): lambda name, ns: {"template": _template(name)},
    ("", "resourcequotas"): lambda name, ns: {"spec": {"hard": {"pods": "10"}}},
    ("", "limitranges"): lambda name, ns: {
        "spec": {"limits": [{"type": "Container", "max": {"cpu": "1"}}]}
    },
    ("apps", "deployments"): _workload,
    ("apps", "replicasets"): _workload,
    ("apps", "statefulsets"): lambda name, ns: _workload(name, serviceName=name),
    ("apps", "daemonsets"): _workload,
    ("apps", "controllerrevisions"): lambda name, ns: {"revision": 1, "data": {}},
    ("batch", "jobs"): lambda name, ns: {
        "spec": {
            "template": {
                "spec": {"containers": _CONTAINERS, "restartPolicy": "Never"},
            }
        }
    },
    ("batch", "cronjobs"): lambda name, ns: {
        "spec": {
            "schedule": "*/5 * * * *",
            "jobTemplate": {
                "spec": {
                    "template": {"spec": {"containers": _CONTAINERS, "restartPolicy": "Never"}}
                }
            },
        }
    },
    ("autoscaling", "horizontalpodautoscalers"): lambda name, ns: {
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "maxReplicas": 3,
        }
    },
    ("coordination.k8s.io", "leases"): lambda name, ns: {"spec": {"holderIdentity": "h"}},
    ("discovery.k8s.io", "endpointslices"): lambda name, ns: {
        "addressType": "IPv4",
        "endpoints": [],
    },
    ("storage.k8s.io", "storageclasses"): lambda name, ns: {"provisioner": "example.com/none"},
    ("storage.k8s.io", "csidrivers"): lambda name, ns: {"spec": {}},
    ("storage.k8s.io", "csinodes"): lambda name, ns: {"spec": {"drivers": []}},
    ("storage.k8s.io", "volumeattachments"): lambda name, ns: {
        "spec": {
            "attacher": "example.com",
            "nodeName": "n",
            "source": {"persistentVolumeName": "v"},
        }
    },
    ("events.k8s.io", "events"): lambda name, ns: {
        "eventTime": "2026-01-01T00:00:00.000000Z",
        "reportingController": "example.com/test",
        "reportingInstance": "i",
        "action": "Test",
        "reason": "Tested",
        "regarding": {"kind": "Pod", "name": "x", "namespace": ns},
        "type": "Normal",
    },
    ("scheduling.k8s.io", "priorityclasses"): lambda name, ns: {"value": 10},
    ("rbac.authorization.k8s.io", "roles"): lambda name, ns: {"rules": _RULES},
    ("rbac.authorization.k8s.io", "clusterroles"): lambda name, ns: {"rules": _RULES},
    ("rbac.authorization.k8s.io", "rolebindings"): lambda name, ns: _binding("Role"),
    ("rbac.authorization.k8s.io", "clusterrolebindings"): lambda name, ns: _binding("ClusterRole"),
    ("certificates.k8s.io", "certificatesigningrequests"): lambda name, ns: {
        "spec": {
            "request": _csr_request(name),
            "signerName": "example.com/test",
            "usages": ["client auth"],
        }
    },
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"): lambda name, ns: {
        "webhooks": []
    },
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations"): lambda name, ns: {
        "webhooks": []
    },
    ("admissionregistration.k8s.io", "validatingadmissionpolicies"): lambda name, ns: {
        "spec": {
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["configmaps"],
                    }
                ]
            },
            "validations": [{"expression": "true"}],
        }
    },
    ("admissionregistration.k8s.io", "validatingadmissionpolicybindings"): lambda name, ns: {
        "spec": {"policyName": name, "validationActions": ["Deny"]}
    },
    ("policy", "poddisruptionbudgets"): lambda name, ns: {
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": name}}}
    },
}


def sample_body(resource: resources.Resource, name: str, namespace: str = "") -> Obj:
    """A valid object of ``resource`` named ``name``; fails, saying what to do, for
    a resource without a sample."""
    make = _SAMPLES.get((resource.group, resource.plural))
    if make is None:
        pytest.fail(
            f"no sample object for {resource.qualified}: add one to tests/integration/conftest.py"
        )
    body = make(name, namespace)
    body["apiVersion"] = resource.api_version
    body["kind"] = resource.kind
    body["metadata"] = {"name": name}
    return body


@pytest.fixture
def sample() -> Callable[..., Obj]:
    """``sample(resource, name, namespace="")``: a valid object to create."""
    return sample_body
