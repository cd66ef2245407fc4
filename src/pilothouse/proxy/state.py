"""What the proxy has installed, and the one transaction that moves it to what it
should install (a full rewrite, or only the Services that changed).

:class:`Ruleset` keeps, per Service, the :class:`~pilothouse.proxy.rules.Rules`
it last installed, and the chains, map/set elements and affinity sets they add
up to. Several Services may contribute the same element (two Services share a
pod: one hairpin element); an element stays while any Service wants it, and if
two want different values for one key (two Services claiming one external IP
and port) the first by name wins.

Planning never changes the state: :meth:`Ruleset.full` and
:meth:`Ruleset.partial` return the script and a ``commit`` callable the
proxier calls only after ``nft`` accepted the script, so a failed transaction
leaves both the kernel and this record as they were.

Chains that stop being used are flushed at once and deleted a second later, in
a later transaction (upstream's rule: on kernels before 6.2 a chain a map
element pointed to stays busy for a moment after the element is deleted).
Single event loop; no locking.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pilothouse.proxy import rules

STALE_CHAIN_DELAY = 1.0

ElementKey = tuple[str, str]


@dataclass
class Plan:
    script: str
    commit: Callable[[], None]
    full: bool
    lines: int


def _effective(owners: dict[str, str] | None) -> str | None:
    if not owners:
        return None
    return owners[min(owners)]


class Ruleset:
    def __init__(self, cfg: rules.Config) -> None:
        self.cfg = cfg
        self.by_service: dict[str, rules.Rules] = {}
        self.chains: dict[str, tuple[str, ...]] = {}
        self.elements: dict[ElementKey, dict[str, str]] = {}
        self.affinity: dict[str, int] = {}
        self.stale: dict[str, float] = {}
        self.installed = False

    # --- a full rewrite -----------------------------------------------------------------
    def full(self, services: dict[str, rules.Rules]) -> Plan:
        """Replace the whole table in one transaction (first sync, after a failure, and
        now and then to undo anything done to the table behind our back)."""
        t = self.cfg.table
        out = [f"add table ip {t}", f"delete table ip {t}", *rules.skeleton(self.cfg)]
        chains: dict[str, tuple[str, ...]] = {}
        elements: dict[ElementKey, dict[str, str]] = {}
        affinity: dict[str, int] = {}
        for key in sorted(services):
            r = services[key]
            chains.update(r.chains)
            affinity.update(r.affinity_sets)
            for ek, value in r.elements.items():
                elements.setdefault(ek, {})[key] = value
        out += [rules.affinity_set_line(t, n, s) for n, s in sorted(affinity.items())]
        # Every chain exists before any rule jumps to one.
        out += [f"add chain ip {t} {name}" for name in chains]
        for name, body in chains.items():
            out += [f"add rule ip {t} {name} {r}" for r in body]
        for (container, k), owners in elements.items():
            out.append(rules.element_line("add", t, container, k, str(_effective(owners))))

        def commit() -> None:
            self.by_service = dict(services)
            self.chains = chains
            self.elements = elements
            self.affinity = affinity
            self.stale = {}
            self.installed = True

        return Plan("\n".join(out) + "\n", commit, True, len(out))

    # --- only what changed ----------------------------------------------------------------
    def partial(self, changes: dict[str, rules.Rules | None], now: float) -> Plan:
        """Rewrite the chains and elements of the Services in ``changes`` (None: the
        Service is gone), and delete chains that have been stale long enough."""
        t = self.cfg.table
        out: list[str] = []
        chains_after = dict(self.chains)
        stale_after = dict(self.stale)
        # 1. Chains flushed by an earlier sync and still unused: delete them now.
        for name, since in self.stale.items():
            if now - since >= STALE_CHAIN_DELAY:
                out.append(f"delete chain ip {t} {name}")
                del stale_after[name]
        old_chains: set[str] = set()
        new_chains: dict[str, tuple[str, ...]] = {}
        new_affinity: dict[str, int] = {}
        touched: set[ElementKey] = set()
        for key, new in changes.items():
            old = self.by_service.get(key)
            if old is not None:
                old_chains |= set(old.chains)
                touched |= set(old.elements)
            if new is not None:
                new_chains.update(new.chains)
                new_affinity.update(new.affinity_sets)
                touched |= set(new.elements)
        # 2. Elements: the effective value before and after, key by key.
        elements_after: dict[ElementKey, dict[str, str]] = {}
        deletes, adds = [], []
        for ek in sorted(touched):
            owners = dict(self.elements.get(ek, {}))
            for key, new in changes.items():
                owners.pop(key, None)
                if new is not None and ek in new.elements:
                    owners[key] = new.elements[ek]
            elements_after[ek] = owners
            before, after = _effective(self.elements.get(ek)), _effective(owners)
            if before == after:
                continue
            if before is not None:
                deletes.append(rules.element_line("delete", t, ek[0], ek[1], ""))
            if after is not None:
                adds.append(rules.element_line("add", t, ek[0], ek[1], after))
        # 3. Affinity sets that are new (they are never changed in place).
        affinity_after = dict(self.affinity)
        for name, seconds in new_affinity.items():
            if name not in self.affinity:
                out.append(rules.affinity_set_line(t, name, seconds))
            affinity_after[name] = seconds
        out += deletes
        # 4. Chains: new ones made, changed ones rewritten (all exist before any rule
        #    jumps to one).
        rewrite = [n for n, body in new_chains.items() if self.chains.get(n) != body]
        for name in rewrite:
            if name in self.chains:
                out.append(f"flush chain ip {t} {name}")
            else:
                out.append(f"add chain ip {t} {name}")
                if name in stale_after:
                    out.append(f"flush chain ip {t} {name}")
                    del stale_after[name]
        for name in rewrite:
            out += [f"add rule ip {t} {name} {r}" for r in new_chains[name]]
            chains_after[name] = new_chains[name]
        out += adds
        # 5. Chains no Service uses any more: flushed now, deleted by a later sync.
        for name in sorted(old_chains - set(new_chains)):
            out.append(f"flush chain ip {t} {name}")
            chains_after.pop(name, None)
            stale_after[name] = now
        by_service_after = dict(self.by_service)
        for key, new in changes.items():
            if new is None:
                by_service_after.pop(key, None)
            else:
                by_service_after[key] = new
        # 6. Affinity sets nobody uses (their chains were flushed above).
        used = {n for r in by_service_after.values() for n in r.affinity_sets}
        for name in sorted(set(affinity_after) - used):
            out.append(f"delete set ip {t} {name}")
            del affinity_after[name]

        def commit() -> None:
            self.by_service = by_service_after
            self.chains = chains_after
            self.stale = stale_after
            self.affinity = affinity_after
            for ek, owners in elements_after.items():
                if owners:
                    self.elements[ek] = owners
                else:
                    self.elements.pop(ek, None)

        return Plan("\n".join(out) + ("\n" if out else ""), commit, False, len(out))

    def pending_stale(self, now: float) -> bool:
        return any(now - since >= STALE_CHAIN_DELAY for since in self.stale.values())
