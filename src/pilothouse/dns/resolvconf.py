"""resolv.conf: reading it as the kubelet does, and choosing the one pods can use.

:func:`parse` follows the kubelet's ``parseResolvConf``: ``nameserver`` lines
accumulate, the last ``search`` line wins (trailing dots dropped, a bare ``.``
ignored), ``options`` lines merge (a later value of an option replaces the
earlier one); lines starting with ``#`` or ``;`` are comments.

:func:`host_resolv_conf` picks the file a node hands to pods with
``dnsPolicy: Default`` and whose search domains cluster pods inherit (the
kubelet's ``--resolv-conf``). A nameserver on the loopback (systemd-resolved's
127.0.0.53, a local dnsmasq) answers on the host but not from a pod's own
network namespace, so when ``/etc/resolv.conf`` lists only loopback servers and
systemd-resolved's upstream list (``/run/systemd/resolve/resolv.conf``) has real
ones, that file is used instead — what k3s and kubeadm do. The cluster DNS
server itself runs on the host, where loopback resolvers work, and forwards to
``/etc/resolv.conf`` as it is.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

HOST_RESOLV_CONF = Path("/etc/resolv.conf")
SYSTEMD_RESOLVED_UPSTREAMS = Path("/run/systemd/resolve/resolv.conf")
MAX_BYTES = 10 << 20  # as the kubelet: a bigger file is not a resolv.conf


@dataclass(frozen=True)
class ResolvConf:
    nameservers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    errors: tuple[str, ...] = field(default=(), compare=False)


def merge_options(options: list[str], more: list[str]) -> list[str]:
    """Add ``more`` to ``options``; an option already there takes the new value in place."""
    out = list(options)
    for opt in more:
        name = opt.split(":", 1)[0]
        for i, existing in enumerate(out):
            if existing.split(":", 1)[0] == name:
                out[i] = opt
                break
        else:
            out.append(opt)
    return out


def parse(text: str) -> ResolvConf:
    nameservers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    problems: list[str] = []
    for line in text.splitlines():
        fields = line.split()
        if not fields or fields[0].startswith(("#", ";")):
            continue
        key, values = fields[0], fields[1:]
        if key == "nameserver":
            if values:
                nameservers.append(values[0])
            else:
                problems.append("nameserver list is empty")
        elif key == "search":
            searches = [s.removesuffix(".") for s in values if s != "."]
        elif key == "options":
            options = merge_options(options, values)
    return ResolvConf(tuple(nameservers), tuple(searches), tuple(options), tuple(problems))


def read(path: Path) -> ResolvConf:
    """Parse ``path``; raises OSError when it cannot be read."""
    with open(path, "rb") as f:
        data = f.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise OSError(f"{path} is larger than {MAX_BYTES} bytes")
    return parse(data.decode("utf-8", "replace"))


def is_loopback(server: str) -> bool:
    try:
        return ipaddress.ip_address(server.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def only_loopback(conf: ResolvConf) -> bool:
    return bool(conf.nameservers) and all(is_loopback(s) for s in conf.nameservers)


def host_resolv_conf(
    default: Path = HOST_RESOLV_CONF, resolved: Path = SYSTEMD_RESOLVED_UPSTREAMS
) -> Path:
    """The resolv.conf pods should inherit from this host; see the module docstring."""
    try:
        conf = read(default)
    except OSError:
        return default
    if not only_loopback(conf):
        return default
    try:
        alternative = read(resolved)
    except OSError:
        return default
    if alternative.nameservers and not only_loopback(alternative):
        return resolved
    return default
