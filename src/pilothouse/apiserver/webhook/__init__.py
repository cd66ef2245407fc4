"""Calling out of the API server: the client every server-to-backend call shares
(upstream's ``k8s.io/apiserver/pkg/util/webhook`` and ``util/proxy``).

- :mod:`resolver`: where a Service's backend is reached — a ready endpoint of the
  Service, else its cluster IP (k3s runs kube-apiserver with
  ``--enable-aggregator-routing``: the server may have no service proxy of its own).
- :mod:`client`: one connection pool for every admission webhook call, TLS contexts
  per CA bundle, ``clientConfig.url`` or ``clientConfig.service``, and transport
  failures worded as Go's HTTP client words them (``Post "https://…": dial tcp
  …: connect: connection refused``), which upstream puts into its messages.
"""
