"""Pods' DNS settings as the kubelet makes them: resolv.conf, hostname and FQDN.

:class:`Configurer` is upstream's ``pkg/kubelet/network/dns`` Configurer:

- ``dnsPolicy`` picks the base: ``ClusterFirst`` (and ``ClusterFirstWithHostNet``)
  → the cluster DNS servers, search ``<ns>.svc.<domain> svc.<domain> <domain>``
  followed by the node's own search domains, ``options ndots:5``; a
  ``ClusterFirst`` pod on the host network and ``Default`` → the node's
  resolv.conf (its nameservers, search and options); ``None`` → nothing.
  Without a cluster DNS address, ClusterFirst falls back to Default with a
  ``MissingClusterDNS`` warning, as upstream.
- ``dnsConfig`` is then appended: nameservers and searches without duplicates,
  options merged by name (the pod's value wins).
- Limits as the API allows them: at most 3 nameservers, 32 search domains of at
  most 253 characters and 2048 characters in all; what is cut is reported in a
  ``DNSConfigForming`` warning event worded as upstream's.

:meth:`Configurer.hostname_and_domain` gives the pod's hostname (``spec.hostname``
or its name, cut to 63 characters) and, with ``spec.subdomain``, its domain
``<subdomain>.<ns>.svc.<cluster domain>`` for ``/etc/hosts``; with
``setHostnameAsFQDN`` the kernel hostname becomes the FQDN, which must fit in
64 characters.

The node's resolv.conf is read afresh for each pod sandbox, as the kubelet
does, so a change on the host reaches new pods without a restart.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pilothouse.client import events
from pilothouse.dns import resolvconf
from pilothouse.node.runtime import protocol

log = logging.getLogger(__name__)

Obj = dict[str, Any]

CLUSTER_DNS = "10.43.0.10"
CLUSTER_DOMAIN = "cluster.local"
DEFAULT_OPTIONS = ("ndots:5",)
MAX_NAMESERVERS = 3
MAX_SEARCH_PATHS = 32
MAX_SEARCH_LIST_CHARS = 2048
MAX_SEARCH_PATH_CHARS = 253  # a DNS-1123 subdomain
MAX_FQDN_HOSTNAME = 64  # the kernel's nodename field
MAX_HOSTNAME = 63


class DNSConfigError(Exception):
    """The pod's sandbox cannot be configured (message worded as the kubelet's)."""


@dataclass(frozen=True)
class Settings:
    """The kubelet's ``--cluster-dns``, ``--cluster-domain`` and ``--resolv-conf``; whether
    this node serves cluster DNS itself (``serve``; see :mod:`pilothouse.dns`) and the
    resolv.conf whose nameservers it forwards to (``upstreams``)."""

    cluster_dns: tuple[str, ...] = (CLUSTER_DNS,)
    cluster_domain: str = CLUSTER_DOMAIN
    resolv_conf: Path | None = field(default_factory=resolvconf.host_resolv_conf)
    serve: bool = False
    upstreams: Path = resolvconf.HOST_RESOLV_CONF


_POLICY_KIND = {
    "ClusterFirst": "cluster",
    "ClusterFirstWithHostNet": "cluster",
    "Default": "host",
    "None": "none",
}


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def pod_ref(pod: Obj) -> str:
    md = pod.get("metadata") or {}
    return f"{md.get('name', '')}_{md.get('namespace', '')}({md.get('uid', '')})"


class Configurer:
    """Pods' DNS configuration on one node; see the module docstring."""

    def __init__(
        self, settings: Settings, *, recorder: events.EventRecorder, node_name: str
    ) -> None:
        self.settings = settings
        self.recorder = recorder
        # The kubelet's own node reference uses the node name as its uid.
        self.node_ref: Obj = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": node_name, "uid": node_name},
        }

    # --- resolv.conf -----------------------------------------------------------------
    def _host(self) -> resolvconf.ResolvConf:
        path = self.settings.resolv_conf
        if path is None:
            return resolvconf.ResolvConf()
        try:
            return resolvconf.read(path)
        except OSError as exc:
            raise DNSConfigError(f"open {path}: {exc.strerror or exc}") from exc

    def pod_dns(self, pod: Obj) -> protocol.DNSConfig:
        """The DNS configuration of ``pod``'s sandbox (its resolv.conf)."""
        spec = pod.get("spec") or {}
        host = self._host()
        policy = spec.get("dnsPolicy") or "ClusterFirst"
        kind = _POLICY_KIND.get(policy)
        if kind is None:
            log.error("invalid DNSPolicy=%s for pod %s; using ClusterFirst", policy, pod_ref(pod))
            kind = "cluster"
        elif kind == "cluster" and policy == "ClusterFirst" and spec.get("hostNetwork"):
            kind = "host"  # ClusterFirst on the host network means Default
        servers: list[str] = list(host.nameservers)
        searches: list[str] = list(host.searches)
        options: list[str] = list(host.options)
        if kind == "cluster" and not self.settings.cluster_dns:
            message = (
                "kubelet does not have ClusterDNS IP configured and cannot create Pod using "
                '"ClusterFirst" policy. Falling back to "Default" policy.'
            )
            self.recorder.event(self.node_ref, events.WARNING, "MissingClusterDNS", message)
            self.recorder.event(
                pod, events.WARNING, "MissingClusterDNS", f'pod: "{pod_ref(pod)}". {message}'
            )
            kind = "host"
        if kind == "none":
            servers, searches, options = [], [], []
        elif kind == "cluster":
            servers = list(self.settings.cluster_dns)
            searches = self._cluster_searches(searches, pod)
            options = list(DEFAULT_OPTIONS)
        elif self.settings.resolv_conf is None:
            # --resolv-conf="": lookups go to the node's own resolver, by the book.
            servers, searches = ["127.0.0.1"], ["."]
        config = spec.get("dnsConfig")
        if isinstance(config, dict):
            servers = _unique(servers + [str(s) for s in config.get("nameservers") or []])
            searches = _unique(searches + [str(s) for s in config.get("searches") or []])
            options = resolvconf.merge_options(
                options,
                [
                    f"{o.get('name')}:{o['value']}" if o.get("value") else str(o.get("name"))
                    for o in config.get("options") or []
                    if isinstance(o, dict)
                ],
            )
        return protocol.DNSConfig(
            tuple(self._fit_nameservers(servers, pod)),
            tuple(self._fit_searches(searches, pod)),
            tuple(options),
        )

    def _cluster_searches(self, host_searches: list[str], pod: Obj) -> list[str]:
        domain = self.settings.cluster_domain
        if not domain:
            return host_searches
        ns = (pod.get("metadata") or {}).get("namespace", "")
        return _unique([f"{ns}.svc.{domain}", f"svc.{domain}", domain, *host_searches])

    def _fit_nameservers(self, servers: list[str], pod: Obj) -> list[str]:
        if len(servers) <= MAX_NAMESERVERS:
            return servers
        servers = servers[:MAX_NAMESERVERS]
        self._forming(
            pod,
            "Nameserver limits were exceeded, some nameservers have been omitted, the applied "
            f"nameserver line is: {' '.join(servers)}",
        )
        return servers

    def _fit_searches(self, searches: list[str], pod: Obj) -> list[str]:
        exceeded = False
        if len(searches) > MAX_SEARCH_PATHS:
            searches, exceeded = searches[:MAX_SEARCH_PATHS], True
        kept = [s for s in searches if len(s) <= MAX_SEARCH_PATH_CHARS]
        exceeded = exceeded or len(kept) != len(searches)
        searches = kept
        length = len(" ".join(searches))
        if length > MAX_SEARCH_LIST_CHARS:
            cut = 0
            while searches and length - cut > MAX_SEARCH_LIST_CHARS:
                cut += len(searches.pop()) + 1
            exceeded = True
        if exceeded:
            self._forming(
                pod,
                "Search Line limits were exceeded, some search paths have been omitted, the "
                f"applied search line is: {' '.join(searches)}",
            )
        return searches

    def _forming(self, pod: Obj, message: str) -> None:
        log.error("%s (pod %s)", message, pod_ref(pod))
        self.recorder.event(pod, events.WARNING, "DNSConfigForming", message)

    def check_limits(self) -> None:
        """Warn (on the Node) when the node's resolv.conf cannot fit into pods' (the
        kubelet's ``CheckLimitsForResolvConf``)."""
        path = self.settings.resolv_conf
        if path is None:
            return
        try:
            searches = resolvconf.read(path).searches
        except OSError as exc:
            self._node_warning(f"open {path}: {exc.strerror or exc}")
            return
        limit = MAX_SEARCH_PATHS - (3 if self.settings.cluster_domain else 0)
        if len(searches) > limit:
            self._node_warning(
                f"Resolv.conf file '{path}' contains search line consisting of more than "
                f"{limit} domains!"
            )
        elif any(len(s) > MAX_SEARCH_PATH_CHARS for s in searches):
            self._node_warning(
                f'Resolv.conf file "{path}" contains a search path which length is more than '
                f"allowed {MAX_SEARCH_PATH_CHARS} chars!"
            )
        elif len(" ".join(searches)) > MAX_SEARCH_LIST_CHARS:
            self._node_warning(
                f"Resolv.conf file '{path}' contains search line which length is more than "
                f"allowed {MAX_SEARCH_LIST_CHARS} chars!"
            )

    def _node_warning(self, message: str) -> None:
        log.warning("%s", message)
        self.recorder.event(self.node_ref, events.WARNING, "CheckLimitsForResolvConf", message)

    # --- hostname --------------------------------------------------------------------
    def hostname_and_domain(self, pod: Obj) -> tuple[str, str]:
        """The pod's hostname and, with ``spec.subdomain``, its DNS domain."""
        md = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        hostname = str(spec.get("hostname") or md.get("name") or "")
        if len(hostname) > MAX_HOSTNAME:
            hostname = hostname[:MAX_HOSTNAME].rstrip("-.") or hostname[:MAX_HOSTNAME]
        domain = ""
        if spec.get("subdomain"):
            ns = md.get("namespace", "")
            domain = f"{spec['subdomain']}.{ns}.svc.{self.settings.cluster_domain}"
        return hostname, domain

    def kernel_hostname(self, pod: Obj, hostname: str, domain: str) -> str:
        """What ``uname -n`` says in the pod: the FQDN with ``setHostnameAsFQDN``."""
        if not (domain and (pod.get("spec") or {}).get("setHostnameAsFQDN")):
            return hostname
        fqdn = f"{hostname}.{domain}"
        if len(fqdn) > MAX_FQDN_HOSTNAME:
            raise DNSConfigError(
                "failed to construct FQDN from pod hostname and cluster domain, FQDN "
                f"{fqdn} is too long ({MAX_FQDN_HOSTNAME} characters is the max, "
                f"{len(fqdn)} characters requested)"
            )
        return fqdn
