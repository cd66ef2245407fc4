"""``pilothouse``: one program, thin wiring from subcommands to components."""

from __future__ import annotations

import argparse
import importlib
import sys

from pilothouse import __version__
from pilothouse.cli import kubectl

# Subcommand modules, imported only when used: `pilothouse server` should not pay
# for the scheduler's numpy or the node's runtime at start-up.
SUBCOMMANDS = {
    "server": "pilothouse.cli.server",
    "agent": "pilothouse.cli.agent",
    "kubectl": "pilothouse.cli.kubectl",
    "controller-manager": "pilothouse.cli.controller_manager",
    "scheduler": "pilothouse.cli.scheduler",
    "simulate": "pilothouse.cli.simulate",
    "images": "pilothouse.cli.images",
    "secrets-encrypt": "pilothouse.cli.secrets_encrypt",
    "kubeconfig": "pilothouse.cli.kubeconfig",
    "token": "pilothouse.cli.token",
    "history": "pilothouse.cli.history",
    "dashboard": "pilothouse.cli.dashboard",
    "dev": "pilothouse.cli.dev",
}

DESCRIPTION = """\
pilothouse runs a Kubernetes-compatible cluster: the API server, controllers,
scheduler and a node agent in one process, or as separate pieces.

  pilothouse server          run an all-in-one cluster (needs root for real pods)
  pilothouse agent --server URL --token TOKEN
                             join this machine to a cluster as a node
  pilothouse kubectl ...     run kubectl against the local server
  pilothouse controller-manager --kubeconfig FILE
                             run the control loops against any API server
  pilothouse scheduler --kubeconfig FILE [--config FILE]
                             run the scheduler against any API server
  pilothouse simulate --kubeconfig FILE --nodes N
                             hollow nodes for scale tests and capacity planning
  pilothouse images import|ls|rm|pull
                             the node's container images (air-gapped: import archives)
  pilothouse secrets-encrypt status|enable|disable|rotate-keys|reencrypt
                             encryption at rest of Secrets (keys managed for you)
  pilothouse kubeconfig --user NAME [--group G]...
                             a kubeconfig for a person, from an approved CSR
  pilothouse token create|list|delete
                             bootstrap tokens that join nodes
  pilothouse history KIND/NAME [-n NS] [--diff] [--at TIME|RV]
                             every stored revision of an object, who wrote it, diffs
  pilothouse dashboard [--port N] [--no-browser]
                             the web dashboard on 127.0.0.1 with your kubeconfig
  pilothouse dev cluster --servers 3 --agents 2
                             a multi-machine cluster on this machine (network namespaces)

Start with `pilothouse server --help`.
"""


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pilothouse",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"pilothouse {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in SUBCOMMANDS.items():
        if only is None or name == only:
            importlib.import_module(module).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    # `pilothouse kubectl ...` passes everything after `kubectl` through untouched.
    if args_list and args_list[0] == "kubectl":
        return kubectl.run_passthrough(args_list[1:])
    command = args_list[0] if args_list and args_list[0] in SUBCOMMANDS else None
    parser = build_parser(only=command)
    args = parser.parse_args(args_list)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
