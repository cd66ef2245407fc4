"""Runs the vendored suite as ``kubernetes.e2e_test``, the package its files import
themselves from, beside the installed ``kubernetes`` client (whose wheel leaves the
suite out). Only used by ../test_python_client_suite.py, which runs pytest here."""

from pathlib import Path

import kubernetes

kubernetes.__path__.append(str(Path(__file__).parent / "kubernetes"))
