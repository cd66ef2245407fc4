"""Which container commands end, when and how, on runtimes that run nothing."""

from __future__ import annotations

import pytest

from pilothouse.node.runtime import scripted
from pilothouse.node.runtime.scripted import Outcome


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["sleep", "5"], Outcome(5.0, 0)),
        (["/bin/sleep", "1m", "2.5"], Outcome(62.5, 0)),
        (["sleep", "1h"], Outcome(3600.0, 0)),
        (["sleep", "forever"], Outcome(0.0, 1)),
        (["true"], Outcome(0.0, 0)),
        (["false"], Outcome(0.0, 1)),
        (["sh", "-c", "exit 3"], Outcome(0.0, 3)),
        (["/bin/sh", "-ec", "sleep 2; exit 42"], Outcome(2.0, 42)),
        (["bash", "-c", "echo starting\nsleep 1\nfalse"], Outcome(1.0, 1)),
        (["sh", "-c", "false && sleep 9; exit"], Outcome(0.0, 1)),
        (["sh", "-c", "false || exit 7"], Outcome(0.0, 7)),
        (["sh", "-c", "true && exit 0; sleep 9"], Outcome(0.0, 0)),
        (["sh", "-c", "exit 300"], Outcome(0.0, 300 & 0xFF)),
        (["sh", "-c", "sleep 'unbalanced"], Outcome(0.0, 1)),
        (["sh", "-c"], Outcome(0.0, 2)),
    ],
)
def test_commands_that_end(argv: list[str], expected: Outcome) -> None:
    assert scripted.outcome(argv) == expected


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["httpd", "-f", "-p", "8080"],
        ["sh"],
        ["sh", "-c", "while true; do sleep 1; done"],
        ["sh", "-c", "cat /dev/zero | md5sum"],
        ["sh", "-c", "sleep 1 &"],
    ],
)
def test_commands_that_run_until_stopped(argv: list[str]) -> None:
    assert scripted.outcome(argv) is None


def test_container_argv_joins_command_and_args() -> None:
    assert scripted.container_argv({"command": ["sh", "-c"], "args": ["exit 1"]}) == [
        "sh",
        "-c",
        "exit 1",
    ]
    assert scripted.container_argv({"args": ["sleep", "3"]}) == ["sleep", "3"]
    assert scripted.container_argv({"image": "busybox"}) == []
