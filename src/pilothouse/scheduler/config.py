"""The scheduler's configuration file, in the shape of upstream's KubeSchedulerConfiguration
(``kubescheduler.config.k8s.io/v1``).

Each profile has a ``schedulerName``; its plugins are the default ``multiPoint``
set merged with the file's (a plugin enabled again takes the new weight, a
disabled one — or ``"*"`` — is dropped), plus plugins enabled or disabled at
single extension points; ``pluginConfig`` passes arguments, e.g. bin packing::

    apiVersion: kubescheduler.config.k8s.io/v1
    kind: KubeSchedulerConfiguration
    profiles:
    - schedulerName: default-scheduler
      pluginConfig:
      - name: NodeResourcesFit
        args:
          scoringStrategy:
            type: MostAllocated
            resources: [{name: cpu, weight: 1}, {name: memory, weight: 1}]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

API_VERSION = "kubescheduler.config.k8s.io/v1"
KIND = "KubeSchedulerConfiguration"
DEFAULT_SCHEDULER_NAME = "default-scheduler"

# Upstream 1.32's default MultiPoint set and score weights (VolumeRestrictions,
# NodeVolumeLimits, VolumeZone and ImageLocality left out: pilothouse has no CSI
# drivers, zonal disks or image scoring yet).
DEFAULT_MULTI_POINT: list[tuple[str, int]] = [
    ("SchedulingGates", 0),
    ("PrioritySort", 0),
    ("NodeUnschedulable", 0),
    ("NodeName", 0),
    ("TaintToleration", 3),
    ("NodeAffinity", 2),
    ("NodePorts", 0),
    ("NodeResourcesFit", 1),
    ("VolumeBinding", 0),
    ("PodTopologySpread", 2),
    ("InterPodAffinity", 2),
    ("DefaultPreemption", 0),
    ("NodeResourcesBalancedAllocation", 1),
    ("DefaultBinder", 0),
]
EXTENSION_POINTS = (
    "queueSort",
    "preEnqueue",
    "preFilter",
    "filter",
    "postFilter",
    "preScore",
    "score",
    "reserve",
    "permit",
    "preBind",
    "bind",
    "postBind",
)


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message says what to fix."""


@dataclass
class PluginSet:
    enabled: list[tuple[str, int]] = field(default_factory=list)
    disabled: set[str] = field(default_factory=set)


@dataclass
class Profile:
    scheduler_name: str = DEFAULT_SCHEDULER_NAME
    percentage_of_nodes_to_score: int = 0
    multi_point: list[tuple[str, int]] = field(default_factory=lambda: list(DEFAULT_MULTI_POINT))
    points: dict[str, PluginSet] = field(default_factory=dict)
    args: dict[str, dict[str, Any]] = field(default_factory=dict)

    def plugin_args(self, name: str) -> dict[str, Any]:
        return self.args.get(name) or {}

    def plugin_names(self) -> list[str]:
        names = [n for n, _ in self.multi_point]
        for ps in self.points.values():
            names.extend(n for n, _ in ps.enabled if n not in names)
        return names


@dataclass
class Configuration:
    profiles: list[Profile] = field(default_factory=lambda: [Profile()])
    percentage_of_nodes_to_score: int = 0
    pod_initial_backoff_seconds: float = 1.0
    pod_max_backoff_seconds: float = 10.0
    leader_elect: bool | None = None

    def profile(self, scheduler_name: str) -> Profile | None:
        return next((p for p in self.profiles if p.scheduler_name == scheduler_name), None)


def _plugin_list(raw: Any, where: str) -> list[tuple[str, int]]:
    out = []
    for i, item in enumerate(raw or []):
        if not isinstance(item, dict) or not item.get("name"):
            raise ConfigError(f"{where}[{i}].name: Required value")
        out.append((str(item["name"]), int(item.get("weight") or 0)))
    return out


def _merge(defaults: list[tuple[str, int]], custom: PluginSet) -> list[tuple[str, int]]:
    """Upstream's ``mergePluginSet``: defaults minus disabled, re-enabled ones replaced in place."""
    replaced = {n: w for n, w in custom.enabled}
    merged: list[tuple[str, int]] = []
    if "*" not in custom.disabled:
        for name, weight in defaults:
            if name in custom.disabled:
                continue
            merged.append((name, replaced.pop(name, weight) if name in replaced else weight))
    taken = {n for n, _ in merged}
    merged.extend((n, w) for n, w in custom.enabled if n not in taken)
    return merged


def _profile(raw: dict[str, Any], index: int, global_percentage: int) -> Profile:
    where = f"profiles[{index}]"
    name = raw.get("schedulerName") or DEFAULT_SCHEDULER_NAME
    percentage = raw.get("percentageOfNodesToScore")
    profile = Profile(
        scheduler_name=str(name),
        percentage_of_nodes_to_score=int(global_percentage if percentage is None else percentage),
    )
    if not 0 <= profile.percentage_of_nodes_to_score <= 100:
        raise ConfigError(
            f"{where}.percentageOfNodesToScore: Invalid value: not in valid range [0-100]"
        )
    plugins = raw.get("plugins") or {}
    if not isinstance(plugins, dict):
        raise ConfigError(f"{where}.plugins: must be a mapping")
    for point, body in plugins.items():
        if point != "multiPoint" and point not in EXTENSION_POINTS:
            raise ConfigError(f"{where}.plugins: unknown extension point {point!r}")
        body = body or {}
        ps = PluginSet(
            enabled=_plugin_list(body.get("enabled"), f"{where}.plugins.{point}.enabled"),
            disabled={
                n
                for n, _ in _plugin_list(body.get("disabled"), f"{where}.plugins.{point}.disabled")
            },
        )
        if point == "multiPoint":
            profile.multi_point = _merge(DEFAULT_MULTI_POINT, ps)
        else:
            profile.points[point] = ps
    for i, item in enumerate(raw.get("pluginConfig") or []):
        if not isinstance(item, dict) or not item.get("name"):
            raise ConfigError(f"{where}.pluginConfig[{i}].name: Required value")
        if item["name"] in profile.args:
            raise ConfigError(f'{where}.pluginConfig[{i}]: Duplicate value: "{item["name"]}"')
        profile.args[str(item["name"])] = dict(item.get("args") or {})
    return profile


def parse(doc: Any) -> Configuration:
    if doc is None:
        return Configuration()
    if not isinstance(doc, dict):
        raise ConfigError("the scheduler configuration must be a YAML mapping")
    api_version = doc.get("apiVersion")
    if api_version and api_version != API_VERSION:
        raise ConfigError(f"apiVersion {api_version!r} is not supported; use {API_VERSION}")
    if doc.get("kind") not in (None, KIND):
        raise ConfigError(f"kind must be {KIND}")
    percentage = int(doc.get("percentageOfNodesToScore") or 0)
    if not 0 <= percentage <= 100:
        raise ConfigError("percentageOfNodesToScore: Invalid value: not in valid range [0-100]")
    config = Configuration(
        percentage_of_nodes_to_score=percentage,
        pod_initial_backoff_seconds=float(doc.get("podInitialBackoffSeconds") or 1),
        pod_max_backoff_seconds=float(doc.get("podMaxBackoffSeconds") or 10),
    )
    if config.pod_max_backoff_seconds < config.pod_initial_backoff_seconds:
        raise ConfigError(
            "podMaxBackoffSeconds must be greater than or equal to podInitialBackoffSeconds"
        )
    election = doc.get("leaderElection") or {}
    if "leaderElect" in election:
        config.leader_elect = bool(election["leaderElect"])
    raw_profiles = doc.get("profiles") or [{}]
    config.profiles = [_profile(p or {}, i, percentage) for i, p in enumerate(raw_profiles)]
    names = [p.scheduler_name for p in config.profiles]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ConfigError(f'profiles[{i}].schedulerName: Duplicate value: "{name}"')
    return config


def load(path: str | Path) -> Configuration:
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    try:
        return parse(doc)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise ConfigError(f"{path}: {exc}") from None
        raise ConfigError(f"{path}: {exc}") from None
