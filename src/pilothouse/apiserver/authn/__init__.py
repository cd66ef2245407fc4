"""Authentication: who a request comes from (upstream's ``authentication/request``).

A request is authenticated once, before anything else runs: by its verified client
certificate (``x509``), by a bearer token (the component tokens the server hands
its own components, ``--token-auth-file``, bootstrap tokens, ServiceAccount JWTs),
or — with neither — as ``system:anonymous``. A credential that is present but bad
is a 401, never anonymous. ``impersonation`` then swaps the user when the request
asks to act as someone else and is allowed to. Everything here is synchronous and
reads only memory (the watch cache), so it runs on the event loop without awaiting.
"""
