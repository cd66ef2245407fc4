"""API aggregation: APIServices, and other API servers behind this one (kube-aggregator).

Every group-version this server serves itself is a *local* APIService
(``v1.apps``, ``v1.``, … with upstream's priorities, ``Local``/``True``), so
``kubectl get apiservices`` reads as upstream's. An APIService with a ``service``
puts another API server (an extension API server such as metrics-server) behind
its group-version:

- :mod:`registration`: the local APIServices, written at start (``onstart``);
- :mod:`available`: the ``Available`` condition of every APIService, checked as
  upstream's availability controllers check it (Service, endpoints, a discovery
  request), again every 30 s and whenever an APIService, Service or Endpoints
  changes;
- :mod:`proxy`: requests to an aggregated group-version go to the Service, over TLS
  (``caBundle`` or ``insecureSkipTLSVerify``) with the front-proxy client
  certificate and the user in ``X-Remote-*`` headers (:mod:`frontproxy`);
- :mod:`discovery`: the extension servers' resources in this server's discovery
  (legacy and aggregated) and their OpenAPI v3 documents in its index.

:class:`~pilothouse.apiserver.aggregator.aggregator.Aggregator` ties them together.
"""
