"""The CronJob controller (upstream's ``pkg/controller/cronjob``).

``controller`` (handlers, sync, history limits), ``timing`` (which scheduled time is
due, when to look again), ``schedule`` (cron expressions, as robfig/cron reads them).
"""

from pilothouse.controllers.cronjob.controller import CronJobController

__all__ = ["CronJobController"]
