"""Upstream's bootstrap RBAC policy (Kubernetes 1.32), as data.

The roles and bindings kube-apiserver creates at start (``bootstrappolicy``:
``policy.go``, ``controller_policy.go``, ``namespace_policy.go``): the user-facing
``cluster-admin``/``admin``/``edit``/``view`` (the last three aggregated from the
``system:aggregate-to-*`` roles), discovery and basic-user access, and the
least-privilege roles of the control plane's own components — ``system:node``,
``system:kube-scheduler``, ``system:kube-controller-manager`` and one
``system:controller:<name>`` per controller, each bound to the ``kube-system``
ServiceAccount of that controller. Rules are written with :func:`rule` and
:func:`urls`; everything else in the module reads these tables.
"""

from __future__ import annotations

from typing import Any

Rule = dict[str, Any]

LEGACY = ""
APPS = "apps"
BATCH = "batch"
EXT = "extensions"
EVENTS = "events.k8s.io"
COORD = "coordination.k8s.io"
STORAGE = "storage.k8s.io"
CERTS = "certificates.k8s.io"
RBAC = "rbac.authorization.k8s.io"
AUTHN = "authentication.k8s.io"
AUTHZ = "authorization.k8s.io"
POLICY = "policy"
AUTOSCALING = "autoscaling"
NETWORKING = "networking.k8s.io"
DISCOVERY = "discovery.k8s.io"

READ = ("get", "list", "watch")
WRITE = ("create", "delete", "deletecollection", "patch", "update")
RW = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


def rule(
    verbs: tuple[str, ...] | str,
    groups: tuple[str, ...] | str,
    resources: tuple[str, ...] | str,
    names: tuple[str, ...] = (),
) -> Rule:
    """A resource rule; strings stand for one-element lists."""

    def listed(value: tuple[str, ...] | str) -> list[str]:
        return [value] if isinstance(value, str) else sorted(value)

    out: Rule = {
        "verbs": listed(verbs),
        "apiGroups": list([groups] if isinstance(groups, str) else groups),
        "resources": listed(resources),
    }
    if names:
        out["resourceNames"] = list(names)
    return out


def urls(verbs: tuple[str, ...] | str, paths: tuple[str, ...]) -> Rule:
    return {
        "verbs": [verbs] if isinstance(verbs, str) else list(verbs),
        "nonResourceURLs": list(paths),
    }


EVENT_WRITE = rule(("create", "patch", "update"), (LEGACY, EVENTS), "events")

# --- cluster roles -----------------------------------------------------------------

AGGREGATE_TO_ADMIN = [
    rule("create", AUTHZ, "localsubjectaccessreviews"),
    rule(RW, RBAC, ("rolebindings", "roles")),
]

AGGREGATE_TO_EDIT = [
    rule(
        READ,
        LEGACY,
        ("pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "secrets", "services/proxy"),
    ),
    rule("impersonate", LEGACY, "serviceaccounts"),
    rule(WRITE, LEGACY, ("pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy")),
    rule("create", LEGACY, "pods/eviction"),
    rule(
        WRITE,
        LEGACY,
        (
            "configmaps",
            "events",
            "persistentvolumeclaims",
            "replicationcontrollers",
            "replicationcontrollers/scale",
            "secrets",
            "serviceaccounts",
            "services",
            "services/proxy",
        ),
    ),
    rule("create", LEGACY, "serviceaccounts/token"),
    rule(
        WRITE,
        APPS,
        (
            "daemonsets",
            "deployments",
            "deployments/rollback",
            "deployments/scale",
            "replicasets",
            "replicasets/scale",
            "statefulsets",
            "statefulsets/scale",
        ),
    ),
    rule(WRITE, AUTOSCALING, "horizontalpodautoscalers"),
    rule(WRITE, BATCH, ("cronjobs", "jobs")),
    rule(
        WRITE,
        EXT,
        (
            "daemonsets",
            "deployments",
            "deployments/rollback",
            "deployments/scale",
            "ingresses",
            "networkpolicies",
            "replicasets",
            "replicasets/scale",
            "replicationcontrollers/scale",
        ),
    ),
    rule(WRITE, POLICY, "poddisruptionbudgets"),
    rule(WRITE, NETWORKING, ("ingresses", "networkpolicies")),
    rule(RW, COORD, "leases"),
]

AGGREGATE_TO_VIEW = [
    rule(
        READ,
        LEGACY,
        (
            "configmaps",
            "endpoints",
            "persistentvolumeclaims",
            "persistentvolumeclaims/status",
            "pods",
            "replicationcontrollers",
            "replicationcontrollers/scale",
            "serviceaccounts",
            "services",
            "services/status",
        ),
    ),
    rule(
        READ,
        LEGACY,
        (
            "bindings",
            "events",
            "limitranges",
            "namespaces/status",
            "pods/log",
            "pods/status",
            "replicationcontrollers/status",
            "resourcequotas",
            "resourcequotas/status",
        ),
    ),
    rule(READ, LEGACY, "namespaces"),
    rule(READ, DISCOVERY, "endpointslices"),
    rule(
        READ,
        APPS,
        (
            "controllerrevisions",
            "daemonsets",
            "daemonsets/status",
            "deployments",
            "deployments/scale",
            "deployments/status",
            "replicasets",
            "replicasets/scale",
            "replicasets/status",
            "statefulsets",
            "statefulsets/scale",
            "statefulsets/status",
        ),
    ),
    rule(READ, AUTOSCALING, ("horizontalpodautoscalers", "horizontalpodautoscalers/status")),
    rule(READ, BATCH, ("cronjobs", "cronjobs/status", "jobs", "jobs/status")),
    rule(
        READ,
        EXT,
        (
            "daemonsets",
            "daemonsets/status",
            "deployments",
            "deployments/scale",
            "deployments/status",
            "ingresses",
            "ingresses/status",
            "networkpolicies",
            "replicasets",
            "replicasets/scale",
            "replicasets/status",
            "replicationcontrollers/scale",
        ),
    ),
    rule(READ, POLICY, ("poddisruptionbudgets", "poddisruptionbudgets/status")),
    rule(READ, NETWORKING, ("ingresses", "ingresses/status", "networkpolicies")),
]

NODE_RULES = [
    rule("create", AUTHN, "tokenreviews"),
    rule("create", AUTHZ, ("localsubjectaccessreviews", "subjectaccessreviews")),
    rule(READ, LEGACY, "services"),
    rule(("create", "get", "list", "watch"), LEGACY, "nodes"),
    rule(("patch", "update"), LEGACY, "nodes/status"),
    rule(("patch", "update"), LEGACY, "nodes"),
    rule(("create", "patch", "update"), LEGACY, "events"),
    rule(READ, LEGACY, "pods"),
    rule(("create", "delete"), LEGACY, "pods"),
    rule(("patch", "update"), LEGACY, "pods/status"),
    rule("create", LEGACY, "pods/eviction"),
    rule(READ, LEGACY, ("configmaps", "secrets")),
    rule("get", LEGACY, ("persistentvolumeclaims", "persistentvolumes")),
    rule("get", LEGACY, "endpoints"),
    rule(("create", "get", "list", "watch"), CERTS, "certificatesigningrequests"),
    rule(("create", "delete", "get", "patch", "update"), COORD, "leases"),
    rule("get", STORAGE, "volumeattachments"),
    rule("create", LEGACY, "serviceaccounts/token"),
    rule(("get", "patch", "update"), LEGACY, "persistentvolumeclaims/status"),
    rule(READ, STORAGE, "csidrivers"),
    rule(("create", "delete", "get", "patch", "update"), STORAGE, "csinodes"),
    rule(READ, "node.k8s.io", "runtimeclasses"),
]

SCHEDULER_RULES = [
    EVENT_WRITE,
    rule("create", COORD, "leases"),
    rule(("get", "update"), COORD, "leases", ("kube-scheduler",)),
    rule(READ, LEGACY, "nodes"),
    rule(("delete", "get", "list", "watch"), LEGACY, "pods"),
    rule("create", LEGACY, ("bindings", "pods/binding")),
    rule(("patch", "update"), LEGACY, "pods/status"),
    rule(READ, LEGACY, ("replicationcontrollers", "services")),
    rule(READ, (APPS, EXT), "replicasets"),
    rule(READ, APPS, "statefulsets"),
    rule(READ, POLICY, "poddisruptionbudgets"),
    rule(READ, LEGACY, ("persistentvolumeclaims", "persistentvolumes")),
    rule("create", AUTHN, "tokenreviews"),
    rule("create", AUTHZ, "subjectaccessreviews"),
    rule(READ, STORAGE, "csinodes"),
    rule(READ, LEGACY, "namespaces"),
    rule(READ, STORAGE, "csidrivers"),
    rule(READ, STORAGE, "csistoragecapacities"),
]

CONTROLLER_MANAGER_RULES = [
    EVENT_WRITE,
    rule("create", COORD, "leases"),
    rule(("get", "update"), COORD, "leases", ("kube-controller-manager",)),
    rule("create", LEGACY, ("secrets", "serviceaccounts")),
    rule("delete", LEGACY, "secrets"),
    rule("get", LEGACY, ("configmaps", "namespaces", "secrets", "serviceaccounts")),
    rule("update", LEGACY, ("secrets", "serviceaccounts")),
    rule("create", AUTHN, "tokenreviews"),
    rule("create", AUTHZ, "subjectaccessreviews"),
    rule(("list", "watch"), "*", "*"),
    rule("create", LEGACY, "serviceaccounts/token"),
]

_DISCOVERY_URLS = (
    "/api",
    "/api/*",
    "/apis",
    "/apis/*",
    "/healthz",
    "/livez",
    "/openapi",
    "/openapi/*",
    "/readyz",
    "/version",
    "/version/",
)

AGGREGATE_LABEL = "rbac.authorization.k8s.io/aggregate-to-{}"


def _aggregated(name: str, into: str) -> dict[str, Any]:
    return {
        "aggregationRule": {
            "clusterRoleSelectors": [{"matchLabels": {AGGREGATE_LABEL.format(name): "true"}}]
        },
        "labels": {AGGREGATE_LABEL.format(into): "true"} if into else {},
    }


CLUSTER_ROLES: dict[str, dict[str, Any]] = {
    "cluster-admin": {"rules": [rule("*", "*", "*"), urls("*", ("*",))]},
    "admin": {**_aggregated("admin", "")},
    "edit": {**_aggregated("edit", "admin")},
    "view": {**_aggregated("view", "edit")},
    "system:aggregate-to-admin": {
        "rules": AGGREGATE_TO_ADMIN,
        "labels": {AGGREGATE_LABEL.format("admin"): "true"},
    },
    "system:aggregate-to-edit": {
        "rules": AGGREGATE_TO_EDIT,
        "labels": {AGGREGATE_LABEL.format("edit"): "true"},
    },
    "system:aggregate-to-view": {
        "rules": AGGREGATE_TO_VIEW,
        "labels": {AGGREGATE_LABEL.format("view"): "true"},
    },
    "system:auth-delegator": {
        "rules": [
            rule("create", AUTHN, "tokenreviews"),
            rule("create", AUTHZ, "subjectaccessreviews"),
        ]
    },
    "system:basic-user": {
        "rules": [
            rule("create", AUTHZ, ("selfsubjectaccessreviews", "selfsubjectrulesreviews")),
            rule("create", AUTHN, "selfsubjectreviews"),
        ]
    },
    "system:certificates.k8s.io:certificatesigningrequests:nodeclient": {
        "rules": [rule("create", CERTS, "certificatesigningrequests/nodeclient")]
    },
    "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient": {
        "rules": [rule("create", CERTS, "certificatesigningrequests/selfnodeclient")]
    },
    "system:certificates.k8s.io:kube-apiserver-client-approver": {
        "rules": [rule("approve", CERTS, "signers", ("kubernetes.io/kube-apiserver-client",))]
    },
    "system:certificates.k8s.io:kube-apiserver-client-kubelet-approver": {
        "rules": [
            rule("approve", CERTS, "signers", ("kubernetes.io/kube-apiserver-client-kubelet",))
        ]
    },
    "system:certificates.k8s.io:kubelet-serving-approver": {
        "rules": [rule("approve", CERTS, "signers", ("kubernetes.io/kubelet-serving",))]
    },
    "system:certificates.k8s.io:legacy-unknown-approver": {
        "rules": [rule("approve", CERTS, "signers", ("kubernetes.io/legacy-unknown",))]
    },
    "system:discovery": {"rules": [urls("get", _DISCOVERY_URLS)]},
    "system:heapster": {
        "rules": [
            rule(READ, LEGACY, ("events", "namespaces", "nodes", "pods")),
            rule(READ, EXT, "deployments"),
        ]
    },
    "system:kube-aggregator": {"rules": [rule(READ, LEGACY, ("endpoints", "services"))]},
    "system:kube-controller-manager": {"rules": CONTROLLER_MANAGER_RULES},
    "system:kube-dns": {"rules": [rule(("list", "watch"), LEGACY, ("endpoints", "services"))]},
    "system:kube-scheduler": {"rules": SCHEDULER_RULES},
    "system:kubelet-api-admin": {
        "rules": [
            rule(READ, LEGACY, "nodes"),
            rule("proxy", LEGACY, "nodes"),
            rule("*", LEGACY, ("nodes/log", "nodes/metrics", "nodes/proxy", "nodes/stats")),
        ]
    },
    "system:monitoring": {
        "rules": [
            urls(
                "get",
                (
                    "/healthz",
                    "/healthz/*",
                    "/livez",
                    "/livez/*",
                    "/metrics",
                    "/metrics/slis",
                    "/readyz",
                    "/readyz/*",
                ),
            )
        ]
    },
    "system:node": {"rules": NODE_RULES},
    "system:node-bootstrapper": {
        "rules": [rule(("create", "get", "list", "watch"), CERTS, "certificatesigningrequests")]
    },
    "system:node-problem-detector": {
        "rules": [
            rule("get", LEGACY, "nodes"),
            rule("patch", LEGACY, "nodes/status"),
            EVENT_WRITE,
        ]
    },
    "system:node-proxier": {
        "rules": [
            rule(("list", "watch"), LEGACY, ("endpoints", "services")),
            rule(READ, LEGACY, "nodes"),
            EVENT_WRITE,
            rule(("list", "watch"), DISCOVERY, "endpointslices"),
        ]
    },
    "system:persistent-volume-provisioner": {
        "rules": [
            rule(("create", "delete", "get", "list", "watch"), LEGACY, "persistentvolumes"),
            rule(("get", "list", "update", "watch"), LEGACY, "persistentvolumeclaims"),
            rule(READ, STORAGE, "storageclasses"),
            rule("watch", LEGACY, "events"),
            EVENT_WRITE,
        ]
    },
    "system:public-info-viewer": {
        "rules": [urls("get", ("/healthz", "/livez", "/readyz", "/version", "/version/"))]
    },
    "system:service-account-issuer-discovery": {
        "rules": [urls("get", ("/.well-known/openid-configuration", "/openid/v1/jwks"))]
    },
    "system:volume-scheduler": {
        "rules": [
            rule(("get", "list", "patch", "update", "watch"), LEGACY, "persistentvolumes"),
            rule(READ, STORAGE, "storageclasses"),
            rule(("get", "list", "patch", "update", "watch"), LEGACY, "persistentvolumeclaims"),
        ]
    },
}

# What pilothouse's own components need beyond upstream's roles for them, kept apart
# so upstream's roles stay as they are: the scheduler keeps PriorityClasses in an
# informer (upstream's reads each pod's resolved priority only).
CLUSTER_ROLES["pilothouse:kube-scheduler"] = {
    "rules": [rule(READ, "scheduling.k8s.io", "priorityclasses")]
}
# Every node agent also serves cluster DNS for its pods (as NodeLocal DNSCache would,
# with CoreDNS's reads) and proxies Services (system:node-proxier, kube-proxy's role).
CLUSTER_ROLES["pilothouse:node-dns"] = {
    "rules": [
        rule(("list", "watch"), LEGACY, ("namespaces", "services")),
        rule(("list", "watch"), DISCOVERY, "endpointslices"),
    ]
}

# Every node agent also runs the local-path provisioner's node part: it makes the PVs of
# the claims scheduled to it, removes them when Released, grows them (the rules of k3s's
# local-path-provisioner-role, less the helper pods pilothouse does not use).
CLUSTER_ROLES["pilothouse:local-path-provisioner"] = {
    "rules": [
        rule(
            ("create", "delete", "get", "list", "patch", "update", "watch"),
            LEGACY,
            "persistentvolumes",
        ),
        rule(("get", "list", "patch", "update", "watch"), LEGACY, "persistentvolumeclaims"),
        rule(("patch", "update"), LEGACY, "persistentvolumeclaims/status"),
        rule(READ, STORAGE, "storageclasses"),
        EVENT_WRITE,
    ]
}

# (name, role, subjects) — subjects as (kind, name[, namespace]).
CLUSTER_ROLE_BINDINGS: list[tuple[str, str, list[tuple[str, ...]]]] = [
    ("cluster-admin", "cluster-admin", [("Group", "system:masters")]),
    ("system:basic-user", "system:basic-user", [("Group", "system:authenticated")]),
    ("system:discovery", "system:discovery", [("Group", "system:authenticated")]),
    (
        "system:kube-controller-manager",
        "system:kube-controller-manager",
        [("User", "system:kube-controller-manager")],
    ),
    ("system:kube-dns", "system:kube-dns", [("ServiceAccount", "kube-dns", "kube-system")]),
    ("system:kube-scheduler", "system:kube-scheduler", [("User", "system:kube-scheduler")]),
    ("system:monitoring", "system:monitoring", [("Group", "system:monitoring")]),
    # Nodes are authorized by the Node authorizer; the binding exists without subjects.
    ("system:node", "system:node", []),
    ("system:node-proxier", "system:node-proxier", [("User", "system:kube-proxy")]),
    (
        "system:public-info-viewer",
        "system:public-info-viewer",
        [("Group", "system:authenticated"), ("Group", "system:unauthenticated")],
    ),
    (
        "system:service-account-issuer-discovery",
        "system:service-account-issuer-discovery",
        [("Group", "system:serviceaccounts")],
    ),
    ("system:volume-scheduler", "system:volume-scheduler", [("User", "system:kube-scheduler")]),
    ("pilothouse:kube-scheduler", "pilothouse:kube-scheduler", [("User", "system:kube-scheduler")]),
    ("pilothouse:node-dns", "pilothouse:node-dns", [("Group", "system:nodes")]),
    (
        "pilothouse:local-path-provisioner",
        "pilothouse:local-path-provisioner",
        [("Group", "system:nodes")],
    ),
    ("pilothouse:node-proxier", "system:node-proxier", [("Group", "system:nodes")]),
]

# --- controllers: system:controller:<name>, bound to kube-system/<name> --------------

CONTROLLER_ROLES: dict[str, list[Rule]] = {
    "attachdetach-controller": [
        rule(("list", "watch"), LEGACY, ("persistentvolumeclaims", "persistentvolumes")),
        rule(READ, LEGACY, "nodes"),
        rule(("patch", "update"), LEGACY, "nodes/status"),
        rule(("list", "watch"), LEGACY, "pods"),
        EVENT_WRITE,
        rule(("create", "delete", "get", "list", "watch"), STORAGE, "volumeattachments"),
        rule(READ, STORAGE, "csidrivers"),
        rule(READ, STORAGE, "csinodes"),
    ],
    "certificate-controller": [
        rule(("delete", "get", "list", "watch"), CERTS, "certificatesigningrequests"),
        rule(
            "update",
            CERTS,
            ("certificatesigningrequests/approval", "certificatesigningrequests/status"),
        ),
        rule("approve", CERTS, "signers", ("kubernetes.io/kube-apiserver-client-kubelet",)),
        rule(
            "sign",
            CERTS,
            "signers",
            (
                "kubernetes.io/kube-apiserver-client",
                "kubernetes.io/kube-apiserver-client-kubelet",
                "kubernetes.io/kubelet-serving",
                "kubernetes.io/legacy-unknown",
            ),
        ),
        rule("create", AUTHZ, "subjectaccessreviews"),
        EVENT_WRITE,
    ],
    "clusterrole-aggregation-controller": [
        rule(("escalate", "get", "list", "patch", "update", "watch"), RBAC, "clusterroles"),
    ],
    "cronjob-controller": [
        rule(("get", "list", "update", "watch"), BATCH, "cronjobs"),
        rule(("create", "delete", "get", "list", "patch", "update", "watch"), BATCH, "jobs"),
        rule("update", BATCH, "cronjobs/status"),
        rule("update", BATCH, "cronjobs/finalizers"),
        rule(("delete", "list", "watch"), LEGACY, "pods"),
        EVENT_WRITE,
    ],
    "daemon-set-controller": [
        rule(READ, (APPS, EXT), "daemonsets"),
        rule("update", (APPS, EXT), "daemonsets/status"),
        rule("update", (APPS, EXT), "daemonsets/finalizers"),
        rule(("list", "watch"), LEGACY, "nodes"),
        rule(("create", "delete", "list", "patch", "watch"), LEGACY, "pods"),
        rule("create", LEGACY, "pods/binding"),
        rule(
            ("create", "delete", "get", "list", "patch", "update", "watch"),
            APPS,
            "controllerrevisions",
        ),
        EVENT_WRITE,
    ],
    "deployment-controller": [
        rule(("get", "list", "update", "watch"), (APPS, EXT), "deployments"),
        rule("update", (APPS, EXT), "deployments/status"),
        rule("update", (APPS, EXT), "deployments/finalizers"),
        rule(
            ("create", "delete", "get", "list", "patch", "update", "watch"),
            (APPS, EXT),
            "replicasets",
        ),
        rule(("get", "list", "update", "watch"), LEGACY, "pods"),
        EVENT_WRITE,
    ],
    "disruption-controller": [
        rule(READ, (APPS, EXT), "deployments"),
        rule(READ, (APPS, EXT), "replicasets"),
        rule(READ, LEGACY, "replicationcontrollers"),
        rule(READ, POLICY, "poddisruptionbudgets"),
        rule(READ, APPS, "statefulsets"),
        rule("update", POLICY, "poddisruptionbudgets/status"),
        rule(("patch", "update"), LEGACY, "pods/status"),
        rule("get", "*", "*/scale"),
        EVENT_WRITE,
    ],
    "endpoint-controller": [
        rule(READ, LEGACY, ("pods", "services")),
        rule(("create", "delete", "get", "list", "update", "watch"), LEGACY, "endpoints"),
        rule("create", LEGACY, "endpoints/restricted"),
        EVENT_WRITE,
    ],
    "endpointslice-controller": [
        rule(READ, LEGACY, ("nodes", "pods", "services")),
        rule("update", LEGACY, "services/finalizers"),
        rule(("create", "delete", "get", "list", "update", "watch"), DISCOVERY, "endpointslices"),
        EVENT_WRITE,
    ],
    "endpointslicemirroring-controller": [
        rule(READ, LEGACY, ("endpoints", "services")),
        rule("update", LEGACY, "services/finalizers"),
        rule("update", LEGACY, "endpoints/finalizers"),
        rule(("create", "delete", "get", "list", "update", "watch"), DISCOVERY, "endpointslices"),
        EVENT_WRITE,
    ],
    "ephemeral-volume-controller": [
        rule(READ, LEGACY, "pods"),
        rule("update", LEGACY, "pods/finalizers"),
        rule(("create", "get", "list", "watch"), LEGACY, "persistentvolumeclaims"),
        EVENT_WRITE,
    ],
    "expand-controller": [
        rule(("get", "list", "patch", "update", "watch"), LEGACY, "persistentvolumes"),
        rule(("patch", "update"), LEGACY, "persistentvolumeclaims/status"),
        rule(READ, LEGACY, "persistentvolumeclaims"),
        EVENT_WRITE,
    ],
    "generic-garbage-collector": [
        rule(("delete", "get", "list", "patch", "update", "watch"), "*", "*"),
        EVENT_WRITE,
    ],
    "horizontal-pod-autoscaler": [
        rule(READ, AUTOSCALING, "horizontalpodautoscalers"),
        rule("update", AUTOSCALING, "horizontalpodautoscalers/status"),
        rule(("get", "update"), "*", "*/scale"),
        rule(("list", "watch"), LEGACY, "pods"),
        rule(("list", "watch"), "metrics.k8s.io", "pods"),
        rule(READ, "custom.metrics.k8s.io", "*"),
        rule(READ, "external.metrics.k8s.io", "*"),
        EVENT_WRITE,
    ],
    "job-controller": [
        rule(("get", "list", "patch", "update", "watch"), BATCH, "jobs"),
        rule("update", BATCH, "jobs/status"),
        rule("update", BATCH, "jobs/finalizers"),
        rule(("create", "delete", "list", "patch", "watch"), LEGACY, "pods"),
        EVENT_WRITE,
    ],
    "legacy-service-account-token-cleaner": [
        rule(
            "get",
            LEGACY,
            "configmaps",
            ("kube-apiserver-legacy-service-account-token-tracking",),
        ),
        rule(("delete", "patch"), LEGACY, "secrets"),
    ],
    "namespace-controller": [
        rule(("delete", "get", "list", "watch"), LEGACY, "namespaces"),
        rule("update", LEGACY, ("namespaces/finalize", "namespaces/status")),
        rule(("delete", "deletecollection", "get", "list", "watch"), "*", "*"),
    ],
    "node-controller": [
        rule(("delete", "get", "list", "patch", "update", "watch"), LEGACY, "nodes"),
        rule(("patch", "update"), LEGACY, "nodes/status"),
        rule(("patch", "update"), LEGACY, "pods/status"),
        rule(("delete", "get", "list", "watch"), LEGACY, "pods"),
        EVENT_WRITE,
    ],
    "persistent-volume-binder": [
        rule(("create", "delete", "get", "list", "update", "watch"), LEGACY, "persistentvolumes"),
        rule("update", LEGACY, "persistentvolumes/status"),
        rule(("get", "list", "update", "watch"), LEGACY, "persistentvolumeclaims"),
        rule("update", LEGACY, "persistentvolumeclaims/status"),
        rule(("create", "delete", "get", "list", "watch"), LEGACY, "pods"),
        rule(READ, STORAGE, "storageclasses"),
        rule(("list", "watch"), LEGACY, "nodes"),
        EVENT_WRITE,
        rule("watch", LEGACY, "events"),
    ],
    "pod-garbage-collector": [
        rule(("delete", "list", "watch"), LEGACY, "pods"),
        rule(READ, LEGACY, "nodes"),
        rule("patch", LEGACY, "pods/status"),
    ],
    "pv-protection-controller": [
        rule(("get", "list", "update", "watch"), LEGACY, "persistentvolumes"),
        EVENT_WRITE,
    ],
    "pvc-protection-controller": [
        rule(("get", "list", "update", "watch"), LEGACY, "persistentvolumeclaims"),
        rule("update", LEGACY, "persistentvolumeclaims/status"),
        rule(READ, LEGACY, "pods"),
        EVENT_WRITE,
    ],
    "replicaset-controller": [
        rule(("get", "list", "update", "watch"), (APPS, EXT), "replicasets"),
        rule("update", (APPS, EXT), "replicasets/status"),
        rule("update", (APPS, EXT), "replicasets/finalizers"),
        rule(("create", "delete", "list", "patch", "watch"), LEGACY, "pods"),
        EVENT_WRITE,
    ],
    "replication-controller": [
        rule(("get", "list", "update", "watch"), LEGACY, "replicationcontrollers"),
        rule("update", LEGACY, "replicationcontrollers/status"),
        rule("update", LEGACY, "replicationcontrollers/finalizers"),
        rule(("create", "delete", "list", "patch", "watch"), LEGACY, "pods"),
        EVENT_WRITE,
    ],
    "resourcequota-controller": [
        rule(("list", "watch"), "*", "*"),
        rule("update", LEGACY, "resourcequotas/status"),
        EVENT_WRITE,
    ],
    "root-ca-cert-publisher": [
        rule(("create", "update"), LEGACY, "configmaps"),
        EVENT_WRITE,
    ],
    "route-controller": [
        rule(("list", "watch"), LEGACY, "nodes"),
        rule("patch", LEGACY, "nodes/status"),
        EVENT_WRITE,
    ],
    "service-account-controller": [
        rule("create", LEGACY, "serviceaccounts"),
        EVENT_WRITE,
    ],
    "service-controller": [
        rule(READ, LEGACY, "services"),
        rule(("patch", "update"), LEGACY, "services/status"),
        rule(("list", "watch"), LEGACY, "nodes"),
        EVENT_WRITE,
    ],
    "statefulset-controller": [
        rule(("list", "watch"), LEGACY, "pods"),
        rule(READ, APPS, "statefulsets"),
        rule("update", APPS, "statefulsets/status"),
        rule("update", APPS, "statefulsets/finalizers"),
        rule(("create", "delete", "get", "patch", "update"), LEGACY, "pods"),
        rule(
            ("create", "delete", "get", "list", "patch", "update", "watch"),
            APPS,
            "controllerrevisions",
        ),
        rule(("create", "get", "list", "watch"), LEGACY, "persistentvolumeclaims"),
        rule(("delete", "update"), LEGACY, "persistentvolumeclaims"),
        rule("update", LEGACY, "pods/finalizers"),
        EVENT_WRITE,
    ],
    "ttl-after-finished-controller": [
        rule(("delete", "get", "list", "watch"), BATCH, "jobs"),
        EVENT_WRITE,
    ],
    "ttl-controller": [
        rule(("list", "patch", "update", "watch"), LEGACY, "nodes"),
        EVENT_WRITE,
    ],
    "validatingadmissionpolicy-status-controller": [
        rule(READ, "admissionregistration.k8s.io", "validatingadmissionpolicies"),
        rule(
            ("get", "patch", "update"),
            "admissionregistration.k8s.io",
            "validatingadmissionpolicies/status",
        ),
        EVENT_WRITE,
    ],
}

# --- namespaced roles and bindings ---------------------------------------------------

_LEADER_LOCKING = [
    rule(("create", "get", "list", "update", "watch"), COORD, "leases"),
    rule(("create", "get", "list", "update", "watch"), COORD, "leasecandidates"),
]

# (namespace, name) -> rules
ROLES: dict[tuple[str, str], list[Rule]] = {
    ("kube-public", "system:controller:bootstrap-signer"): [
        rule(READ, LEGACY, "configmaps"),
        rule("update", LEGACY, "configmaps", ("cluster-info",)),
        EVENT_WRITE,
    ],
    ("kube-system", "extension-apiserver-authentication-reader"): [
        rule(READ, LEGACY, "configmaps", ("extension-apiserver-authentication",)),
    ],
    ("kube-system", "system::leader-locking-kube-controller-manager"): _LEADER_LOCKING,
    ("kube-system", "system::leader-locking-kube-scheduler"): _LEADER_LOCKING,
    ("kube-system", "system:controller:bootstrap-signer"): [rule(READ, LEGACY, "secrets")],
    ("kube-system", "system:controller:cloud-provider"): [
        rule(("create", "get", "list", "watch"), LEGACY, "configmaps"),
    ],
    ("kube-system", "system:controller:token-cleaner"): [
        rule(("delete", "get", "list", "watch"), LEGACY, "secrets"),
        EVENT_WRITE,
    ],
}

# (namespace, name, role, subjects)
ROLE_BINDINGS: list[tuple[str, str, str, list[tuple[str, ...]]]] = [
    (
        "kube-public",
        "system:controller:bootstrap-signer",
        "system:controller:bootstrap-signer",
        [("ServiceAccount", "bootstrap-signer", "kube-system")],
    ),
    (
        "kube-system",
        "system::extension-apiserver-authentication-reader",
        "extension-apiserver-authentication-reader",
        [("User", "system:kube-controller-manager"), ("User", "system:kube-scheduler")],
    ),
    (
        "kube-system",
        "system::leader-locking-kube-controller-manager",
        "system::leader-locking-kube-controller-manager",
        [
            ("User", "system:kube-controller-manager"),
            ("ServiceAccount", "kube-controller-manager", "kube-system"),
            ("ServiceAccount", "leader-election-controller", "kube-system"),
        ],
    ),
    (
        "kube-system",
        "system::leader-locking-kube-scheduler",
        "system::leader-locking-kube-scheduler",
        [("User", "system:kube-scheduler"), ("ServiceAccount", "kube-scheduler", "kube-system")],
    ),
    (
        "kube-system",
        "system:controller:bootstrap-signer",
        "system:controller:bootstrap-signer",
        [("ServiceAccount", "bootstrap-signer", "kube-system")],
    ),
    (
        "kube-system",
        "system:controller:cloud-provider",
        "system:controller:cloud-provider",
        [("ServiceAccount", "cloud-provider", "kube-system")],
    ),
    (
        "kube-system",
        "system:controller:token-cleaner",
        "system:controller:token-cleaner",
        [("ServiceAccount", "token-cleaner", "kube-system")],
    ),
]
