"""Choosing a volume for a claim (upstream's ``persistentVolumeOrderedIndex.findByClaim``).

Volumes are grouped by their set of access modes. A claim may use a volume that
offers more modes than it asks for, so every group offering all of the claim's
modes is searched, the groups with the fewest modes first: a ReadWriteOnce
claim takes a ReadWriteOnce volume before a ReadWriteOnce+ReadOnlyMany one.
Within a group the smallest volume that fits wins
(:func:`pilothouse.api.pvhelpers.find_matching_volume`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pilothouse.api import pvhelpers

Obj = dict[str, Any]


def find_best_match(claim: Obj, volumes: Iterable[Obj], *, delay_binding: bool) -> Obj | None:
    wanted = set((claim.get("spec") or {}).get("accessModes") or ())
    groups: dict[frozenset[str], list[Obj]] = {}
    for volume in volumes:
        modes = frozenset((volume.get("spec") or {}).get("accessModes") or ())
        groups.setdefault(modes, []).append(volume)
    candidates = sorted(
        (modes for modes in groups if wanted <= modes), key=lambda m: (len(m), sorted(m))
    )
    for modes in candidates:
        found = pvhelpers.find_matching_volume(claim, groups[modes], delay_binding=delay_binding)
        if found is not None:
            return found
    return None
