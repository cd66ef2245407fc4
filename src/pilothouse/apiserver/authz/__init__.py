"""Authorization: may this user do this (upstream's ``Node,RBAC`` authorizer chain).

``attributes`` turns a request into what is being asked (verb, resource, namespace,
name, or a non-resource path); ``authorizer`` asks, in upstream's order, the
privileged group (``system:masters``), the Node authorizer and RBAC, and words the
403 as upstream does. RBAC decides from an index of bindings by subject, kept in
step with the watch cache, so a decision never scans every binding.
"""
