"""A kernel for tests and benchmarks without root: it interprets the nft commands
the proxy writes against an in-memory table, as strictly as the kernel would.

A transaction applies to a copy and replaces the table only when every command
succeeded, so a failed transaction changes nothing — as ``nft -f`` behaves.
Errors the kernel would raise are raised here too: a rule or element naming a
chain or set that does not exist, deleting a chain something still jumps to,
deleting an element that is not there, re-adding a map key with another value.
That makes it a check of the proxy's incremental transactions: after any
sequence of partial syncs, :meth:`FakeKernel.snapshot` must equal what a full
sync of the same state produces.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from pilothouse.proxy.kernel import NftError

_REF = re.compile(r"(?:jump|goto) ([\w./-]+)")
_SETREF = re.compile(r"@([\w./-]+)")


@dataclass
class FakeTable:
    chains: dict[str, list[str]] = field(default_factory=dict)
    maps: dict[str, dict[str, str]] = field(default_factory=dict)  # sets: value ""


@dataclass
class FakeKernel:
    sctp: bool = True
    tables: dict[str, FakeTable] = field(default_factory=dict)
    scripts: list[str] = field(default_factory=list)
    conntrack_deletes: list[list[str]] = field(default_factory=list)
    ports_in_use: set[tuple[str, int]] = field(default_factory=set)
    route_localnet: bool = False
    fail_next: str = ""  # if set, the next transaction fails with this message

    async def apply(self, script: str) -> None:
        self.scripts.append(script)
        if self.fail_next:
            message, self.fail_next = self.fail_next, ""
            raise NftError(message)
        work = copy.deepcopy(self.tables)
        for n, line in enumerate(script.splitlines(), 1):
            if line.strip():
                try:
                    _apply(work, line)
                except NftError as exc:
                    raise NftError(f"line {n}: {exc}: {line}") from None
        for table in work.values():
            _check_references(table)
        self.tables = work

    async def delete_conntrack(self, args: list[str]) -> None:
        self.conntrack_deletes.append(list(args))

    def port_in_use(self, protocol: str, port: int, addresses: Iterable[str]) -> bool:
        return (protocol.lower(), port) in self.ports_in_use

    def enable_route_localnet(self) -> None:
        self.route_localnet = True

    def snapshot(self, table: str) -> dict[str, object]:
        """Chains (rules in order) and elements of ``table``, for comparisons."""
        t = self.tables[table]
        return {
            "chains": {k: list(v) for k, v in sorted(t.chains.items())},
            "maps": {k: dict(sorted(v.items())) for k, v in sorted(t.maps.items())},
        }


def _apply(tables: dict[str, FakeTable], line: str) -> None:
    words = line.split(" ", 4)
    verb, what = words[0], words[1]
    if what == "table":
        name = words[3]
        if verb == "add":
            tables.setdefault(name, FakeTable())
        elif verb == "delete":
            if name not in tables:
                raise NftError("No such file or directory")
            del tables[name]
        return
    table = tables.get(words[3])
    if table is None:
        raise NftError("No such file or directory (table)")
    rest = words[4] if len(words) > 4 else ""
    name, _, body = rest.partition(" ")
    if what == "chain":
        if verb == "add":
            table.chains.setdefault(name, [])
        elif verb == "flush":
            _need(name in table.chains)
            table.chains[name] = []
        elif verb == "delete":
            _need(name in table.chains)
            if _chain_referenced(table, name):
                raise NftError("Device or resource busy")
            del table.chains[name]
    elif what == "rule":
        _need(name in table.chains)
        for ref in _REF.findall(body):
            _need(ref in table.chains)
        for ref in _SETREF.findall(body):
            _need(ref in table.maps)
        table.chains[name].append(body)
    elif what in ("map", "set"):
        if verb == "add":
            table.maps.setdefault(name, {})
        elif verb == "delete":
            _need(name in table.maps)
            if any(name in _SETREF.findall(r) for rs in table.chains.values() for r in rs):
                raise NftError("Device or resource busy")
            del table.maps[name]
    elif what == "element":
        _need(name in table.maps)
        inner = body.strip().removeprefix("{").removesuffix("}").strip()
        key, _, value = (p.strip() for p in inner.partition(" : "))
        elements = table.maps[name]
        if verb == "add":
            for ref in _REF.findall(value):
                _need(ref in table.chains)
            if key in elements and elements[key] != value:
                raise NftError("File exists")
            elements[key] = value
        elif verb == "delete":
            _need(key in elements)
            del elements[key]
    else:
        raise NftError(f"unknown command {verb} {what}")


def _need(ok: bool) -> None:
    if not ok:
        raise NftError("No such file or directory")


def _chain_referenced(table: FakeTable, name: str) -> bool:
    for rules in table.chains.values():
        for r in rules:
            if name in _REF.findall(r):
                return True
    return any(name in _REF.findall(v) for m in table.maps.values() for v in m.values())


def _check_references(table: FakeTable) -> None:
    for rules in table.chains.values():
        for r in rules:
            for ref in _REF.findall(r):
                if ref not in table.chains:
                    raise NftError(f"rule refers to missing chain {ref}")
