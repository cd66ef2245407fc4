"""Kubernetes API types as data: resources, errors, defaults, validation, selectors (no I/O)."""
