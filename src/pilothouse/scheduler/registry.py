"""The one explicit list of in-tree plugins: name → factory (upstream ``plugins/registry.go``).

No plugin registers itself on import; a scheduler built with another registry
(tests, out-of-tree plugins) passes it to :class:`~pilothouse.scheduler.scheduler.Scheduler`.
"""

from __future__ import annotations

from pilothouse.scheduler.framework import runtime


def default_registry() -> dict[str, runtime.Factory]:
    from pilothouse.scheduler.plugins import (
        defaultbinder,
        defaultpreemption,
        interpodaffinity,
        nodeaffinity,
        nodename,
        nodeports,
        nodeunschedulable,
        podtopologyspread,
        prioritysort,
        schedulinggates,
        tainttoleration,
        volumebinding,
    )
    from pilothouse.scheduler.plugins.noderesources import balanced_allocation, fit

    return {
        schedulinggates.NAME: schedulinggates.new,
        prioritysort.NAME: prioritysort.new,
        nodeunschedulable.NAME: nodeunschedulable.new,
        nodename.NAME: nodename.new,
        tainttoleration.NAME: tainttoleration.new,
        nodeaffinity.NAME: nodeaffinity.new,
        nodeports.NAME: nodeports.new,
        fit.NAME: fit.new,
        volumebinding.NAME: volumebinding.new,
        podtopologyspread.NAME: podtopologyspread.new,
        interpodaffinity.NAME: interpodaffinity.new,
        defaultpreemption.NAME: defaultpreemption.new,
        balanced_allocation.NAME: balanced_allocation.new,
        defaultbinder.NAME: defaultbinder.new,
    }
