"""The audit log: who did what, when, and what the server answered (upstream's
``k8s.io/apiserver/pkg/audit`` with the log backend).

- :mod:`policy`: ``--audit-policy-file`` (audit.k8s.io Policy): which requests are
  recorded at which level (None, Metadata, Request, RequestResponse), which stages
  are left out.
- :mod:`event`: the ``audit.k8s.io/v1`` Event of one request, filled in as the
  request goes (metadata at authentication, the request object when decoded, the
  response when it is written) and emitted at each stage.
- :mod:`backend`: JSON lines (or upstream's legacy text) to ``--audit-log-path``,
  rotated by size, number of backups and age as lumberjack rotates them.
- :mod:`auditor`: the glue to the HTTP server (the request context's observer).
"""
