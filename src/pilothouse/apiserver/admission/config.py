"""``--admission-control-config-file``: upstream's AdmissionConfiguration.

The file names plugins and gives each its configuration, inline or in a file of
its own (a relative ``path`` is read beside the AdmissionConfiguration)::

    apiVersion: apiserver.config.k8s.io/v1
    kind: AdmissionConfiguration
    plugins:
    - name: PodSecurity
      configuration:
        apiVersion: pod-security.admission.config.k8s.io/v1
        kind: PodSecurityConfiguration
        defaults: {enforce: baseline, enforce-version: latest}
        exemptions: {namespaces: [kube-system]}
    - name: ResourceQuota
      path: resourcequota.yaml

Each plugin reads and checks its own configuration; this module only finds it.
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass, field
from typing import Any

import yaml

API_VERSIONS = ("apiserver.config.k8s.io/v1", "apiserver.k8s.io/v1alpha1")
KIND = "AdmissionConfiguration"


class ConfigError(ValueError):
    """The configuration cannot be used; the message says what to change."""


@dataclass
class AdmissionConfig:
    """Plugin name → its configuration object (a dict as the file spells it)."""

    plugins: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str = ""

    def plugin(self, name: str) -> dict[str, Any] | None:
        return self.plugins.get(name)


def read_document(path: pathlib.Path) -> Any:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(
            f"unable to read admission control configuration from {path!s} [{exc}]"
        ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"unable to decode {path}: {exc}") from None


def load(path: pathlib.Path) -> AdmissionConfig:
    doc = read_document(path)
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected an AdmissionConfiguration object")
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    if kind != KIND or api_version not in API_VERSIONS:
        raise ConfigError(
            f"{path}: expected kind {KIND} of apiVersion {' or '.join(API_VERSIONS)}, "
            f"got {kind or '(none)'} of {api_version or '(none)'}"
        )
    out = AdmissionConfig(source=str(path))
    for i, entry in enumerate(doc.get("plugins") or []):
        if not isinstance(entry, dict) or not entry.get("name"):
            raise ConfigError(f"{path}: plugins[{i}] needs a name")
        name = str(entry["name"])
        if entry.get("configuration") is not None and entry.get("path"):
            raise ConfigError(f"{path}: plugin {name} has both a path and a configuration")
        if entry.get("path"):
            plugin_path = pathlib.Path(str(entry["path"]))
            if not plugin_path.is_absolute():
                plugin_path = path.parent / plugin_path
            conf = read_document(plugin_path)
        else:
            conf = entry.get("configuration")
        if conf is None:
            continue
        if not isinstance(conf, dict):
            raise ConfigError(f"{path}: the configuration of plugin {name} must be an object")
        out.plugins[name] = conf
    return out
