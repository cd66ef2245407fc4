"""Scheduler plugins, one folder each (upstream ``framework/plugins``); the registry that
names them is :mod:`pilothouse.scheduler.registry`."""
