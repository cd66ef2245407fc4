"""The scheduler: places pending pods on nodes (upstream's kube-scheduler).

Pods whose ``spec.schedulerName`` names one of our profiles wait in a
:mod:`~pilothouse.scheduler.queue`; one scheduling loop takes them in priority
order and runs the profile's :mod:`~pilothouse.scheduler.framework` — PreFilter,
Filter, PostFilter (preemption), PreScore, Score, Reserve — against the
:mod:`~pilothouse.scheduler.cache`, whose node resources live in numpy arrays so
that a filter or a score is one vectorised step over every node. The chosen
node is *assumed* in the cache at once and the binding is written to the API
in the background, many bindings in flight, so the next pod never waits for
the previous write. Plugins live in one folder each under ``plugins/`` and are
named in one explicit registry (:mod:`~pilothouse.scheduler.registry`).
"""
