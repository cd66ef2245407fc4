"""The API's resources: which kinds exist, where they live and what they allow.

One :class:`Resource` per REST resource, as upstream's discovery documents
describe them (``kubectl api-resources``). Everything that needs to know about
kinds in general (routing, discovery, OpenAPI, the store's keys, the clients)
reads this table; nothing registers itself by import side effect.

No I/O here: this module is part of the bottom ``api`` layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")

# Verbs of subresources, as upstream's discovery lists them.
SUBRESOURCE_VERBS: dict[str, tuple[str, ...]] = {
    "status": ("get", "patch", "update"),
    "scale": ("get", "patch", "update"),
    "binding": ("create",),
    "eviction": ("create",),
    "log": ("get",),
    "exec": ("create", "get"),
    "attach": ("create", "get"),
    "portforward": ("create", "get"),
    "proxy": ("create", "delete", "get", "patch", "update"),
    "finalize": ("update",),
    "token": ("create",),
    "ephemeralcontainers": ("get", "patch", "update"),
    "approval": ("get", "patch", "update"),
}

# The kind a subresource speaks, when it is not the parent's own kind.
SUBRESOURCE_KINDS: dict[str, tuple[str, str, str]] = {
    # subresource: (group, version, kind)
    "scale": ("autoscaling", "v1", "Scale"),
    "binding": ("", "v1", "Binding"),
    "eviction": ("policy", "v1", "Eviction"),
    "log": ("", "v1", "Pod"),
    "exec": ("", "v1", "PodExecOptions"),
    "attach": ("", "v1", "PodAttachOptions"),
    "portforward": ("", "v1", "PodPortForwardOptions"),
    "token": ("authentication.k8s.io", "v1", "TokenRequest"),
}


@dataclass(frozen=True, slots=True)
class Resource:
    """A REST resource: ``deployments`` in ``apps/v1``, namespaced, with ``scale``…"""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    subresources: tuple[str, ...] = ()
    # Where objects are kept: resources that are versions of one another
    # (core and events.k8s.io Events) share a storage resource.
    storage_group: str | None = None
    storage_plural: str | None = None
    singular: str = field(default="")
    # False: no objects are kept (no store, no watch cache); a handler of its own
    # computes the answer on request, as an aggregated API server would
    # (metrics.k8s.io).
    stored: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    @property
    def singular_name(self) -> str:
        return self.singular or self.kind.lower()

    @property
    def qualified(self) -> str:
        """``deployments.apps``: how errors and ``kubectl`` name the resource."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def schema_name(self) -> str:
        """The name of the kind's schema, e.g. ``io.k8s.api.apps.v1.Deployment``."""
        return schema_name(self.group, self.version, self.kind)

    @property
    def storage_prefix(self) -> str:
        """Store key prefix for all objects of this resource (ends with ``/``)."""
        group = self.storage_group if self.storage_group is not None else self.group
        plural = self.storage_plural or self.plural
        if group:
            return f"/registry/{group}/{plural}/"
        return f"/registry/{plural}/"

    def key(self, namespace: str, name: str) -> str:
        """The store key of one object."""
        if self.namespaced:
            return f"{self.storage_prefix}{namespace}/{name}"
        return f"{self.storage_prefix}{name}"

    def prefix(self, namespace: str = "") -> str:
        """The store prefix of a namespace's objects (or all of them)."""
        if self.namespaced and namespace:
            return f"{self.storage_prefix}{namespace}/"
        return self.storage_prefix

    def has(self, subresource: str) -> bool:
        return subresource in self.subresources


def schema_name(group: str, version: str, kind: str) -> str:
    """The OpenAPI definition name upstream gives a kind."""
    if group == "":
        package = "io.k8s.api.core"
    elif group == "apiextensions.k8s.io":
        package = "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions"
    elif group in ("meta.k8s.io",):
        package = "io.k8s.apimachinery.pkg.apis.meta"
    elif group == "metrics.k8s.io":
        package = "io.k8s.metrics.pkg.apis.metrics"
    elif group == "apiregistration.k8s.io":
        package = "io.k8s.kube-aggregator.pkg.apis.apiregistration"
    else:
        short = group.removesuffix(".k8s.io").replace(".", "")
        if group == "events.k8s.io":
            short = "events"
        package = f"io.k8s.api.{short}"
    return f"{package}.{version}.{kind}"


def _r(
    group: str,
    version: str,
    kind: str,
    plural: str,
    namespaced: bool = True,
    short: tuple[str, ...] = (),
    categories: tuple[str, ...] = (),
    verbs: tuple[str, ...] = ALL_VERBS,
    sub: tuple[str, ...] = (),
    stored: bool = True,
    **kw: str,
) -> Resource:
    return Resource(
        group=group,
        version=version,
        kind=kind,
        plural=plural,
        namespaced=namespaced,
        short_names=short,
        categories=categories,
        verbs=verbs,
        subresources=sub,
        stored=stored,
        **kw,
    )


_NS_VERBS = ("create", "delete", "get", "list", "patch", "update", "watch")

RESOURCES: tuple[Resource, ...] = (
    # core/v1
    _r(
        "",
        "v1",
        "Namespace",
        "namespaces",
        False,
        ("ns",),
        verbs=_NS_VERBS,
        sub=("finalize", "status"),
    ),
    _r("", "v1", "Node", "nodes", False, ("no",), sub=("proxy", "status")),
    _r(
        "",
        "v1",
        "Pod",
        "pods",
        True,
        ("po",),
        ("all",),
        sub=(
            "attach",
            "binding",
            "ephemeralcontainers",
            "eviction",
            "exec",
            "log",
            "portforward",
            "proxy",
            "status",
        ),
    ),
    _r(
        "",
        "v1",
        "ReplicationController",
        "replicationcontrollers",
        True,
        ("rc",),
        ("all",),
        sub=("scale", "status"),
    ),
    _r(
        "",
        "v1",
        "Service",
        "services",
        True,
        ("svc",),
        ("all",),
        verbs=("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"),
        sub=("proxy", "status"),
    ),
    _r("", "v1", "Endpoints", "endpoints", True, ("ep",), singular="endpoints"),
    _r("", "v1", "ConfigMap", "configmaps", True, ("cm",)),
    _r("", "v1", "Secret", "secrets", True),
    _r("", "v1", "ServiceAccount", "serviceaccounts", True, ("sa",), sub=("token",)),
    _r("", "v1", "Event", "events", True, ("ev",)),
    _r("", "v1", "PersistentVolume", "persistentvolumes", False, ("pv",), sub=("status",)),
    _r(
        "", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", True, ("pvc",), sub=("status",)
    ),
    _r("", "v1", "Binding", "bindings", True, verbs=("create",)),
    _r("", "v1", "ResourceQuota", "resourcequotas", True, ("quota",), sub=("status",)),
    _r("", "v1", "LimitRange", "limitranges", True, ("limits",)),
    # apps/v1
    _r(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        True,
        ("deploy",),
        ("all",),
        sub=("scale", "status"),
    ),
    _r("apps", "v1", "ReplicaSet", "replicasets", True, ("rs",), ("all",), sub=("scale", "status")),
    _r(
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        True,
        ("sts",),
        ("all",),
        sub=("scale", "status"),
    ),
    _r("apps", "v1", "DaemonSet", "daemonsets", True, ("ds",), ("all",), sub=("status",)),
    _r("apps", "v1", "ControllerRevision", "controllerrevisions", True),
    # autoscaling: v2 is stored; v1 is a view of the same objects (conversion)
    _r(
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        True,
        ("hpa",),
        ("all",),
        sub=("status",),
    ),
    _r(
        "autoscaling",
        "v1",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        True,
        ("hpa",),
        ("all",),
        sub=("status",),
    ),
    # authentication.k8s.io/v1 and authorization.k8s.io/v1: reviews are answered, never
    # stored (identity: apiserver/authn, apiserver/authz)
    _r(
        "authentication.k8s.io",
        "v1",
        "SelfSubjectReview",
        "selfsubjectreviews",
        False,
        verbs=("create",),
        stored=False,
    ),
    _r(
        "authentication.k8s.io",
        "v1",
        "TokenReview",
        "tokenreviews",
        False,
        verbs=("create",),
        stored=False,
    ),
    _r(
        "authorization.k8s.io",
        "v1",
        "LocalSubjectAccessReview",
        "localsubjectaccessreviews",
        True,
        verbs=("create",),
        stored=False,
    ),
    _r(
        "authorization.k8s.io",
        "v1",
        "SelfSubjectAccessReview",
        "selfsubjectaccessreviews",
        False,
        verbs=("create",),
        stored=False,
    ),
    _r(
        "authorization.k8s.io",
        "v1",
        "SelfSubjectRulesReview",
        "selfsubjectrulesreviews",
        False,
        verbs=("create",),
        stored=False,
    ),
    _r(
        "authorization.k8s.io",
        "v1",
        "SubjectAccessReview",
        "subjectaccessreviews",
        False,
        verbs=("create",),
        stored=False,
    ),
    # batch/v1
    _r("batch", "v1", "Job", "jobs", True, (), ("all",), sub=("status",)),
    _r("batch", "v1", "CronJob", "cronjobs", True, ("cj",), ("all",), sub=("status",)),
    # certificates.k8s.io/v1
    _r(
        "certificates.k8s.io",
        "v1",
        "CertificateSigningRequest",
        "certificatesigningrequests",
        False,
        ("csr",),
        sub=("approval", "status"),
    ),
    # coordination.k8s.io/v1
    _r("coordination.k8s.io", "v1", "Lease", "leases", True),
    # discovery.k8s.io/v1
    _r("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", True),
    # rbac.authorization.k8s.io/v1
    _r("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", False),
    _r("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False),
    _r("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", True),
    _r("rbac.authorization.k8s.io", "v1", "Role", "roles", True),
    # storage.k8s.io/v1
    _r("storage.k8s.io", "v1", "StorageClass", "storageclasses", False, ("sc",)),
    # events.k8s.io/v1: the same objects as core/v1 Events, in another shape
    _r("events.k8s.io", "v1", "Event", "events", True, ("ev",), storage_group=""),
    # scheduling.k8s.io/v1
    _r("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", False, ("pc",)),
    # policy/v1
    _r(
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        True,
        ("pdb",),
        sub=("status",),
    ),
    # apiextensions.k8s.io/v1: CustomResourceDefinitions (their resources join the
    # registry as Registry.custom while they are established)
    _r(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        False,
        ("crd", "crds"),
        ("api-extensions",),
        sub=("status",),
    ),
    # admissionregistration.k8s.io/v1: admission webhooks and policies (issue 16)
    _r(
        "admissionregistration.k8s.io",
        "v1",
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
        False,
        categories=("api-extensions",),
    ),
    _r(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingAdmissionPolicy",
        "validatingadmissionpolicies",
        False,
        categories=("api-extensions",),
        sub=("status",),
    ),
    _r(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingAdmissionPolicyBinding",
        "validatingadmissionpolicybindings",
        False,
        categories=("api-extensions",),
    ),
    _r(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
        False,
        categories=("api-extensions",),
    ),
    # apiregistration.k8s.io/v1: APIServices, local or proxied to an extension server
    _r(
        "apiregistration.k8s.io",
        "v1",
        "APIService",
        "apiservices",
        False,
        categories=("api-extensions",),
        sub=("status",),
    ),
    # metrics.k8s.io/v1beta1: resource usage read from the node agents on request
    # (what metrics-server serves upstream); ``kubectl top`` reads it.
    _r(
        "metrics.k8s.io",
        "v1beta1",
        "NodeMetrics",
        "nodes",
        False,
        verbs=("get", "list"),
        stored=False,
    ),
    _r(
        "metrics.k8s.io", "v1beta1", "PodMetrics", "pods", True, verbs=("get", "list"), stored=False
    ),
)

# Group versions in the order discovery lists them (upstream puts core first and
# apps early; kubectl resolves short names in discovery order).
GROUP_VERSIONS: tuple[tuple[str, str], ...] = tuple(
    dict.fromkeys((r.group, r.version) for r in RESOURCES)
)


class Registry:
    """Look-ups over a set of resources (by path, by kind, by any name kubectl accepts).

    The built-in resources are fixed; the resources of CustomResourceDefinitions
    come and go (:meth:`set_custom`). Every change bumps :attr:`generation`, which
    discovery and OpenAPI compare to rebuild their documents. One API server owns
    one registry (:meth:`copy` of :data:`DEFAULT`): custom resources never leak
    between servers in one process.
    """

    def __init__(self, resources: tuple[Resource, ...] = RESOURCES) -> None:
        self.builtin = resources
        self.custom: tuple[Resource, ...] = ()
        self.generation = 0
        self._index()

    def copy(self) -> Registry:
        """A registry of the same built-in resources and no custom ones."""
        return Registry(self.builtin)

    def set_custom(self, custom: tuple[Resource, ...]) -> None:
        """Replace the custom resources (CRDs) served beside the built-in ones."""
        if custom == self.custom:
            return
        self.custom = custom
        self.generation += 1
        self._index()

    def _index(self) -> None:
        self.resources = self.builtin + self.custom
        self._by_path: dict[tuple[str, str, str], Resource] = {}
        self._by_kind: dict[tuple[str, str, str], Resource] = {}
        for r in self.resources:
            self._by_path.setdefault((r.group, r.version, r.plural), r)
            self._by_kind.setdefault((r.group, r.version, r.kind), r)
        self.group_versions = tuple(dict.fromkeys((r.group, r.version) for r in self.resources))

    def is_custom(self, resource: Resource) -> bool:
        return resource in self.custom

    def by_path(self, group: str, version: str, plural: str) -> Resource | None:
        return self._by_path.get((group, version, plural))

    def by_kind(self, group: str, version: str, kind: str) -> Resource | None:
        return self._by_kind.get((group, version, kind))

    def by_api_version(self, api_version: str, kind: str) -> Resource | None:
        group, _, version = api_version.rpartition("/")
        return self.by_kind(group, version, kind)

    def in_group_version(self, group: str, version: str) -> list[Resource]:
        return [r for r in self.resources if r.group == group and r.version == version]

    def groups(self) -> dict[str, list[str]]:
        """Named groups (not core) and their versions, in discovery order."""
        out: dict[str, list[str]] = {}
        for group, version in self.group_versions:
            if group:
                out.setdefault(group, [])
                if version not in out[group]:
                    out[group].append(version)
        return out

    def storage_siblings(self, resource: Resource) -> list[Resource]:
        """Resources sharing the storage of ``resource`` (including itself)."""
        return [r for r in self.resources if r.storage_prefix == resource.storage_prefix]


DEFAULT = Registry()
