"""Command-line entry points: ``pilothouse server | kubectl | …``."""
