"""Table output for ``kubectl get``: the upstream columns of every kind."""
