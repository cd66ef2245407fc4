"""The cluster DNS flags ``pilothouse server`` and ``pilothouse agent`` share (the kubelet's
``--cluster-dns``, ``--cluster-domain`` and ``--resolv-conf``, and ``--disable-dns``)."""

from __future__ import annotations

import argparse
import ipaddress
from pathlib import Path

from pilothouse.dns import resolvconf
from pilothouse.node import dns as node_dns

LABEL_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-")


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "cluster DNS",
        "Every node answers its pods' DNS queries itself, on the cluster DNS address: "
        "<service>.<namespace>.svc.<domain> from the cluster, everything else forwarded to "
        "this machine's resolvers.",
    )
    g.add_argument(
        "--cluster-dns",
        default=node_dns.CLUSTER_DNS,
        metavar="IP[,IP]",
        help="the nameserver pods use, served on every node (default: %(default)s)",
    )
    g.add_argument(
        "--cluster-domain",
        default=node_dns.CLUSTER_DOMAIN,
        metavar="DOMAIN",
        help="the cluster's DNS domain (default: %(default)s)",
    )
    g.add_argument(
        "--resolv-conf",
        default=None,
        metavar="FILE",
        help="the resolv.conf pods with dnsPolicy Default inherit, and whose nameservers "
        "cluster DNS forwards to (default: /etc/resolv.conf; when it lists only loopback "
        "servers such as systemd-resolved's 127.0.0.53, pods get "
        '/run/systemd/resolve/resolv.conf instead; "" gives such pods no nameserver but '
        "the node's loopback, as the kubelet)",
    )
    g.add_argument(
        "--disable-dns",
        action="store_true",
        help="do not serve cluster DNS on this node (pods still use --cluster-dns: run a DNS "
        "server there yourself)",
    )


def settings(args: argparse.Namespace) -> node_dns.Settings:
    """The agent's DNS settings from the flags; ValueError with a message users can act on."""
    addresses = tuple(a.strip() for a in str(args.cluster_dns).split(",") if a.strip())
    for a in addresses:
        try:
            ipaddress.ip_address(a)
        except ValueError:
            raise ValueError(
                f"--cluster-dns: {a!r} is not an IP address (e.g. --cluster-dns 10.43.0.10)"
            ) from None
    domain = str(args.cluster_domain).strip().rstrip(".").lower()
    labels = domain.split(".")
    if not domain or any(not label or not set(label) <= LABEL_CHARS for label in labels):
        raise ValueError(
            f"--cluster-domain: {args.cluster_domain!r} is not a DNS domain "
            "(e.g. --cluster-domain cluster.local)"
        )
    pods: Path | None = resolvconf.host_resolv_conf()
    upstreams = resolvconf.HOST_RESOLV_CONF
    if args.resolv_conf == "":
        pods = None
    elif args.resolv_conf is not None:
        pods = upstreams = Path(args.resolv_conf)
        if not pods.is_file():
            raise ValueError(f"--resolv-conf: {pods} is not a file")
    return node_dns.Settings(
        cluster_dns=addresses,
        cluster_domain=domain,
        resolv_conf=pods,
        serve=not args.disable_dns and bool(addresses),
        upstreams=upstreams,
    )
