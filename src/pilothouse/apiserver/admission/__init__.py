"""Admission: what happens to a write after it is decoded and before it is stored.

Upstream's design (``k8s.io/apiserver/pkg/admission``): an ordered list of
plugins, run in two phases. Mutating plugins (``admit``) run first, in order,
and may change the object; then the object is validated; then validating
plugins (``validate``) run, in the same order, and may only refuse. The order
is upstream's (:mod:`chain` lists it), so a LimitRange default is in place
before ResourceQuota counts it, and quota is charged last, only for writes every
other plugin accepted.

- :mod:`interface`: the attributes a plugin sees and the plugin base class.
- :mod:`chain`: the plugins in order, ``--enable-admission-plugins`` and
  ``--disable-admission-plugins``, and the two phases.
- :mod:`config`: ``--admission-control-config-file`` (AdmissionConfiguration).
- one module per plugin.
"""
