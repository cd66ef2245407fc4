"""Container runtimes behind a CRI-shaped protocol: crun (the real one) and a fake for unit tests."""
