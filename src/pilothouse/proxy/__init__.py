"""The service proxy that runs in every node agent: Services and their
EndpointSlices become nftables rules in a table of its own (``pilothouse-proxy``).

- :mod:`.model` — Service ports and endpoints as the rules need them;
- :mod:`.rules` — the ruleset, rendered per Service port;
- :mod:`.state` — what is installed, and the transaction to what should be;
- :mod:`.proxier` — the informer-driven sync loop;
- :mod:`.kernel` — the seam to the machine (``nft``, ``conntrack``, ``/proc``),
  with :mod:`.fake` for tests without root.
"""
