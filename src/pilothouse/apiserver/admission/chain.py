"""The admission plugins in upstream's order, and the two phases that run them.

``ORDER`` is kube-apiserver 1.32's ``AllOrderedPlugins``: whatever is enabled
runs in this order, whatever order the flags name them in. ``DEFAULT_ON`` are
the plugins kube-apiserver enables without flags. Plugins another part of the
server provides (RBAC-aware ones, storage, webhooks) are registered into the
same table by name; a name upstream knows that this server cannot run is
refused when it is asked for, rather than silently skipped.

The chain asks each plugin once per resource, subresource and operation whether
it cares (:meth:`Plugin.handles`) and remembers the answer, so a write pays only
for the plugins that concern it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pilothouse.api import resources
from pilothouse.apiserver.admission import config as admission_config
from pilothouse.apiserver.admission.interface import Attributes, Plugin

if TYPE_CHECKING:
    from pilothouse.apiserver import watchcache
    from pilothouse.apiserver.authz.authorizer import Authorizer
    from pilothouse.apiserver.registry.store import ResourceStore

ORDER: tuple[str, ...] = (
    "AlwaysAdmit",
    "NamespaceAutoProvision",
    "NamespaceLifecycle",
    "NamespaceExists",
    "LimitPodHardAntiAffinityTopology",
    "LimitRanger",
    "ServiceAccount",
    "NodeRestriction",
    "TaintNodesByCondition",
    "AlwaysPullImages",
    "ImagePolicyWebhook",
    "PodSecurity",
    "PodNodeSelector",
    "Priority",
    "DefaultTolerationSeconds",
    "PodTolerationRestriction",
    "EventRateLimit",
    "ExtendedResourceToleration",
    "DefaultStorageClass",
    "StorageObjectInUseProtection",
    "OwnerReferencesPermissionEnforcement",
    "PersistentVolumeClaimResize",
    "RuntimeClass",
    "CertificateApproval",
    "CertificateSigning",
    "ClusterTrustBundleAttest",
    "CertificateSubjectRestriction",
    "DefaultIngressClass",
    "DenyServiceExternalIPs",
    "MutatingAdmissionPolicy",
    "MutatingAdmissionWebhook",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionWebhook",
    "ResourceQuota",
    "AlwaysDeny",
)

DEFAULT_ON = frozenset(
    {
        "NamespaceLifecycle",
        "LimitRanger",
        "ServiceAccount",
        "TaintNodesByCondition",
        "PodSecurity",
        "Priority",
        "DefaultTolerationSeconds",
        "DefaultStorageClass",
        "StorageObjectInUseProtection",
        "PersistentVolumeClaimResize",
        "RuntimeClass",
        "CertificateApproval",
        "CertificateSigning",
        "ClusterTrustBundleAttest",
        "CertificateSubjectRestriction",
        "DefaultIngressClass",
        "MutatingAdmissionWebhook",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionWebhook",
        "ResourceQuota",
    }
)


# On in pilothouse as in k3s, which passes --enable-admission-plugins=NodeRestriction
# (the node agents' writes are limited to their own node); --disable-admission-plugins
# turns it off.
PILOTHOUSE_DEFAULT_ON = DEFAULT_ON | {"NodeRestriction"}


class ChainError(ValueError):
    """The plugin flags cannot be used; the message is upstream's where it has one."""


@dataclass
class Deps:
    """What plugins are built with: the resources, the watch cache every plugin reads,
    the stores (looked up when first needed: they are made after the chain), the
    AdmissionConfiguration, and the authorizer (the certificate plugins ask it)."""

    registry: resources.Registry
    cache: watchcache.WatchCache
    store_for: Callable[[str, str], ResourceStore]
    config: admission_config.AdmissionConfig = field(
        default_factory=admission_config.AdmissionConfig
    )
    authorizer: Authorizer | None = None


Factory = Callable[[Deps], Plugin]


def plugin_names(
    enable: Iterable[str] = (),
    disable: Iterable[str] = (),
    *,
    available: Iterable[str],
) -> list[str]:
    """The plugins to run, in upstream's order; errors as kube-apiserver words them."""
    enable, disable = list(enable), list(disable)
    known = set(ORDER)
    problems = [
        f'enable-admission-plugins plugin "{n}" is unknown' for n in enable if n not in known
    ]
    problems += [
        f'disable-admission-plugins plugin "{n}" is unknown' for n in disable if n not in known
    ]
    overlap = sorted(set(enable) & set(disable))
    if overlap:
        problems.append(
            f"[{' '.join(overlap)}] in enable-admission-plugins and disable-admission-plugins "
            "overlapped"
        )
    if problems:
        raise ChainError("; ".join(problems))
    have = set(available)
    missing = [n for n in enable if n not in have]
    if missing:
        raise ChainError(
            f"admission plugins {', '.join(missing)} are not available in pilothouse; "
            f"available: {', '.join(n for n in ORDER if n in have)}"
        )
    wanted = (PILOTHOUSE_DEFAULT_ON | set(enable)) - set(disable)
    return [n for n in ORDER if n in wanted and n in have]


class Chain:
    """The enabled plugins, in order; each write runs ``admit`` then ``validate``."""

    def __init__(self, plugins: Sequence[Plugin]) -> None:
        self.plugins = list(plugins)
        self._routes: dict[tuple[str, str, str, str], tuple[list[Plugin], list[Plugin]]] = {}

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.plugins]

    def _route(self, a: Attributes) -> tuple[list[Plugin], list[Plugin]]:
        key = (a.resource.group, a.resource.plural, a.subresource, a.operation)
        route = self._routes.get(key)
        if route is None:
            interested = [
                p for p in self.plugins if p.handles(a.resource, a.subresource, a.operation)
            ]
            route = (
                [p for p in interested if p.mutating],
                [p for p in interested if p.validating],
            )
            self._routes[key] = route
        return route

    async def admit(self, a: Attributes) -> None:
        for plugin in self._route(a)[0]:
            await plugin.admit(a)

    async def validate(self, a: Attributes) -> None:
        for plugin in self._route(a)[1]:
            await plugin.validate(a)

    def wants(self, a: Attributes) -> bool:
        mutating, validating = self._route(a)
        return bool(mutating or validating)

    async def start(self) -> None:
        for plugin in self.plugins:
            await plugin.start()

    async def stop(self) -> None:
        for plugin in reversed(self.plugins):
            await plugin.stop()


def build(
    deps: Deps,
    factories: dict[str, Factory],
    *,
    enable: Iterable[str] = (),
    disable: Iterable[str] = (),
) -> Chain:
    names = plugin_names(enable, disable, available=factories)
    return Chain([factories[n](deps) for n in names])
