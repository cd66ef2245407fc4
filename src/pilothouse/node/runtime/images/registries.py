"""``registries.yaml``: where to pull each registry's images from, in k3s' format.

The file users of k3s already write (``/etc/rancher/k3s/registries.yaml``) works here
unchanged::

    mirrors:
      docker.io:                      # images of this registry …
        endpoint:                     # … are tried at these endpoints, in order,
          - "http://127.0.0.1:5000"   #     then at the registry itself (the default
          - "https://mirror.example"  #     endpoint), as containerd does
        rewrite:                      # repository rewrites, for mirror endpoints only
          "^library/(.*)": "mirrored/$1"
      "*":                            # every registry without an entry of its own
        endpoint: ["https://cache.example"]
    configs:
      "mirror.example":               # per endpoint host[:port]; "*" for any host
        auth: {username: u, password: p}   # or auth: <base64 u:p>, or identity_token
        tls: {ca_file: …, cert_file: …, key_file: …, insecure_skip_verify: false}

Endpoint URLs take k3s' rules: a scheme of ``http`` (plain http, for registries
without TLS) or ``https`` (assumed when missing); no path or ``/`` means the API root
``/v2``, any other path is the API root as written (``https://h/prefix/v2``). Rewrites
are Go regular expressions on the repository (``library/busybox``) with ``$1``
references; like containerd, they apply to mirror endpoints and never to the default
endpoint. Keys not in k3s' format are reported as warnings, as they would otherwise
be ignored silently.

:class:`RegistriesFile` re-reads the file when it changes (checked on every pull, a
``stat``), so an edit takes effect without restarting anything; a file that does not
parse is reported — where, and why — and the last good configuration stays in force.

No I/O happens in :func:`parse` and :meth:`Registries.endpoints`; only
:class:`RegistriesFile` reads the disk (and the TLS files, when it builds contexts).
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pilothouse.node.runtime import protocol
from pilothouse.node.runtime.images import reference

log = logging.getLogger(__name__)

WILDCARD = "*"
_MIRROR_KEYS = {"endpoint", "rewrite"}
_CONFIG_KEYS = {"auth", "tls"}
_AUTH_KEYS = {"username", "password", "auth", "identity_token"}
_TLS_KEYS = {"ca_file", "cert_file", "key_file", "insecure_skip_verify"}
_GO_GROUP = re.compile(r"\$(?:\{(\w+)\}|(\w+)|(\$))")


class RegistriesError(ValueError):
    """The file cannot be used; the message says where and why."""


@dataclass(frozen=True)
class TLSConfig:
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    insecure_skip_verify: bool = False


@dataclass(frozen=True)
class HostConfig:
    """``configs[host]``: credentials and TLS for one endpoint host."""

    auth: protocol.RegistryAuth | None = None
    tls: TLSConfig | None = None


@dataclass(frozen=True)
class Rewrite:
    pattern: re.Pattern[str]
    replacement: str  # Python's re.sub syntax (translated from Go's $1)
    source: str  # as written, for messages

    def apply(self, repository: str) -> str | None:
        if self.pattern.search(repository) is None:
            return None
        return self.pattern.sub(self.replacement, repository)


@dataclass(frozen=True)
class Mirror:
    endpoints: tuple[str, ...]  # normalised API roots: scheme://host[:port]/path
    rewrites: tuple[Rewrite, ...] = ()


@dataclass(frozen=True)
class Endpoint:
    """One place to try for an image: an API root, the repository there, and how to talk."""

    api_root: str  # e.g. http://127.0.0.1:5000/v2
    host: str  # host[:port], the key of ``configs``
    repository: str  # after rewrites (mirrors only)
    mirror: bool
    config: HostConfig = HostConfig()

    @property
    def insecure(self) -> bool:
        return self.api_root.startswith("http://")

    def describe(self) -> str:
        kind = "mirror" if self.mirror else "default endpoint"
        return f"{kind} {self.api_root}"


@dataclass(frozen=True)
class Registries:
    """A parsed registries.yaml (the empty one: every registry at its default endpoint)."""

    mirrors: dict[str, Mirror] = field(default_factory=dict)
    configs: dict[str, HostConfig] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    def mirror_for(self, domain: str) -> Mirror | None:
        mirror = self.mirrors.get(domain)
        return mirror if mirror is not None else self.mirrors.get(WILDCARD)

    def config_for(self, host: str) -> HostConfig:
        return self.configs.get(host) or self.configs.get(WILDCARD) or HostConfig()

    def endpoints(
        self, ref: reference.Reference, *, default_endpoint: bool = True
    ) -> list[Endpoint]:
        """Where to try ``ref``, in order: its mirrors, then the registry itself.

        Without ``default_endpoint`` (k3s' ``--disable-default-registry-endpoint``) a
        registry that has mirrors is pulled from them only; one without keeps its
        default endpoint, as in k3s.
        """
        out: list[Endpoint] = []
        mirror = self.mirror_for(ref.domain)
        default_root = _default_root(ref.domain)
        default_host = _host_of(default_root)
        if mirror is not None:
            repository = ref.path
            for rewrite in mirror.rewrites:
                rewritten = rewrite.apply(ref.path)
                if rewritten is not None:
                    repository = rewritten
                    break
            for root in mirror.endpoints:
                host = _host_of(root)
                if host == default_host and mirror is self.mirrors.get(ref.domain):
                    # The registry listed as its own endpoint (k3s' way to say "plain
                    # http" or "another API path"): that is how its default endpoint is
                    # reached, still last and without rewrites.
                    default_root = root
                    continue
                out.append(Endpoint(root, host, repository, True, self.config_for(host)))
        if mirror is not None and not default_endpoint and out:
            return out
        config = self.config_for(default_host)
        out.append(Endpoint(default_root, default_host, ref.path, False, config))
        return out


def _default_root(domain: str) -> str:
    host = reference.registry_host(domain)
    scheme = "http" if reference.is_loopback(domain) else "https"
    return f"{scheme}://{host}/v2"


def _host_of(root: str) -> str:
    return root.partition("://")[2].partition("/")[0]


# --- parsing ---------------------------------------------------------------------------------
def parse(text: str, *, source: str = "registries.yaml") -> Registries:
    """A registries.yaml's content; RegistriesError says which line or key is wrong."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise RegistriesError(f"{where}: {problem}") from None
    if doc is None:
        return Registries()
    if not isinstance(doc, dict):
        raise RegistriesError(f"{source}: expected a mapping with mirrors and configs")
    warnings = [
        f"{source}: unknown key {key!r} ignored (expected mirrors, configs)"
        for key in doc
        if key not in ("mirrors", "configs")
    ]
    mirrors = {
        _registry_name(str(name)): _mirror(spec, f"mirrors[{name!r}]", warnings)
        for name, spec in _mapping(doc.get("mirrors"), "mirrors").items()
    }
    configs = {
        _config_key(str(name)): _host_config(spec, f"configs[{name!r}]", warnings)
        for name, spec in _mapping(doc.get("configs"), "configs").items()
    }
    return Registries(mirrors=mirrors, configs=configs, warnings=tuple(warnings))


def _registry_name(name: str) -> str:
    """Image references say ``docker.io`` for Docker Hub, whatever alias the file uses."""
    lowered = name.strip().lower()
    if lowered in ("index.docker.io", "registry-1.docker.io"):
        return reference.DEFAULT_DOMAIN
    return name.strip()


def _mapping(value: Any, where: str) -> dict[Any, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RegistriesError(f"{where}: expected a mapping, got {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    return {list: "a list", str: "a string", bool: "a boolean", int: "a number"}.get(
        type(value), type(value).__name__
    )


def _unknown(spec: dict[Any, Any], known: set[str], where: str, warnings: list[str]) -> None:
    for key in spec:
        if key not in known:
            warnings.append(
                f"{where}: unknown key {key!r} ignored (expected {', '.join(sorted(known))})"
            )


def _mirror(spec: Any, where: str, warnings: list[str]) -> Mirror:
    spec = _mapping(spec, where)
    _unknown(spec, _MIRROR_KEYS, where, warnings)
    raw = spec.get("endpoint") or []
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list):
        raise RegistriesError(f"{where}.endpoint: expected a list of URLs, got {_kind(raw)}")
    endpoints = tuple(endpoint_root(str(e), f"{where}.endpoint[{i}]") for i, e in enumerate(raw))
    rewrites = tuple(
        _rewrite(str(pattern), str(replacement), f"{where}.rewrite[{pattern!r}]")
        for pattern, replacement in _mapping(spec.get("rewrite"), f"{where}.rewrite").items()
    )
    return Mirror(endpoints=endpoints, rewrites=rewrites)


def endpoint_root(text: str, where: str = "endpoint") -> str:
    """An endpoint URL as k3s reads it: ``scheme://host[:port]`` plus the API root path."""
    url = text.strip()
    if not url:
        raise RegistriesError(f"{where}: empty endpoint")
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "https", url
    scheme = scheme.lower()
    if scheme not in ("http", "https"):
        raise RegistriesError(
            f"{where}: {text!r}: unsupported scheme {scheme!r} (use http or https)"
        )
    host, slash, path = rest.partition("/")
    if not host or any(c in host for c in " @?#"):
        raise RegistriesError(f"{where}: {text!r}: no host in the URL")
    path = (slash + path).rstrip("/")
    return f"{scheme}://{host.lower()}{path or '/v2'}"


def _rewrite(pattern: str, replacement: str, where: str) -> Rewrite:
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise RegistriesError(f"{where}: invalid regular expression: {exc}") from None

    def group(m: re.Match[str]) -> str:
        if m.group(3):
            return "$"
        name = m.group(1) or m.group(2)
        return f"\\g<{name}>"

    python = _GO_GROUP.sub(group, replacement.replace("\\", "\\\\"))
    try:
        compiled.sub(python, "")  # checks the group references
    except (re.error, IndexError) as exc:
        raise RegistriesError(f"{where}: replacement {replacement!r}: {exc}") from None
    return Rewrite(compiled, python, f"{pattern} -> {replacement}")


def _config_key(name: str) -> str:
    if name == WILDCARD:
        return name
    # k3s keys are host[:port]; tolerate a URL written instead.
    return _host_of(endpoint_root(name, f"configs[{name!r}]"))


def _host_config(spec: Any, where: str, warnings: list[str]) -> HostConfig:
    spec = _mapping(spec, where)
    _unknown(spec, _CONFIG_KEYS, where, warnings)
    auth = None
    if spec.get("auth") is not None:
        a = _mapping(spec["auth"], f"{where}.auth")
        _unknown(a, _AUTH_KEYS, f"{where}.auth", warnings)
        username, password = str(a.get("username") or ""), str(a.get("password") or "")
        if a.get("auth") and not username:
            try:
                username, _, password = (
                    base64.b64decode(str(a["auth"]), validate=True).decode().partition(":")
                )
            except (binascii.Error, UnicodeDecodeError):
                raise RegistriesError(
                    f"{where}.auth.auth: not base64 of username:password"
                ) from None
        auth = protocol.RegistryAuth(
            registry=where, username=username, password=password,
            token=str(a.get("identity_token") or ""),
        )  # fmt: skip
    tls = None
    if spec.get("tls") is not None:
        t = _mapping(spec["tls"], f"{where}.tls")
        _unknown(t, _TLS_KEYS, f"{where}.tls", warnings)
        skip = t.get("insecure_skip_verify", False)
        if not isinstance(skip, bool):
            raise RegistriesError(
                f"{where}.tls.insecure_skip_verify: expected true or false, got {skip!r}"
            )
        if bool(t.get("cert_file")) != bool(t.get("key_file")):
            raise RegistriesError(f"{where}.tls: cert_file and key_file go together")
        tls = TLSConfig(
            ca_file=str(t.get("ca_file") or ""),
            cert_file=str(t.get("cert_file") or ""),
            key_file=str(t.get("key_file") or ""),
            insecure_skip_verify=skip,
        )
    return HostConfig(auth=auth, tls=tls)


# --- TLS --------------------------------------------------------------------------------------
def ssl_context(tls: TLSConfig) -> ssl.SSLContext:
    """The client context ``tls`` asks for; OSError/ssl.SSLError name the file at fault."""
    ctx = ssl.create_default_context()
    if tls.ca_file:
        ctx.load_verify_locations(cafile=tls.ca_file)
    if tls.cert_file:
        ctx.load_cert_chain(tls.cert_file, tls.key_file)
    if tls.insecure_skip_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


# --- the file, reloaded when it changes --------------------------------------------------------
class RegistriesFile:
    """A registries.yaml on disk, re-read whenever it changes; the last good one on errors.

    ``current()`` is called on every pull: one ``stat``. ``default_endpoint`` False
    is k3s' ``--disable-default-registry-endpoint`` (see :meth:`Registries.endpoints`). A missing file is the empty
    configuration. ``on_error`` hears each new problem once (the agent turns it into a
    Node event); ``on_reload`` each configuration taken into use. Thread-safe: the
    CLI and the agent's event loop may share one.
    """

    def __init__(
        self,
        path: Path | None,
        *,
        on_error: Callable[[str], None] | None = None,
        on_reload: Callable[[Registries], None] | None = None,
        default_endpoint: bool = True,
    ) -> None:
        self.path = path
        self.default_endpoint = default_endpoint
        self.on_error = on_error
        self.on_reload = on_reload
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._config = Registries()
        self._contexts: dict[TLSConfig, ssl.SSLContext] = {}
        self.error = ""  # the problem with the file on disk now ("" when none)
        self.loads = 0

    def current(self) -> Registries:
        if self.path is None:
            return self._config
        try:
            st = os.stat(self.path)
            stamp: tuple[int, int, int] | None = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None
        with self._lock:
            if stamp == self._stamp and self.loads:
                return self._config
            self._stamp = stamp
            self._load(stamp is not None)
            return self._config

    def _load(self, exists: bool) -> None:
        assert self.path is not None
        self.loads += 1
        try:
            config = parse(self.path.read_text(), source=str(self.path)) if exists else Registries()
        except (RegistriesError, OSError, UnicodeDecodeError) as exc:
            message = f"cannot use {self.path}: {exc}; keeping the previous registry configuration"
            self.error = message
            log.error("%s", message)
            if self.on_error is not None:
                self.on_error(message)
            return
        self.error = ""
        for warning in config.warnings:
            log.warning("%s", warning)
        self._config = config
        self._contexts.clear()
        if exists:
            log.info(
                "registry configuration %s: mirrors for %s",
                self.path,
                ", ".join(sorted(config.mirrors)) or "no registry",
            )
        if self.on_reload is not None:
            self.on_reload(config)

    def ssl_for(self, endpoint: Endpoint) -> ssl.SSLContext | bool:
        """What aiohttp's ``ssl=`` needs for this endpoint (True: the default checks)."""
        tls = endpoint.config.tls
        if endpoint.insecure or tls is None:
            return True
        with self._lock:
            ctx = self._contexts.get(tls)
            if ctx is None:
                try:
                    ctx = ssl_context(tls)
                except (OSError, ssl.SSLError) as exc:
                    raise protocol.ImagePullError(
                        f"TLS configuration for {endpoint.host} in {self.path}: {exc}"
                    ) from exc
                self._contexts[tls] = ctx
            return ctx
