"""The Pod Security Standards (upstream ``k8s.io/pod-security-admission``), as pure functions.

:mod:`levels` reads a namespace's ``pod-security.kubernetes.io/*`` labels into a
policy (enforce, audit, warn: each a level and a version); :mod:`baseline` and
:mod:`restricted` hold the checks of each level in each version's form, :mod:`checks`
lists them with the versions they start at; :mod:`evaluator`
picks the checks of a level at a version and words the result as upstream does
(``violates PodSecurity "restricted:latest": privileged (container "c" must not set
securityContext.privileged=true), …``).

No I/O here: this package is part of the bottom ``api`` layer.
"""
