"""Garbage-collector settings for pilothouse's long-running processes.

A process that has started keeps what it loaded (schemas, field tables, listed
objects) for the rest of its life; CPython's collector would still walk all of
it in every full collection. :func:`settle` moves that heap out of the
collector's sight (``gc.freeze``) and collects young objects less eagerly.
Measured on the API server: +9 % creates/s (bench/api.py), and under the
scheduler benchmark no more 390 ms full collections stalling every request in
flight (SchedulingBasic p99 558 ms → 112 ms, bench/scheduler.py); the middle
generation collected in small steps keeps a write flood's pauses short
(bench/overload.py).

Only for processes (``pilothouse server``, ``agent``, ``scheduler``): the
settings are process-wide, so library code and tests never call it.
"""

from __future__ import annotations

import gc

# Young-generation threshold: 10,000 allocations between collections instead
# of 700 (request handling allocates and frees thousands of small objects).
YOUNG = 10_000
# The middle generation is collected every 2 young collections instead of 20: a write
# flood keeps most of what it allocates (the watch cache holds every object), so 20
# young collections' survivors made one pause of 90-140 ms on the API server under
# bench/overload.py; 2 make it a tenth as long and ten times as often, the same work
# in all. The oldest generation keeps its pace (every 200 young collections: 2 x 100),
# and CPython still runs it only when it has grown by a quarter.
MIDDLE = 2
OLD = 100


def settle() -> None:
    """Call once start-up is done: freeze what is loaded, and collect less often."""
    gc.freeze()
    gc.set_threshold(YOUNG, MIDDLE, OLD)
