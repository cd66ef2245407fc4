"""Resource quota accounting (upstream ``pkg/quota/v1``), as pure functions.

:mod:`resourcelist` does the arithmetic on resource lists with upstream's
quantity semantics; :mod:`evaluators` knows, per resource, what an object
consumes (a pod its requests and limits, a claim its storage, any object one
``count/<resource>.<group>``), which quota scopes it falls under and which
resource names it can be charged for. The quota admission plugin and the
ResourceQuota controller both build on it.

No I/O here: this package is part of the bottom ``api`` layer.
"""
