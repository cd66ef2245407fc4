"""The Node authorizer: what a node agent (``system:node:<name>`` in ``system:nodes``)
may read and write (upstream's ``plugin/pkg/auth/authorizer/node``).

A node may read a Secret, ConfigMap, PersistentVolumeClaim or PersistentVolume
only when a pod bound to it refers to it (env, envFrom, volumes, projected
sources, image pull secrets; a claim's volume through the claim), may ask for a
ServiceAccount token only for an account one of its pods runs as, and may touch
only its own Lease in ``kube-node-lease``. Everything else a node may do is
upstream's ``system:node`` rule set. Anything else gets "no opinion" — with the
reason upstream gives — so RBAC may still allow it.

Upstream keeps a graph of pods, nodes and what they refer to; here the pods of the
object's namespace are looked at in the watch cache when a node asks, which is
cheap for the handful of objects a node reads when it starts a pod.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from pilothouse.api import rbac
from pilothouse.apiserver.authz import attributes as attrs_module
from pilothouse.apiserver.authz import policy_data

PodsInNamespace = Callable[[str], Iterable[dict[str, Any]]]
Getter = Callable[[str, str, str], "dict[str, Any] | None"]

_GRAPH_RESOURCES = frozenset(
    {"secrets", "configmaps", "persistentvolumeclaims", "persistentvolumes"}
)
_READ_VERBS = frozenset({"get", "list", "watch"})


def _referenced(pod: dict[str, Any]) -> dict[str, set[str]]:
    """What a pod refers to, by resource."""
    spec = pod.get("spec") or {}
    refs: dict[str, set[str]] = {"secrets": set(), "configmaps": set(), "claims": set()}
    for ref in spec.get("imagePullSecrets") or []:
        refs["secrets"].add(str((ref or {}).get("name") or ""))
    containers = [
        *(spec.get("initContainers") or []),
        *(spec.get("containers") or []),
        *(spec.get("ephemeralContainers") or []),
    ]
    for c in containers:
        for source in c.get("envFrom") or []:
            if "secretRef" in source:
                refs["secrets"].add(str(source["secretRef"].get("name") or ""))
            if "configMapRef" in source:
                refs["configmaps"].add(str(source["configMapRef"].get("name") or ""))
        for var in c.get("env") or []:
            value_from = var.get("valueFrom") or {}
            if "secretKeyRef" in value_from:
                refs["secrets"].add(str(value_from["secretKeyRef"].get("name") or ""))
            if "configMapKeyRef" in value_from:
                refs["configmaps"].add(str(value_from["configMapKeyRef"].get("name") or ""))
    for vol in spec.get("volumes") or []:
        if "secret" in vol:
            refs["secrets"].add(str(vol["secret"].get("secretName") or ""))
        if "configMap" in vol:
            refs["configmaps"].add(str(vol["configMap"].get("name") or ""))
        if "persistentVolumeClaim" in vol:
            refs["claims"].add(str(vol["persistentVolumeClaim"].get("claimName") or ""))
        if "ephemeral" in vol:
            refs["claims"].add(f"{pod['metadata'].get('name')}-{vol.get('name')}")
        for source in (vol.get("projected") or {}).get("sources") or []:
            if "secret" in source:
                refs["secrets"].add(str(source["secret"].get("name") or ""))
            if "configMap" in source:
                refs["configmaps"].add(str(source["configMap"].get("name") or ""))
        for kind in (
            "azureFile",
            "cephfs",
            "cinder",
            "flexVolume",
            "iscsi",
            "rbd",
            "scaleIO",
            "storageos",
            "csi",
        ):
            ref = (vol.get(kind) or {}).get("secretRef") or (vol.get(kind) or {}).get(
                "nodePublishSecretRef"
            )
            if isinstance(ref, dict) and ref.get("name"):
                refs["secrets"].add(str(ref["name"]))
    return refs


class NodeAuthorizer:
    def __init__(
        self,
        *,
        pods_in: PodsInNamespace,
        all_pods: Callable[[], Iterable[dict[str, Any]]],
        get: Getter,
    ) -> None:
        self.pods_in = pods_in
        self.all_pods = all_pods
        self.get = get
        self.rules = tuple(rbac.compile_rule(r) for r in policy_data.NODE_RULES)

    def authorize(self, a: attrs_module.Attributes) -> tuple[bool, str]:
        node = rbac.node_name(a.user.name, a.user.groups)
        if node is None:
            return False, ""
        if not a.resource_request:
            return self._rules(a, node)
        if a.api_group == "":
            if a.resource in _GRAPH_RESOURCES and not a.subresource:
                return self._graph(a, node)
            if a.resource == "serviceaccounts" and a.subresource == "token":
                return self._token(a, node)
        if a.api_group == "coordination.k8s.io" and a.resource == "leases":
            return self._lease(a, node)
        return self._rules(a, node)

    def _rules(self, a: attrs_module.Attributes, node: str) -> tuple[bool, str]:
        for rule in self.rules:
            if a.resource_request:
                ok = rbac.allows_resource(
                    rule,
                    verb=a.verb,
                    group=a.api_group,
                    resource=a.resource,
                    subresource=a.subresource,
                    name=a.name,
                )
            else:
                ok = rbac.allows_url(rule, verb=a.verb, path=a.path)
            if ok:
                return True, ""
        return False, ""

    def _graph(self, a: attrs_module.Attributes, node: str) -> tuple[bool, str]:
        if a.verb not in _READ_VERBS:
            return False, "can only read resources of this type"
        if not a.name:
            return False, "can only read namespaced object of this type"
        if a.resource == "persistentvolumes":
            if self._pv_related(a.name, node):
                return True, ""
            return False, f"no relationship found between node '{node}' and this object"
        key = {
            "secrets": "secrets",
            "configmaps": "configmaps",
            "persistentvolumeclaims": "claims",
        }[a.resource]
        for pod in self._pods_on(node, a.namespace):
            if a.name in _referenced(pod)[key]:
                return True, ""
        return False, f"no relationship found between node '{node}' and this object"

    def _pv_related(self, pv_name: str, node: str) -> bool:
        for pod in self.all_pods():
            if (pod.get("spec") or {}).get("nodeName") != node:
                continue
            namespace = pod["metadata"].get("namespace", "")
            for claim in _referenced(pod)["claims"]:
                pvc = self.get("persistentvolumeclaims", namespace, claim)
                if pvc is not None and (pvc.get("spec") or {}).get("volumeName") == pv_name:
                    return True
        return False

    def _token(self, a: attrs_module.Attributes, node: str) -> tuple[bool, str]:
        if a.verb != "create":
            return False, "can only create tokens for individual service accounts"
        if not a.name:
            return False, "can only create tokens for individual service accounts"
        for pod in self._pods_on(node, a.namespace):
            spec = pod.get("spec") or {}
            if (spec.get("serviceAccountName") or "default") == a.name:
                return True, ""
        return False, f"no relationship found between node '{node}' and this object"

    def _lease(self, a: attrs_module.Attributes, node: str) -> tuple[bool, str]:
        if a.namespace != "kube-node-lease":
            return False, "can only access leases in the kube-node-lease namespace"
        if a.verb not in ("get", "create", "update", "patch", "delete"):
            return False, "can only get, create, update, patch, or delete a node lease"
        if a.verb != "create" and a.name != node:
            return False, "can only access node lease with the same name as the requesting node"
        return True, ""

    def _pods_on(self, node: str, namespace: str) -> Iterable[dict[str, Any]]:
        for pod in self.pods_in(namespace):
            if (pod.get("spec") or {}).get("nodeName") == node:
                yield pod
