"""What a container's command would come to, for runtimes that run nothing.

Hollow nodes (``pilothouse simulate``) and the fake runtime start no process, yet Jobs
must finish on them. This module reads a container's argv and tells how long it would
run and how it would exit, for the forms batch work is usually written in:

* ``sleep N`` — exits 0 after N seconds (``N`` as busybox and coreutils take it:
  a decimal number with an optional ``s``/``m``/``h``/``d`` suffix; several are summed);
* ``true`` and ``:`` exit 0 at once, ``false`` exits 1;
* ``sh -c SCRIPT`` (also ``bash``, ``ash``, ``/bin/sh``, and ``-ec``/``-xc``…): the
  script's simple commands separated by ``;``, ``&&``, ``||`` or newlines, each one of
  the above, ``exit [N]``, or ``echo``/``printf`` (exit 0, output discarded). ``exit``
  ends the script; otherwise its status is the last command's.

Anything else — a server, an unknown program, a script with a command not listed above,
a container with no command (the image's entrypoint is unknown here) — runs until it
is stopped, which is what these runtimes did for every container before.

    >>> outcome(["sh", "-c", "sleep 2; exit 3"])
    Outcome(seconds=2.0, exit_code=3)

No I/O, no clock: callers decide when "now" is.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

SHELLS = frozenset({"sh", "bash", "ash", "dash", "zsh", "busybox-sh"})
_SECONDS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_RE = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)([smhd]?)\Z")
_OPERATORS = frozenset({";", "&&", "||", "\n"})


@dataclass(frozen=True)
class Outcome:
    """A container that exits with ``exit_code`` ``seconds`` after it starts."""

    seconds: float
    exit_code: int


class _Unknown(Exception):
    """A command this module cannot tell the end of: the container runs until stopped."""


def outcome(argv: Sequence[str]) -> Outcome | None:
    """How the process ``argv`` would end, or None if it would run until stopped."""
    try:
        return _run(list(argv))
    except _Unknown:
        return None


def container_argv(container: Mapping[str, Any]) -> list[str]:
    """The argv a pod's container would run, as far as the pod spec alone tells.

    ``command`` replaces the image's entrypoint and ``args`` its cmd; with ``args``
    alone the entrypoint is the image's, which busybox-like images do not have, so the
    args are taken as the whole argv."""
    command = [str(a) for a in container.get("command") or []]
    args = [str(a) for a in container.get("args") or []]
    return command + args


def _run(argv: list[str]) -> Outcome:
    if not argv:
        raise _Unknown
    program = argv[0].rsplit("/", 1)[-1]
    if program in SHELLS:
        return _shell(argv[1:])
    return _simple(program, argv[1:])


def _simple(program: str, args: list[str]) -> Outcome:
    if program in ("true", ":"):
        return Outcome(0.0, 0)
    if program == "false":
        return Outcome(0.0, 1)
    if program in ("echo", "printf"):
        return Outcome(0.0, 0)
    if program == "sleep":
        if not args:
            return Outcome(0.0, 1)  # "sleep: missing operand"
        total = 0.0
        for arg in args:
            m = _DURATION_RE.match(arg)
            if m is None:
                return Outcome(0.0, 1)  # "sleep: invalid number"
            total += float(m.group(1)) * _SECONDS[m.group(2)]
        return Outcome(total, 0)
    raise _Unknown


def _shell(args: list[str]) -> Outcome:
    # sh [-e|-x|-eu…] -c SCRIPT [NAME ARGS…]; an interactive shell waits for input.
    script: str | None = None
    for i, arg in enumerate(args):
        if arg.startswith("-") and "c" in arg[1:]:
            if i + 1 >= len(args):
                return Outcome(0.0, 2)  # "sh: -c requires an argument"
            script = args[i + 1]
            break
        if not arg.startswith("-"):
            break
    if script is None:
        raise _Unknown
    return _script(script)


def _tokens(script: str) -> list[str]:
    lexer = shlex.shlex(script.replace("\n", " ; "), posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    try:
        return list(lexer)
    except ValueError:  # unbalanced quotes: the shell refuses the script
        return ["false"]


def _script(script: str) -> Outcome:
    """Run a list of simple commands joined by ``;``, ``&&`` and ``||``."""
    elapsed = 0.0
    status = 0
    pending_op = ";"
    command: list[str] = []
    for token in [*_tokens(script), ";"]:
        if token not in _OPERATORS:
            if token in ("&", "|", "(", ")"):
                raise _Unknown  # pipelines, background jobs and subshells: not modelled
            command.append(token)
            continue
        if command:
            runs = (
                pending_op == ";"
                or (pending_op == "&&" and status == 0)
                or (pending_op == "||" and status != 0)
            )
            if runs:
                if command[0] == "exit":
                    return Outcome(elapsed, _exit_code(command[1:], status))
                result = _simple(command[0].rsplit("/", 1)[-1], command[1:])
                elapsed += result.seconds
                status = result.exit_code
            command = []
        pending_op = token
    return Outcome(elapsed, status)


def _exit_code(args: list[str], last: int) -> int:
    if not args:
        return last
    try:
        return int(args[0]) & 0xFF
    except ValueError:
        return 2  # "exit: Illegal number"
