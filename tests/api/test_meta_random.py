"""Random identifiers: uids and audit IDs (version 4 UUIDs) and generated name suffixes."""

from __future__ import annotations

import os
import re
import uuid

from pilothouse.api import meta

ALPHABET = set("bcdfghjklmnpqrstvwxz2456789")


def test_uids_are_distinct_version_4_uuids_in_canonical_form() -> None:
    uids = [meta.new_uid() for _ in range(5000)]  # crosses several random blocks
    assert len(set(uids)) == len(uids)
    for text in uids[:300]:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


def test_uid_bits_are_not_stuck() -> None:
    # Every hex digit outside the version and variant positions takes many values.
    uids = [meta.random_uuid().replace("-", "") for _ in range(2000)]
    for position in range(32):
        seen = {u[position] for u in uids}
        if position == 12:
            assert seen == {"4"}
        elif position == 16:
            assert seen == set("89ab")
        else:
            assert len(seen) == 16, position


def test_generated_names_take_five_characters_of_upstreams_alphabet() -> None:
    names = [meta.generate_name("web-") for _ in range(3000)]
    assert all(re.fullmatch(r"web-[a-z0-9]{5}", n) for n in names)
    suffixes = [n[4:] for n in names]
    assert set("".join(suffixes)) == ALPHABET
    assert len(set(suffixes)) > 2900
    # Each position uses the whole alphabet (no digit of the draw is stuck).
    for position in range(5):
        assert {s[position] for s in suffixes} == ALPHABET


def test_generated_names_are_trimmed_to_leave_room_for_the_suffix() -> None:
    name = meta.generate_name("x" * 80)
    assert len(name) == 63
    assert name.startswith("x" * meta.MAX_GENERATED_NAME_LENGTH)


def test_a_forked_child_does_not_repeat_its_parents_identifiers() -> None:
    meta.new_uid()  # the parent has a block in hand
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.write(write, meta.new_uid().encode())
        finally:
            os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    child = os.read(read, 100).decode()
    os.close(read)
    assert uuid.UUID(child).version == 4
    assert child != meta.new_uid()
