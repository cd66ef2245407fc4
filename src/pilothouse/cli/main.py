"""``pilothouse``: one program, thin wiring from subcommands to components."""

from __future__ import annotations

import argparse
import sys

from pilothouse import __version__
from pilothouse.cli import controller_manager, images, kubectl, scheduler, server, simulate

DESCRIPTION = """\
pilothouse runs a Kubernetes-compatible cluster: the API server, controllers,
scheduler and a node agent in one process, or as separate pieces.

  pilothouse server          run an all-in-one cluster (needs root for real pods)
  pilothouse kubectl ...     run kubectl against the local server
  pilothouse controller-manager --kubeconfig FILE
                             run the control loops against any API server
  pilothouse scheduler --kubeconfig FILE [--config FILE]
                             run the scheduler against any API server
  pilothouse simulate --kubeconfig FILE --nodes N
                             hollow nodes for scale tests and capacity planning
  pilothouse images import|ls|rm|pull
                             the node's container images (air-gapped: import archives)

Start with `pilothouse server --help`.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pilothouse",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"pilothouse {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    server.add_parser(sub)
    kubectl.add_parser(sub)
    controller_manager.add_parser(sub)
    scheduler.add_parser(sub)
    simulate.add_parser(sub)
    images.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    # `pilothouse kubectl ...` passes everything after `kubectl` through untouched.
    if args_list and args_list[0] == "kubectl":
        return kubectl.run_passthrough(args_list[1:])
    parser = build_parser()
    args = parser.parse_args(args_list)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
