"""Kubernetes' CEL IP and CIDR libraries (``library/ip.go``, ``library/cidr.go``).

``ip('10.0.0.1')``, ``isIP``, ``ip.isCanonical``, ``family``, ``isUnspecified``,
``isLoopback``, ``isLinkLocalMulticast``, ``isLinkLocalUnicast``, ``isGlobalUnicast``;
``cidr('10.0.0.0/8')``, ``isCIDR``, ``containsIP``, ``containsCIDR``, ``ip()``,
``masked``, ``prefixLength``. As upstream, IPv4-mapped IPv6 addresses and zones are
refused, and a prefix may carry host bits (``masked()`` clears them).

No I/O here: this module is part of the bottom ``api`` layer.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from pilothouse.api.cel.library import opaque
from pilothouse.api.cel.library.lists import LibraryError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Interface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


def _parse_ip(text: str) -> Address:
    if "%" in text:
        raise LibraryError("IP address with zone value is not allowed")
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise LibraryError(
            f'IP Address "{text}" parse error during conversion from string: ParseAddr("{text}"): unable to parse IP'
        ) from None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        raise LibraryError("IPv4-mapped IPv6 address is not allowed")
    return address


def _parse_cidr(text: str) -> Interface:
    if "%" in text:
        raise LibraryError("CIDR with zone value is not allowed")
    address, slash, length = text.partition("/")
    if not slash or not length.isdigit() or (len(length) > 1 and length[0] == "0"):
        raise LibraryError(
            f"network address parse error during conversion from string: netip.ParsePrefix(\"{text}\"): no '/'"
            if not slash
            else f'network address parse error during conversion from string: netip.ParsePrefix("{text}"): bad bits after slash: "{length}"'
        )
    ip = _parse_ip(address)
    bits = int(length)
    if bits > ip.max_prefixlen:
        raise LibraryError(
            f'network address parse error during conversion from string: netip.ParsePrefix("{text}"): prefix length out of range'
        )
    return ipaddress.ip_interface(f"{ip}/{bits}")


def ip(text: Any) -> dict[str, str]:
    if isinstance(text, dict):  # cidr.ip()
        interface = _parse_cidr(opaque.unwrap(opaque.CIDR, text))
        return opaque.wrap(opaque.IP, str(interface.ip))
    if not isinstance(text, str):
        raise opaque.NoSuchOverload()
    return opaque.wrap(opaque.IP, str(_parse_ip(text)))


def is_ip(text: Any) -> bool:
    if not isinstance(text, str):
        raise opaque.NoSuchOverload()
    try:
        _parse_ip(text)
    except LibraryError:
        return False
    return True


def is_canonical(text: Any) -> bool:
    if not isinstance(text, str):
        raise opaque.NoSuchOverload()
    return str(_parse_ip(text)) == text


def _ip(arg: Any) -> Address:
    return ipaddress.ip_address(opaque.unwrap(opaque.IP, arg))


def family(arg: Any) -> int:
    return _ip(arg).version


def is_unspecified(arg: Any) -> bool:
    return _ip(arg).is_unspecified


def is_loopback(arg: Any) -> bool:
    return _ip(arg).is_loopback


def is_link_local_multicast(arg: Any) -> bool:
    address = _ip(arg)
    if address.version == 4:
        return address in ipaddress.ip_network("224.0.0.0/24")
    return address in ipaddress.ip_network("ff02::/16")


def is_link_local_unicast(arg: Any) -> bool:
    address = _ip(arg)
    if address.version == 4:
        return address in ipaddress.ip_network("169.254.0.0/16")
    return address in ipaddress.ip_network("fe80::/10")


def is_global_unicast(arg: Any) -> bool:
    # Go's IsGlobalUnicast: not unspecified, loopback, link-local, multicast or the
    # IPv4 limited broadcast address (private addresses count).
    address = _ip(arg)
    if address.is_unspecified or address.is_loopback or address.is_multicast:
        return False
    if is_link_local_unicast(arg):
        return False
    return not (address.version == 4 and str(address) == "255.255.255.255")


def cidr(text: Any) -> dict[str, str]:
    if not isinstance(text, str):
        raise opaque.NoSuchOverload()
    return opaque.wrap(opaque.CIDR, str(_parse_cidr(text)))


def is_cidr(text: Any) -> bool:
    if not isinstance(text, str):
        raise opaque.NoSuchOverload()
    try:
        _parse_cidr(text)
    except LibraryError:
        return False
    return True


def _cidr(arg: Any) -> Interface:
    return ipaddress.ip_interface(opaque.unwrap(opaque.CIDR, arg))


def contains_ip(prefix: Any, other: Any) -> bool:
    network = _cidr(prefix).network
    address = _parse_ip(other) if isinstance(other, str) else _ip(other)
    return address.version == network.version and address in network


def contains_cidr(prefix: Any, other: Any) -> bool:
    network = _cidr(prefix).network
    inner = (_parse_cidr(other) if isinstance(other, str) else _cidr(other)).network
    return inner.version == network.version and inner.subnet_of(network)  # type: ignore[arg-type]


def masked(prefix: Any) -> dict[str, str]:
    return opaque.wrap(opaque.CIDR, str(_cidr(prefix).network))


def prefix_length(prefix: Any) -> int:
    return _cidr(prefix).network.prefixlen
