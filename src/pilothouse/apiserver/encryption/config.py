"""Upstream's EncryptionConfiguration (``apiserver.config.k8s.io/v1``): load, validate,
and turn into the transformers of each stored resource.

The file is the one kube-apiserver reads with ``--encryption-provider-config``::

    apiVersion: apiserver.config.k8s.io/v1
    kind: EncryptionConfiguration
    resources:
      - resources: [secrets]
        providers:
          - aescbc: {keys: [{name: key1, secret: <base64 of 32 random bytes>}]}
          - identity: {}

Per resource, the providers' keys become one prefix transformer each, in order:
the first writes, all read. A resource is matched as upstream matches it: its
exact ``resource.group`` entry first, then ``*.group``, then ``*.*``; when the
same entry appears in several resource lists, the first list wins. ``kms``
providers need a KMS plugin, which pilothouse does not run: they are refused
with a clear message rather than silently ignored.

Validation follows upstream's rules and wording (``validation_encryption.go``),
so a file that kube-apiserver refuses is refused here with the same message.
"""

from __future__ import annotations

import base64
import binascii
import pathlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml

from pilothouse.api import errors
from pilothouse.api import resources as api_resources
from pilothouse.storage import encrypt
from pilothouse.storage import value as values

API_VERSION = "apiserver.config.k8s.io/v1"
KIND = "EncryptionConfiguration"
KEYED_PROVIDERS = {
    "aescbc": encrypt.AES_KEY_SIZES,
    "aesgcm": encrypt.AES_KEY_SIZES,
    "secretbox": encrypt.SECRETBOX_KEY_SIZES,
}
KNOWN_PROVIDERS = ("kms", "aesgcm", "aescbc", "secretbox", "identity")

_OVERLAP = (
    "using overlapping resources such as 'secrets' and '*.' in the same resource list"
    " is not allowed as they will be masked"
)
_NOT_REST = ("apiserveripinfo", "serviceipallocations", "servicenodeportallocations")


class ConfigError(ValueError):
    """The file cannot be used; the message says what to change."""


@dataclass(frozen=True)
class Key:
    name: str
    secret: bytes


@dataclass(frozen=True)
class Provider:
    """One element of a ``providers`` list: a kind and, unless identity, its keys."""

    kind: str  # aescbc | aesgcm | secretbox | identity
    keys: tuple[Key, ...] = ()

    def transformers(self) -> list[values.PrefixTransformer]:
        if self.kind == "identity":
            return [values.PrefixTransformer(b"", values.IDENTITY, "identity")]
        return [encrypt.keyed(self.kind, k.name, k.secret) for k in self.keys]


@dataclass(frozen=True)
class ResourceConfig:
    resources: tuple[str, ...]
    providers: tuple[Provider, ...]


@dataclass(frozen=True)
class EncryptionConfig:
    resources: tuple[ResourceConfig, ...] = field(default_factory=tuple)

    def providers_for(self, group: str, resource: str) -> tuple[Provider, ...] | None:
        """The providers that apply to ``resource.group``, or None (stored as is)."""
        table: dict[tuple[str, str], tuple[Provider, ...]] = {}
        for entry in self.resources:
            for name in entry.resources:
                table.setdefault(parse_group_resource(name), entry.providers)
        for candidate in ((group, resource), (group, "*"), ("*", "*")):
            found = table.get(candidate)
            if found is not None:
                return found
        return None

    def transformers(
        self, registry: api_resources.Registry
    ) -> dict[str, values.PrefixTransformers]:
        """Storage prefix -> transformers, for every stored resource the file covers."""
        out: dict[str, values.PrefixTransformers] = {}
        for r in registry.resources:
            if not r.stored or r.storage_prefix in out:
                continue
            providers = self.providers_for(r.group, r.plural)
            if providers is None:
                continue
            chain = [t for p in providers for t in p.transformers()]
            out[r.storage_prefix] = values.PrefixTransformers(chain)
        return out


def parse_group_resource(text: str) -> tuple[str, str]:
    """``secrets`` -> ("", "secrets"); ``deployments.apps`` -> ("apps", "deployments")."""
    resource, _, group = text.partition(".")
    return group, resource


def load(path: pathlib.Path) -> EncryptionConfig:
    """Read and validate the file (YAML or JSON); raises ConfigError."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(
            f"error reading encryption provider configuration file {str(path)!r}: {exc.strerror}"
        ) from None
    try:
        return parse(yaml.safe_load(text))
    except yaml.YAMLError as exc:
        raise ConfigError(f"error while parsing file {str(path)!r}: {exc}") from None
    except ConfigError as exc:
        raise ConfigError(f"error while parsing file {str(path)!r}: {exc}") from None


def parse(doc: Any) -> EncryptionConfig:
    """Validate a decoded document; raises ConfigError listing every problem."""
    if not isinstance(doc, dict):
        raise ConfigError("the file is empty or not a YAML/JSON object")
    if doc.get("kind") != KIND or doc.get("apiVersion") != API_VERSION:
        raise ConfigError(
            f'expected apiVersion "{API_VERSION}" and kind "{KIND}",'
            f' got apiVersion "{doc.get("apiVersion", "")}" and kind "{doc.get("kind", "")}"'
        )
    unknown = sorted(set(doc) - {"apiVersion", "kind", "resources"})
    if unknown:
        raise ConfigError(_strict(unknown))
    problems: list[errors.FieldError] = []
    entries = doc.get("resources")
    if not isinstance(entries, list) or not entries:
        problems.append(errors.required("resources", "at least one resources is required"))
        raise ConfigError(_join(problems))
    out: list[ResourceConfig] = []
    for i, entry in enumerate(entries):
        path = f"resources[{i}]"
        if not isinstance(entry, dict):
            problems.append(errors.invalid_value(path, entry, "must be an object"))
            continue
        unknown = sorted(set(entry) - {"resources", "providers"})
        if unknown:
            raise ConfigError(_strict([f"{path}.{u}" for u in unknown]))
        names = entry.get("resources") or []
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            problems.append(
                errors.invalid_value(f"{path}.resources", names, "must be a list of strings")
            )
            names = []
        if not names:
            problems.append(
                errors.required(f"{path}.resources", f"at least one {path}.resources is required")
            )
        problems.extend(_check_overlap(names, f"{path}.resources"))
        problems.extend(_check_names(names, f"{path}.resources"))
        providers = entry.get("providers") or []
        if not isinstance(providers, list):
            problems.append(errors.invalid_value(f"{path}.providers", providers, "must be a list"))
            providers = []
        if not providers:
            problems.append(
                errors.required(f"{path}.providers", f"at least one {path}.providers is required")
            )
        parsed = [_provider(p, f"{path}.providers[{j}]", problems) for j, p in enumerate(providers)]
        out.append(ResourceConfig(tuple(names), tuple(p for p in parsed if p is not None)))
    if problems:
        raise ConfigError(_join(problems))
    return EncryptionConfig(tuple(out))


def _provider(raw: Any, path: str, problems: list[errors.FieldError]) -> Provider | None:
    if not isinstance(raw, dict):
        problems.append(errors.invalid_value(path, raw, "must be an object"))
        return None
    unknown = sorted(set(raw) - set(KNOWN_PROVIDERS))
    if unknown:
        raise ConfigError(_strict([f"{path}.{u}" for u in unknown]))
    present = [k for k in KNOWN_PROVIDERS if raw.get(k) is not None]
    if not present:
        problems.append(
            errors.invalid_value(
                path,
                errors.OMITTED,
                "provider does not contain any of the expected providers: KMS, AESGCM, AESCBC,"
                " Secretbox, Identity",
            )
        )
        return None
    if len(present) > 1:
        problems.append(
            errors.invalid_value(
                path,
                errors.OMITTED,
                "more than one provider specified in a single element, should split into"
                " different list elements",
            )
        )
        return None
    kind = present[0]
    if kind == "kms":
        raise ConfigError(
            f"{path}.kms: KMS providers need a KMS plugin, which pilothouse does not run;"
            " use aescbc, aesgcm or secretbox (or `pilothouse secrets-encrypt`, which manages"
            " an aescbc key for you)"
        )
    if kind == "identity":
        return Provider("identity")
    body = raw[kind]
    if not isinstance(body, dict):
        problems.append(errors.invalid_value(f"{path}.{kind}", body, "must be an object"))
        return None
    keys = body.get("keys") or []
    keys_path = f"{path}.{kind}.keys"
    if not isinstance(keys, list) or not keys:
        problems.append(errors.required(keys_path, "at least one keys is required"))
        return None
    parsed: list[Key] = []
    for k, key in enumerate(keys):
        found = _key(key, f"{keys_path}[{k}]", KEYED_PROVIDERS[kind], problems)
        if found is not None:
            parsed.append(found)
    return Provider(kind, tuple(parsed))


def _key(
    raw: Any, path: str, sizes: tuple[int, ...], problems: list[errors.FieldError]
) -> Key | None:
    if not isinstance(raw, dict):
        problems.append(errors.invalid_value(path, raw, "must be an object"))
        return None
    name = raw.get("name") or ""
    secret = raw.get("secret") or ""
    if not name:
        problems.append(errors.required(f"{path}.name", "name is a mandatory field for a key"))
    if not secret:
        problems.append(errors.required(f"{path}.secret", "secret is a mandatory field for a key"))
        return None
    try:
        decoded = base64.b64decode(str(secret), validate=True)
    except (binascii.Error, ValueError):
        problems.append(
            errors.invalid_value(f"{path}.secret", "REDACTED", "secrets must be base64 encoded")
        )
        return None
    if len(decoded) not in sizes:
        problems.append(
            errors.invalid_value(
                f"{path}.secret",
                "REDACTED",
                f"secret is not of the expected length, got {len(decoded)}, expected one of"
                f" [{' '.join(str(s) for s in sizes)}]",
            )
        )
        return None
    if not name:
        return None
    return Key(str(name), decoded)


def _check_overlap(names: list[str], path: str) -> list[errors.FieldError]:
    if len(names) < 2:
        return []
    parsed = [parse_group_resource(n) for n in names]
    duplicate = len(set(parsed)) != len(parsed)
    overlap = False
    for i, (g1, r1) in enumerate(parsed):
        for j, (g2, r2) in enumerate(parsed):
            if i == j or (g1, r1) == (g2, r2):
                continue
            if (g1, r1) == ("*", "*") or (g1 == g2 and "*" in (r1, r2)):
                overlap = True
    value = errors.go_string_list(names)
    out = []
    if duplicate:
        out.append(
            errors.invalid_value(
                path, value, "the same resource cannot be specified multiple times"
            )
        )
    if overlap:
        out.append(errors.invalid_value(path, value, _OVERLAP))
    return out


def _check_names(names: Iterable[str], path: str) -> list[errors.FieldError]:
    out = []
    for j, name in enumerate(names):
        where = f"{path}[{j}]"
        group, resource = parse_group_resource(name)
        if name.lower() != name:
            detail = "resource name should not contain capital letters"
        elif name == "*":
            detail = (
                "use '*.' to encrypt all the resources from core API group or *.* to encrypt"
                " all resources"
            )
        elif name in _NOT_REST:
            detail = "resources which do not have REST API/s cannot be encrypted"
        elif group == "events.k8s.io":
            detail = (
                "'*.events.k8s.io' objects are stored using the 'events' API group in etcd."
                " Use 'events' instead in the config file"
            )
        elif group == "extensions":
            detail = "'extensions' group has been removed and cannot be used for encryption"
        elif group == "*" and resource != "*":
            detail = "encrypting the same resource across groups is not supported"
        else:
            continue
        out.append(errors.invalid_value(where, name, detail))
    return out


def _join(problems: list[errors.FieldError]) -> str:
    messages = list(dict.fromkeys(p.message() for p in problems))
    return messages[0] if len(messages) == 1 else "[" + ", ".join(messages) + "]"


def _strict(fields: list[str]) -> str:
    quoted = ", ".join(f'unknown field "{f}"' for f in fields)
    return f"strict decoding error: {quoted}"


def dump(config: EncryptionConfig) -> dict[str, Any]:
    """The document for ``config`` (what a managed configuration file holds)."""
    entries = []
    for entry in config.resources:
        providers: list[dict[str, Any]] = []
        for p in entry.providers:
            if p.kind == "identity":
                providers.append({"identity": {}})
            else:
                keys = [
                    {"name": k.name, "secret": base64.b64encode(k.secret).decode()} for k in p.keys
                ]
                providers.append({p.kind: {"keys": keys}})
        entries.append({"resources": list(entry.resources), "providers": providers})
    return {"kind": KIND, "apiVersion": API_VERSION, "resources": entries}
