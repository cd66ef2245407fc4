"""The web dashboard: static pages that are a client of the Kubernetes API.

The pages (``static/``) are plain HTML, CSS and one JavaScript module, written here
and served as files: the browser lists and watches through the API itself, exactly
as kubectl does, so what the dashboard shows is what the API serves, under the
user's own identity and RBAC. Two ways to serve them:

* :mod:`pilothouse.dashboard.pages` — the files, mounted by the API server at
  ``/ui/`` (browsers log in there with a bearer token);
* :mod:`pilothouse.dashboard.proxy` — ``pilothouse dashboard``: the files plus a
  proxy of the API on 127.0.0.1 with the user's kubeconfig, like ``kubectl proxy``.
"""
