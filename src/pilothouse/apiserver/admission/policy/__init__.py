"""ValidatingAdmissionPolicy: rules in CEL, enforced in the server without a webhook.

Upstream's ``k8s.io/apiserver/pkg/admission/plugin/policy/validating``, in parts:

- :mod:`policies`: the policies and their bindings, compiled once per change (read
  from the watch cache, like webhook configurations);
- :mod:`matching`: ``matchConstraints`` and a binding's ``matchResources`` (named rules,
  exclusions, selectors, ``matchPolicy``);
- :mod:`evaluate`: params (``paramKind``/``paramRef``), variables, match conditions,
  validations and their messages, audit annotations, and what each
  ``validationActions`` entry (Deny, Warn, Audit) makes of a failure;
- :mod:`plugin`: the admission chain's ``ValidatingAdmissionPolicy`` plugin.

The policy's ``status.typeChecking`` is written by the
``validatingadmissionpolicy-status`` controller (:mod:`pilothouse.api.admission_typecheck`),
as upstream's kube-controller-manager does; the ``authorizer`` of expressions is
:mod:`pilothouse.apiserver.admission.celauthorizer`.

Requests are evaluated concurrently; compiled policies are immutable and shared.
"""
