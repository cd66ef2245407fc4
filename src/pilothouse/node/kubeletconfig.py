"""The agent's configuration file: a ``KubeletConfiguration`` (kubelet.config.k8s.io/v1beta1).

``pilothouse agent --config FILE`` (``pilothouse server --kubelet-config FILE`` for the
server's own node) reads the same YAML an operator would give upstream's kubelet, with
upstream's defaults and checks, so one file says how every node behaves instead of a
flag for each setting. The fields this agent acts on are in :data:`IMPLEMENTED`; the
other fields of upstream's type are accepted and reported as ignored (a file written
for the kubelet still loads); anything else is refused as upstream refuses it
(``strict decoding error: unknown field "…"``). Flags given on the command line win
over the file, as with the kubelet.

Pure parsing and validation: no I/O beyond reading the one file in :func:`load`.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pilothouse.api import quantity

API_VERSION = "kubelet.config.k8s.io/v1beta1"
KIND = "KubeletConfiguration"

# Upstream's defaults (pkg/kubelet/apis/config/v1beta1/defaults.go, defaults_linux.go).
DEFAULT_EVICTION_HARD = {
    "memory.available": "100Mi",
    "nodefs.available": "10%",
    "nodefs.inodesFree": "5%",
    "imagefs.available": "15%",
    "imagefs.inodesFree": "5%",
}
SIGNALS = frozenset(
    {
        "memory.available",
        "allocatableMemory.available",
        "nodefs.available",
        "nodefs.inodesFree",
        "imagefs.available",
        "imagefs.inodesFree",
        "containerfs.available",
        "containerfs.inodesFree",
        "pid.available",
    }
)

IMPLEMENTED = frozenset(
    {
        "apiVersion",
        "kind",
        "port",
        "clusterDNS",
        "clusterDomain",
        "resolvConf",
        "maxPods",
        "imageMinimumGCAge",
        "imageMaximumGCAge",
        "imageGCHighThresholdPercent",
        "imageGCLowThresholdPercent",
        "containerLogMaxSize",
        "containerLogMaxFiles",
        "containerLogMonitorInterval",
        "evictionHard",
        "evictionSoft",
        "evictionSoftGracePeriod",
        "evictionPressureTransitionPeriod",
        "evictionMaxPodGracePeriod",
        "evictionMinimumReclaim",
        "mergeDefaultEvictionSettings",
        "localStorageCapacityIsolation",
        "nodeStatusUpdateFrequency",
        "registerWithTaints",
        "systemReserved",
        "kubeReserved",
    }
)
# The rest of upstream's KubeletConfiguration (kubernetes/kubelet config/v1beta1/types.go):
# accepted so a kubelet's file loads, each reported as not acted on.
UPSTREAM_ONLY = frozenset(
    """enableServer staticPodPath podLogsDir syncFrequency fileCheckFrequency httpCheckFrequency
    staticPodURL staticPodURLHeader address readOnlyPort tlsCertFile tlsPrivateKeyFile
    tlsCipherSuites tlsCurvePreferences tlsMinVersion rotateCertificates serverTLSBootstrap
    authentication authorization registryPullQPS registryBurst
    imagePullCredentialsVerificationPolicy preloadedImagesVerificationAllowlist eventRecordQPS
    eventBurst enableDebuggingHandlers enableContentionProfiling healthzPort healthzBindAddress
    oomScoreAdj streamingConnectionIdleTimeout nodeStatusReportFrequency
    nodeLeaseDurationSeconds volumeStatsAggPeriod kubeletCgroups systemCgroups cgroupRoot
    cgroupsPerQOS cgroupDriver cpuManagerPolicy singleProcessOOMKill cpuManagerPolicyOptions
    cpuManagerReconcilePeriod memoryManagerPolicy topologyManagerPolicy topologyManagerScope
    topologyManagerPolicyOptions qosReserved runtimeRequestTimeout hairpinMode podCIDR
    podPidsLimit runOnce cpuCFSQuota cpuCFSQuotaPeriod nodeStatusMaxImages maxOpenFiles
    contentType kubeAPIQPS kubeAPIBurst serializeImagePulls maxParallelImagePulls podsPerCore
    enableControllerAttachDetach protectKernelDefaults makeIPTablesUtilChains
    iptablesMasqueradeBit iptablesDropBit featureGates failSwapOn memorySwap
    containerLogMaxWorkers configMapAndSecretChangeDetectionStrategy reservedSystemCPUs
    showHiddenMetricsForVersion systemReservedCgroup kubeReservedCgroup enforceNodeAllocatable
    allowedUnsafeSysctls defaultPodSysctls volumePluginDir providerID kernelMemcgNotification
    logging enableSystemLogHandler enableSystemLogQuery shutdownGracePeriod
    shutdownGracePeriodCriticalPods shutdownGracePeriodByPodPriority crashLoopBackOff
    reservedMemory enableProfilingHandler enableDebugFlagsHandler seccompDefault
    memoryThrottlingFactor memoryReservationPolicy registerNode tracing containerRuntimeEndpoint
    imageServiceEndpoint failCgroupV1 userNamespaces""".split()  # noqa: SIM905 — a word list reads better
)

_GO_DURATION = re.compile(r"([0-9]*\.?[0-9]+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class ConfigError(ValueError):
    """The file cannot be used; the message is upstream's where it has one."""


@dataclass(frozen=True)
class Threshold:
    """One eviction threshold: ``signal`` < ``value`` (a quantity or a percentage)."""

    signal: str
    quantity: int | None = None  # bytes, inodes or pids
    percentage: float = 0.0  # of the capacity, 0..1
    grace_period: float = 0.0  # 0: a hard threshold
    min_reclaim_quantity: int | None = None
    min_reclaim_percentage: float = 0.0

    @property
    def hard(self) -> bool:
        return self.grace_period == 0

    def value(self, capacity: int) -> int:
        """The threshold as an amount, for a resource of ``capacity``."""
        if self.quantity is not None:
            return self.quantity
        return int(capacity * self.percentage)

    def min_reclaim(self, capacity: int) -> int:
        if self.min_reclaim_quantity is not None:
            return self.min_reclaim_quantity
        return int(capacity * self.min_reclaim_percentage)

    def spelled(self) -> str:
        if self.quantity is not None:
            return str(self.quantity)
        return f"{self.percentage * 100:g}%"


@dataclass(frozen=True)
class KubeletConfig:
    """What the agent takes from a KubeletConfiguration (upstream's defaults otherwise)."""

    port: int = 10250
    cluster_dns: tuple[str, ...] | None = None  # None: the flags' (or their default)
    cluster_domain: str | None = None
    resolv_conf: str | None = None
    max_pods: int = 110
    image_minimum_gc_age: float = 120.0
    image_maximum_gc_age: float = 0.0
    image_gc_high_threshold_percent: int = 85
    image_gc_low_threshold_percent: int = 80
    container_log_max_size: int = 10 * 1024 * 1024
    container_log_max_files: int = 5
    container_log_monitor_interval: float = 10.0
    thresholds: tuple[Threshold, ...] = field(
        default_factory=lambda: parse_thresholds(DEFAULT_EVICTION_HARD, {}, {}, {})
    )
    eviction_pressure_transition_period: float = 300.0
    eviction_max_pod_grace_period: int = 0
    local_storage_capacity_isolation: bool = True
    node_status_update_frequency: float = 10.0
    register_with_taints: tuple[dict[str, str], ...] = ()
    system_reserved: dict[str, str] = field(default_factory=dict)
    kube_reserved: dict[str, str] = field(default_factory=dict)
    ignored: tuple[str, ...] = ()  # upstream fields present but not acted on
    source: str = ""


# --- durations --------------------------------------------------------------------------------
def parse_duration(text: Any, where: str) -> float:
    """A Go duration (``2m0s``, ``1h30m``, ``500ms``) in seconds."""
    s = str(text).strip()
    sign = -1.0 if s.startswith("-") else 1.0
    body = s.lstrip("+-")
    if body == "0":
        return 0.0
    pos, total = 0, 0.0
    for m in _GO_DURATION.finditer(body):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not body or pos != len(body):
        raise ConfigError(f'{where}: time: invalid duration "{s}"')
    return sign * total


def format_duration(seconds: float) -> str:
    """Go's spelling of a duration: ``2m0s``, ``1h0m0s``, ``500ms``."""
    if seconds == 0:
        return "0s"
    if abs(seconds) < 1:
        return f"{seconds * 1000:g}ms"
    sign = "-" if seconds < 0 else ""
    rest = abs(seconds)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    out = f"{int(hours)}h" if hours else ""
    if hours or minutes:
        out += f"{int(minutes)}m"
    return f"{sign}{out}{secs:g}s"


# --- eviction thresholds ----------------------------------------------------------------------
def _threshold_value(signal: str, value: Any, *, reclaim: bool) -> tuple[int | None, float]:
    text = str(value).strip()
    if signal not in SIGNALS:
        raise ConfigError(f"unsupported eviction signal {signal}")
    if text.endswith("%"):
        try:
            pct = float(text[:-1]) / 100
        except ValueError:
            raise ConfigError(f"invalid percentage {text!r} for {signal}") from None
        if reclaim and pct <= 0:
            raise ConfigError(
                f"eviction percentage minimum reclaim {signal} must be positive: {text}"
            )
        if not 0 <= pct <= 1:
            raise ConfigError(
                f"eviction percentage threshold {signal} must be >= 0% and <= 100%: {text}"
            )
        return None, pct
    try:
        amount = quantity.to_int(quantity.parse_quantity(text))
    except (quantity.QuantityError, ValueError) as exc:
        raise ConfigError(f"{signal}: {exc}") from None
    if amount < 0:
        raise ConfigError(
            f"negative eviction minimum reclaim specified for {signal}"
            if reclaim
            else f"eviction threshold {signal} cannot be negative: {text}"
        )
    return amount, 0.0


def parse_thresholds(
    hard: dict[str, Any],
    soft: dict[str, Any],
    grace: dict[str, Any],
    min_reclaim: dict[str, Any],
) -> tuple[Threshold, ...]:
    """Upstream's ParseThresholdConfig: hard, then soft (each needing a grace period)."""
    reclaims = {
        signal: _threshold_value(signal, v, reclaim=True) for signal, v in min_reclaim.items()
    }
    periods = {
        signal: parse_duration(v, f"evictionSoftGracePeriod[{signal}]")
        for signal, v in grace.items()
    }
    for signal in periods:
        if signal not in SIGNALS:
            raise ConfigError(f"unsupported eviction signal {signal}")
    out: list[Threshold] = []
    for group, is_soft in ((hard, False), (soft, True)):
        for signal, value in group.items():
            amount, pct = _threshold_value(signal, value, reclaim=False)
            if amount is None and pct == 0:
                continue  # "0%" disables the signal, as upstream
            period = 0.0
            if is_soft:
                if signal not in periods:
                    raise ConfigError(
                        f"grace period must be specified for the soft eviction threshold {signal}"
                    )
                period = periods[signal]
            r_amount, r_pct = reclaims.get(signal, (None, 0.0))
            out.append(Threshold(signal, amount, pct, period, r_amount, r_pct))
    return tuple(out)


# --- the file --------------------------------------------------------------------------------
def load(path: Path) -> KubeletConfig:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"failed to read kubelet config file {path}: {exc.strerror}") from None
    return parse(text, source=str(path))


def parse(text: str, *, source: str = "") -> KubeletConfig:
    prefix = f"failed to load Kubelet config file {source}, error "
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(
            f"{prefix}failed to decode: {getattr(exc, 'problem', None) or exc}{where}"
        ) from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{prefix}failed to decode: expected a KubeletConfiguration object")
    if doc.get("kind") != KIND or doc.get("apiVersion") != API_VERSION:
        raise ConfigError(
            f'{prefix}failed to decode: no kind "{doc.get("kind", "")}" is registered for version '
            f'"{doc.get("apiVersion", "")}" (want apiVersion: {API_VERSION}, kind: {KIND})'
        )
    unknown = sorted(k for k in doc if k not in IMPLEMENTED and k not in UPSTREAM_ONLY)
    if unknown:
        raise ConfigError(
            f"{prefix}failed to decode, error: strict decoding error: "
            + ", ".join(f'unknown field "{k}"' for k in unknown)
        )
    errors: list[str] = []
    config = _build(doc, errors)
    if errors:
        raise ConfigError(
            "invalid configuration: " + "; ".join(errors) if len(errors) > 1 else errors[0]
        )
    return KubeletConfig(
        **{
            **config.__dict__,
            "source": source,
            "ignored": tuple(sorted(k for k in doc if k in UPSTREAM_ONLY)),
        }
    )


def _int(doc: dict[str, Any], key: str, default: int, errors: list[str]) -> int:
    value = doc.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        errors.append(f"{key}: expected an integer, got {value!r}")
        return default
    return value


def _map(doc: dict[str, Any], key: str, errors: list[str]) -> dict[str, Any] | None:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        errors.append(f"{key}: expected a map, got {value!r}")
        return None
    return value


def _build(doc: dict[str, Any], errors: list[str]) -> KubeletConfig:
    d = KubeletConfig()
    high = _int(doc, "imageGCHighThresholdPercent", d.image_gc_high_threshold_percent, errors)
    low = _int(doc, "imageGCLowThresholdPercent", d.image_gc_low_threshold_percent, errors)
    if not 0 <= high <= 100:
        errors.append(
            f"invalid configuration: imageGCHighThresholdPercent (--image-gc-high-threshold) {high} "
            "must be between 0 and 100, inclusive"
        )
    if not 0 <= low <= 100:
        errors.append(
            f"invalid configuration: imageGCLowThresholdPercent (--image-gc-low-threshold) {low} "
            "must be between 0 and 100, inclusive"
        )
    if low >= high:
        errors.append(
            f"invalid configuration: imageGCLowThresholdPercent (--image-gc-low-threshold) {low} "
            f"must be less than imageGCHighThresholdPercent (--image-gc-high-threshold) {high}"
        )
    durations: dict[str, float] = {}
    for key, default in (
        ("imageMinimumGCAge", d.image_minimum_gc_age),
        ("imageMaximumGCAge", d.image_maximum_gc_age),
        ("containerLogMonitorInterval", d.container_log_monitor_interval),
        ("evictionPressureTransitionPeriod", d.eviction_pressure_transition_period),
        ("nodeStatusUpdateFrequency", d.node_status_update_frequency),
    ):
        try:
            durations[key] = parse_duration(doc[key], key) if key in doc else default
        except ConfigError as exc:
            errors.append(str(exc))
            durations[key] = default
    min_age, max_age = durations["imageMinimumGCAge"], durations["imageMaximumGCAge"]
    if min_age < 0:
        errors.append(
            f"invalid configuration: imageMinimumGCAge {format_duration(min_age)} must not be negative"
        )
    if max_age < 0:
        errors.append(
            f"invalid configuration: imageMaximumGCAge {format_duration(max_age)} must not be negative"
        )
    if max_age > 0 and max_age <= min_age:
        errors.append(
            f"invalid configuration: imageMaximumGCAge {format_duration(max_age)} must be greater "
            f"than imageMinimumGCAge {format_duration(min_age)}"
        )
    if durations["containerLogMonitorInterval"] < 3:
        errors.append(
            "invalid configuration: containerLogMonitorInterval must be a positive time duration "
            "greater than or equal to 3s"
        )
    max_files = _int(doc, "containerLogMaxFiles", d.container_log_max_files, errors)
    if max_files <= 1:
        errors.append("invalid configuration: containerLogMaxFiles must be greater than 1")
    max_size = d.container_log_max_size
    if "containerLogMaxSize" in doc:
        try:
            max_size = quantity.to_int(quantity.parse_quantity(str(doc["containerLogMaxSize"])))
        except (quantity.QuantityError, ValueError) as exc:
            errors.append(f"invalid configuration: containerLogMaxSize: {exc}")
        if max_size <= 0:
            errors.append(
                f"invalid configuration: containerLogMaxSize {doc['containerLogMaxSize']} must be positive"
            )
    max_pods = _int(doc, "maxPods", d.max_pods, errors)
    if max_pods < 0:
        errors.append(
            f"invalid configuration: maxPods (--max-pods) {max_pods} must not be a negative number"
        )
    port = _int(doc, "port", d.port, errors)
    if not 1 <= port <= 65535:
        errors.append(
            f"invalid configuration: port (--port) {port} must be between 1 and 65535, inclusive"
        )
    grace_max = _int(doc, "evictionMaxPodGracePeriod", d.eviction_max_pod_grace_period, errors)
    hard = _map(doc, "evictionHard", errors)
    if hard is None:
        hard = dict(DEFAULT_EVICTION_HARD)
    elif doc.get("mergeDefaultEvictionSettings"):
        hard = {**DEFAULT_EVICTION_HARD, **hard}
    thresholds: tuple[Threshold, ...] = ()
    try:
        thresholds = parse_thresholds(
            hard,
            _map(doc, "evictionSoft", errors) or {},
            _map(doc, "evictionSoftGracePeriod", errors) or {},
            _map(doc, "evictionMinimumReclaim", errors) or {},
        )
    except ConfigError as exc:
        errors.append(str(exc))
    dns = doc.get("clusterDNS")
    cluster_dns: tuple[str, ...] | None = None
    if dns is not None:
        if not isinstance(dns, list):
            errors.append(f"clusterDNS: expected a list of IP addresses, got {dns!r}")
        else:
            for ip in dns:
                try:
                    ipaddress.ip_address(str(ip))
                except ValueError:
                    errors.append(f"clusterDNS: {ip!r} is not an IP address")
            cluster_dns = tuple(str(ip) for ip in dns)
    taints: list[dict[str, str]] = []
    for i, t in enumerate(doc.get("registerWithTaints") or []):
        if not isinstance(t, dict) or not t.get("key") or t.get("effect") not in (
            "NoSchedule", "PreferNoSchedule", "NoExecute"
        ):  # fmt: skip
            errors.append(f"invalid taint: {t} (registerWithTaints[{i}] needs a key and an effect)")
            continue
        if t.get("timeAdded") is not None:
            errors.append("invalid configuration: taint.TimeAdded is not nil")
        taints.append({k: str(v) for k, v in t.items() if k in ("key", "value", "effect")})
    reserved: dict[str, dict[str, str]] = {}
    for key in ("systemReserved", "kubeReserved"):
        values = _map(doc, key, errors) or {}
        for name, value in values.items():
            try:
                quantity.parse_quantity(str(value))
            except (quantity.QuantityError, ValueError) as exc:
                errors.append(f"{key}[{name}]: {exc}")
        reserved[key] = {str(k): str(v) for k, v in values.items()}
    isolation = doc.get("localStorageCapacityIsolation", True)
    return KubeletConfig(
        port=port,
        cluster_dns=cluster_dns,
        cluster_domain=str(doc["clusterDomain"]) if doc.get("clusterDomain") else None,
        resolv_conf=str(doc["resolvConf"]) if "resolvConf" in doc else None,
        max_pods=max_pods,
        image_minimum_gc_age=min_age,
        image_maximum_gc_age=max_age,
        image_gc_high_threshold_percent=high,
        image_gc_low_threshold_percent=low,
        container_log_max_size=max_size,
        container_log_max_files=max_files,
        container_log_monitor_interval=durations["containerLogMonitorInterval"],
        thresholds=thresholds,
        eviction_pressure_transition_period=durations["evictionPressureTransitionPeriod"],
        eviction_max_pod_grace_period=grace_max,
        local_storage_capacity_isolation=bool(isolation),
        node_status_update_frequency=durations["nodeStatusUpdateFrequency"],
        register_with_taints=tuple(taints),
        system_reserved=reserved["systemReserved"],
        kube_reserved=reserved["kubeReserved"],
    )
