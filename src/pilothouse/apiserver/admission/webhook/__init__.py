"""Admission webhooks: MutatingAdmissionWebhook and ValidatingAdmissionWebhook.

Upstream's ``k8s.io/apiserver/pkg/admission/plugin/webhook``, in the same parts:

- :mod:`hooks`: the webhooks of every configuration, compiled once per change of
  the configurations (read from the watch cache: a configuration written is in
  effect for the next request), in upstream's order (configurations by name,
  webhooks in their order);
- :mod:`matching`: whether a webhook applies to a request — rules (with
  ``matchPolicy: Equivalent`` through the resources stored in the same place),
  scope, namespace and object selectors, match conditions;
- :mod:`review`: the ``AdmissionReview`` sent and the checks of the answer, with
  upstream's messages;
- :mod:`dispatch`: mutating webhooks one after another (JSON patches applied in
  turn, ``reinvocationPolicy: IfNeeded``), validating webhooks all at once;
  ``failurePolicy``, ``sideEffects`` under dry run, warnings, audit annotations;
- :mod:`plugins`: the two admission plugins the chain runs.

Requests are admitted concurrently; a dispatch keeps its state on the stack, and
the compiled webhooks are immutable values shared by all.
"""
