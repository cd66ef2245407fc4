"""The scheduling framework: extension points, statuses, per-cycle state, and the
runtime that runs a profile's plugins (upstream ``pkg/scheduler/framework``)."""
