"""Node flags ``pilothouse server`` and ``pilothouse agent`` share: the agent's
configuration file (a KubeletConfiguration) and the registry configuration
(k3s' ``--private-registry`` registries.yaml, ``--disable-default-registry-endpoint``).

Flags given on the command line win over the configuration file, as with the kubelet.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pilothouse.node import dns as node_dns
from pilothouse.node import kubeletconfig

CONFIG_HELP = """\
A KubeletConfiguration (apiVersion: kubelet.config.k8s.io/v1beta1) the node follows:
maxPods, evictionHard/evictionSoft/evictionSoftGracePeriod/evictionPressureTransitionPeriod/
evictionMaxPodGracePeriod/evictionMinimumReclaim, imageGCHighThresholdPercent/
imageGCLowThresholdPercent/imageMinimumGCAge/imageMaximumGCAge, containerLogMaxSize/
containerLogMaxFiles/containerLogMonitorInterval, clusterDNS, clusterDomain, resolvConf,
localStorageCapacityIsolation, registerWithTaints, systemReserved, kubeReserved,
nodeStatusUpdateFrequency, port. Other fields of upstream's type are accepted and
ignored (each named in the log); unknown fields are an error."""


def add_arguments(p: argparse.ArgumentParser, *, config_flag: str) -> None:
    g = p.add_argument_group(
        "node",
        "How this machine's node agent runs pods: its configuration file, and where it "
        "pulls images from.",
    )
    g.add_argument(
        config_flag,
        dest="kubelet_config",
        type=Path,
        default=None,
        metavar="FILE",
        help=CONFIG_HELP,
    )
    g.add_argument(
        "--private-registry",
        type=Path,
        default=None,
        metavar="FILE",
        help="registry mirrors, rewrites, credentials and TLS, in k3s' registries.yaml format; "
        "re-read whenever it changes (default: DATA_DIR/registries.yaml, if it exists)",
    )
    g.add_argument(
        "--disable-default-registry-endpoint",
        action="store_true",
        help="pull images of mirrored registries from their mirrors only, never from the "
        "registry itself (air-gapped sites)",
    )


def load_config(args: argparse.Namespace) -> kubeletconfig.KubeletConfig:
    """The agent's configuration; ConfigError with a message that says what to fix."""
    if args.kubelet_config is None:
        return kubeletconfig.KubeletConfig()
    return kubeletconfig.load(args.kubelet_config)


def merge_dns(
    settings: node_dns.Settings, args: argparse.Namespace, config: kubeletconfig.KubeletConfig
) -> node_dns.Settings:
    """The file's clusterDNS/clusterDomain/resolvConf where the flags were left at default."""
    cluster_dns = settings.cluster_dns
    if config.cluster_dns is not None and args.cluster_dns == node_dns.CLUSTER_DNS:
        cluster_dns = config.cluster_dns
    domain = settings.cluster_domain
    if config.cluster_domain is not None and args.cluster_domain == node_dns.CLUSTER_DOMAIN:
        domain = config.cluster_domain.rstrip(".").lower()
    resolv, upstreams = settings.resolv_conf, settings.upstreams
    if config.resolv_conf is not None and args.resolv_conf is None:
        if config.resolv_conf == "":
            resolv = None
        else:
            resolv = upstreams = Path(config.resolv_conf)
            if not resolv.is_file():
                raise ValueError(f"resolvConf: {resolv} is not a file")
    return node_dns.Settings(
        cluster_dns=cluster_dns,
        cluster_domain=domain,
        resolv_conf=resolv,
        serve=settings.serve and bool(cluster_dns),
        upstreams=upstreams,
    )


def registries_path(args: argparse.Namespace, data_dir: Path) -> Path:
    """--private-registry, or DATA_DIR/registries.yaml (read when it appears)."""
    return (
        args.private_registry if args.private_registry is not None else data_dir / "registries.yaml"
    )
