"""Cluster DNS: ``<svc>.<ns>.svc.cluster.local`` and the rest, answered on every node.

Modules, from the wire inwards: :mod:`.nodelocal` (the node component the agent
runs), :mod:`.server` (UDP/TCP, cache, truncation), :mod:`.resolver` (the answers,
as CoreDNS's kubernetes plugin gives them), :mod:`.records` (what the informers
delivered), :mod:`.forward` (everything else, to the host's resolvers),
:mod:`.resolvconf`, :mod:`.link` and :mod:`.metrics`.
"""
