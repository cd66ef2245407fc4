"""``pilothouse kubectl ARGS…``: the real kubectl, pointed at the local server."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

DEFAULT_DATA_DIR = Path("/var/lib/pilothouse")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "kubectl",
        help="run kubectl with the local server's kubeconfig",
        description="Runs kubectl with KUBECONFIG set to the server's admin kubeconfig "
        "($PILOTHOUSE_DATA_DIR/kubeconfig.yaml, default /var/lib/pilothouse). "
        "Every argument is passed to kubectl unchanged.",
    )
    p.add_argument("args", nargs=argparse.REMAINDER)
    p.set_defaults(func=lambda a: run_passthrough(a.args))


def kubeconfig_path() -> Path:
    data_dir = Path(os.environ.get("PILOTHOUSE_DATA_DIR", str(DEFAULT_DATA_DIR)))
    return data_dir / "kubeconfig.yaml"


def run_passthrough(args: list[str]) -> int:
    binary = shutil.which("kubectl")
    if binary is None:
        print(
            "pilothouse: kubectl is not installed. Install kubectl 1.32 "
            "(https://kubernetes.io/docs/tasks/tools/) and try again.",
            file=sys.stderr,
        )
        return 127
    env = dict(os.environ)
    if "KUBECONFIG" not in env:
        path = kubeconfig_path()
        if not path.exists():
            print(
                f"pilothouse: no kubeconfig at {path}. Is the server running? "
                "Start it with `make up` or `pilothouse server`, or set PILOTHOUSE_DATA_DIR.",
                file=sys.stderr,
            )
            return 1
        env["KUBECONFIG"] = str(path)
    os.execvpe(binary, ["kubectl", *args], env)
