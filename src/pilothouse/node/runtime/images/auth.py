"""Registry credentials: from imagePullSecrets to the ones that apply to an image.

``auth_from_dockerconfig`` reads the ``data`` of a ``kubernetes.io/dockerconfigjson``
(``.dockerconfigjson``) or ``kubernetes.io/dockercfg`` (``.dockercfg``) Secret.
``matching`` picks the credentials whose registry key matches an image, most specific
first, as the kubelet's keyring does: keys may carry a scheme and a path prefix
(``https://registry.example.com:5000/team``) and ``*`` wildcards per host label.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import json
import logging
from collections.abc import Iterable
from typing import Any

from pilothouse.node.runtime import protocol
from pilothouse.node.runtime.images import reference

log = logging.getLogger(__name__)

_DOCKER_HUB_ALIASES = {
    "docker.io",
    "index.docker.io",
    "registry-1.docker.io",
    "registry.hub.docker.com",
}


def auth_from_dockerconfig(secret_data: dict[str, Any]) -> list[protocol.RegistryAuth]:
    """Credentials in a Secret's ``data`` (values base64 as the API serves them, or plain).

    Unreadable entries are skipped with a log line: a broken pull secret must not stop
    a pull that may not need it.
    """
    out: list[protocol.RegistryAuth] = []
    for key in (".dockerconfigjson", ".dockercfg"):
        raw = secret_data.get(key)
        if raw is None:
            continue
        doc = _decode_json(raw)
        if not isinstance(doc, dict):
            log.warning("pull secret %s is not a JSON object; ignored", key)
            continue
        auths = doc.get("auths", {}) if key == ".dockerconfigjson" else doc
        if not isinstance(auths, dict):
            continue
        for server, entry in auths.items():
            if isinstance(entry, dict):
                cred = _entry_auth(str(server), entry)
                if cred is not None:
                    out.append(cred)
    return out


def _decode_json(raw: Any) -> Any:
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    if not isinstance(raw, str):
        return raw
    text = raw.strip()
    if not text.startswith("{"):
        try:
            text = base64.b64decode(text, validate=False).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _entry_auth(server: str, entry: dict[str, Any]) -> protocol.RegistryAuth | None:
    username = str(entry.get("username") or "")
    password = str(entry.get("password") or "")
    if entry.get("auth") and not username:
        try:
            decoded = base64.b64decode(str(entry["auth"])).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            log.warning("pull secret entry for %s has an unreadable auth field", server)
            return None
        username, _, password = decoded.partition(":")
    token = str(entry.get("identitytoken") or entry.get("registrytoken") or "")
    if not (username or password or token):
        return None
    return protocol.RegistryAuth(
        registry=normalize_registry(server), username=username, password=password, token=token
    )


def normalize_registry(server: str) -> str:
    """``https://index.docker.io/v1/`` → ``docker.io``; ``http://h:5000/v2/x`` → ``h:5000/x``."""
    text = server.strip()
    scheme, sep, rest = text.partition("://")
    if sep and scheme.lower() in ("http", "https"):
        text = rest
    host, _, path = text.partition("/")
    host = host.lower()
    path = path.strip("/")
    for api in ("v1", "v2"):
        if path == api or path.startswith(api + "/"):
            path = path[len(api) :].lstrip("/")
    if host in _DOCKER_HUB_ALIASES:
        host = reference.DEFAULT_DOMAIN
    return f"{host}/{path}" if path else host


def _split_host_port(host: str) -> tuple[str, str]:
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1], host[end + 2 :] if end + 1 < len(host) else ""
    name, _, port = host.partition(":")
    return name, port


def _key_matches(key: str, ref: reference.Reference) -> bool:
    key_host, _, key_path = key.partition("/")
    key_name, key_port = _split_host_port(key_host)
    ref_name, ref_port = _split_host_port(ref.domain.lower())
    if key_port != ref_port:
        return False
    key_labels = key_name.split(".")
    ref_labels = ref_name.split(".")
    if len(key_labels) != len(ref_labels):
        return False
    if not all(fnmatch.fnmatchcase(r, k) for k, r in zip(key_labels, ref_labels, strict=True)):
        return False
    return not key_path or ref.path == key_path or ref.path.startswith(key_path + "/")


def matching(
    auths: Iterable[protocol.RegistryAuth], ref: reference.Reference
) -> list[protocol.RegistryAuth]:
    """Credentials that apply to ``ref``: exact hosts before wildcards, longer paths first."""
    found = [a for a in auths if _key_matches(normalize_registry(a.registry), ref)]

    def specificity(a: protocol.RegistryAuth) -> tuple[int, int]:
        key = normalize_registry(a.registry)
        return ("*" in key.partition("/")[0], -len(key))

    return sorted(found, key=specificity)


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="…",service="…",scope="a,b"`` → ``("bearer", {...})``.

    Quoted values may hold commas (multi-action scopes), so this is a small scanner
    rather than a split.
    """
    header = header.strip()
    scheme, _, rest = header.partition(" ")
    params: dict[str, str] = {}
    i = 0
    while i < len(rest):
        while i < len(rest) and rest[i] in " ,":
            i += 1
        eq = rest.find("=", i)
        if eq < 0:
            break
        key = rest[i:eq].strip().lower()
        i = eq + 1
        if i < len(rest) and rest[i] == '"':
            i += 1
            value = []
            while i < len(rest) and rest[i] != '"':
                if rest[i] == "\\" and i + 1 < len(rest):
                    i += 1
                value.append(rest[i])
                i += 1
            i += 1  # closing quote
            params[key] = "".join(value)
        else:
            end = rest.find(",", i)
            end = len(rest) if end < 0 else end
            params[key] = rest[i:end].strip()
            i = end
    return scheme.lower(), params
