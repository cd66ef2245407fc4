"""The agent's KubeletConfiguration file: upstream's defaults, checks and words."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from pilothouse.cli import nodeflags
from pilothouse.node import dns as node_dns
from pilothouse.node import kubeletconfig as kc

HEADER = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"


def test_defaults_are_upstreams() -> None:
    config = kc.parse(HEADER)
    assert config.max_pods == 110
    assert (config.image_gc_high_threshold_percent, config.image_gc_low_threshold_percent) == (
        85,
        80,
    )
    assert config.image_minimum_gc_age == 120 and config.image_maximum_gc_age == 0
    assert config.container_log_max_size == 10 * 1024 * 1024
    assert config.container_log_max_files == 5
    assert config.eviction_pressure_transition_period == 300
    hard = {t.signal: t.spelled() for t in config.thresholds}
    assert hard == {
        "memory.available": str(100 * 1024 * 1024),
        "nodefs.available": "10%",
        "nodefs.inodesFree": "5%",
        "imagefs.available": "15%",
        "imagefs.inodesFree": "5%",
    }
    assert all(t.hard for t in config.thresholds)
    assert kc.KubeletConfig() == config.__class__(**{**config.__dict__, "source": ""})


def test_a_full_file() -> None:
    config = kc.parse(
        HEADER
        + """
maxPods: 50
clusterDNS: [10.43.0.53]
clusterDomain: example.local
imageGCHighThresholdPercent: 70
imageGCLowThresholdPercent: 50
imageMinimumGCAge: 1m30s
imageMaximumGCAge: 1h
containerLogMaxSize: 1Mi
containerLogMaxFiles: 3
containerLogMonitorInterval: 5s
evictionHard: {nodefs.available: 20%, memory.available: 200Mi}
evictionSoft: {nodefs.available: 30%}
evictionSoftGracePeriod: {nodefs.available: 2m}
evictionMinimumReclaim: {nodefs.available: 1Gi}
evictionPressureTransitionPeriod: 30s
evictionMaxPodGracePeriod: 10
registerWithTaints: [{key: dedicated, value: gpu, effect: NoSchedule}]
systemReserved: {memory: 1Gi}
authentication: {anonymous: {enabled: false}}
cgroupDriver: systemd
""",
        source="/etc/kubelet.yaml",
    )
    assert config.max_pods == 50 and config.cluster_dns == ("10.43.0.53",)
    assert config.image_minimum_gc_age == 90 and config.image_maximum_gc_age == 3600
    assert config.container_log_max_size == 1024 * 1024 and config.container_log_max_files == 3
    assert config.container_log_monitor_interval == 5
    by = {(t.signal, t.hard): t for t in config.thresholds}
    assert set(by) == {
        ("nodefs.available", True),
        ("memory.available", True),
        ("nodefs.available", False),
    }, "a given evictionHard replaces the defaults, as upstream"
    soft = by[("nodefs.available", False)]
    assert soft.percentage == 0.3 and soft.grace_period == 120
    assert soft.min_reclaim(10 << 30) == 1 << 30
    assert config.eviction_max_pod_grace_period == 10
    assert config.register_with_taints == (
        {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
    )
    assert config.ignored == ("authentication", "cgroupDriver")
    merged = kc.parse(
        HEADER + "mergeDefaultEvictionSettings: true\nevictionHard: {memory.available: 1Gi}\n"
    )
    assert {t.signal for t in merged.thresholds} >= {"memory.available", "imagefs.available"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("maxPodz: 3\n", 'strict decoding error: unknown field "maxPodz"'),
        (
            "imageGCHighThresholdPercent: 50\n",
            "invalid configuration: imageGCLowThresholdPercent (--image-gc-low-threshold) 80 must "
            "be less than imageGCHighThresholdPercent (--image-gc-high-threshold) 50",
        ),
        (
            "imageGCHighThresholdPercent: 101\n",
            "imageGCHighThresholdPercent (--image-gc-high-threshold) 101 must be between 0 and 100, inclusive",
        ),
        (
            "containerLogMaxFiles: 1\n",
            "invalid configuration: containerLogMaxFiles must be greater than 1",
        ),
        (
            "imageMinimumGCAge: 2m\nimageMaximumGCAge: 1m\n",
            "invalid configuration: imageMaximumGCAge 1m0s must be greater than imageMinimumGCAge 2m0s",
        ),
        ("imageMinimumGCAge: soon\n", 'imageMinimumGCAge: time: invalid duration "soon"'),
        ("evictionHard: {memory.free: 1Gi}\n", "unsupported eviction signal memory.free"),
        (
            "evictionSoft: {memory.available: 1Gi}\n",
            "grace period must be specified for the soft eviction threshold memory.available",
        ),
        ("evictionHard: {nodefs.available: 120%}\n", "must be >= 0% and <= 100%: 120%"),
        (
            "maxPods: -1\n",
            "invalid configuration: maxPods (--max-pods) -1 must not be a negative number",
        ),
        ("registerWithTaints: [{key: a}]\n", "invalid taint"),
    ],
)
def test_bad_files_are_refused_with_upstreams_words(body: str, message: str) -> None:
    with pytest.raises(kc.ConfigError) as err:
        kc.parse(HEADER + body, source="k.yaml")
    assert message in str(err.value)


def test_not_a_kubelet_configuration() -> None:
    with pytest.raises(kc.ConfigError, match='no kind "Config" is registered for version "v1"'):
        kc.parse("apiVersion: v1\nkind: Config\n", source="k.yaml")
    with pytest.raises(kc.ConfigError, match=r"failed to decode: .* at line 4, column 1"):
        kc.parse(HEADER + "maxPods: [\n", source="k.yaml")


def test_go_durations() -> None:
    assert kc.parse_duration("1h2m3.5s", "x") == 3723.5
    assert kc.parse_duration("250ms", "x") == 0.25
    assert kc.format_duration(120) == "2m0s"
    assert kc.format_duration(3600) == "1h0m0s"
    assert kc.format_duration(0.5) == "500ms"


def test_flags_win_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / "k.yaml"
    path.write_text(HEADER + "clusterDNS: [10.43.0.53]\nclusterDomain: corp.local\n")
    args = argparse.Namespace(
        kubelet_config=path, cluster_dns=node_dns.CLUSTER_DNS, cluster_domain="other.local",
        resolv_conf=None,
    )  # fmt: skip
    config = nodeflags.load_config(args)
    settings = nodeflags.merge_dns(
        node_dns.Settings(cluster_domain="other.local", serve=True), args, config
    )
    assert settings.cluster_dns == ("10.43.0.53",)  # the flag was left at its default
    assert settings.cluster_domain == "other.local"  # the flag was given
