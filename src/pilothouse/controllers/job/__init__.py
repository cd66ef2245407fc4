"""The Job controller (upstream's ``pkg/controller/job``): one module per concern.

``controller`` (handlers, sync), ``claim`` (adopting and releasing pods), ``finish``
(whether the Job has finished, its indexes), ``pods`` (creating and deleting pods), ``status``
(counting finished pods through the tracking finalizer), ``indexes`` (Indexed Jobs),
``policy`` (podFailurePolicy, successPolicy), ``backoff`` (delays after failures),
``tracking`` (the finalizer and uncounted pods), ``state`` (what one sync carries).
"""

from pilothouse.controllers.job.controller import JobController

__all__ = ["JobController"]
