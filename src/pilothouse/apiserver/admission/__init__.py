"""Admission: checks and defaults applied to writes after validation, before storage.

Each plugin is an async callable ``(store, operation, object)`` that may change
the object or raise a StatusError. The chain is listed explicitly where the
server builds its registries.
"""
