"""Pooled random ids: canonical UUIDs, never repeated, not shared with a forked child."""

from __future__ import annotations

import os
import uuid

from server.random_ids import random_bytes, random_hex, random_uuid


def test_a_random_uuid_is_a_canonical_version_4_uuid():
    for _ in range(2000):  # crosses several pool refills
        text = random_uuid()
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_ids_are_not_repeated_across_pool_refills():
    ids = {random_uuid() for _ in range(20_000)}
    assert len(ids) == 20_000
    assert len(random_hex(16)) == 32 and len(random_bytes(5000)) == 5000  # a request larger than the pool


def test_a_forked_child_does_not_hand_out_its_parents_unread_bytes():
    random_uuid()  # the parent's pool now holds unread bytes
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read)
        os.write(write, random_hex(16).encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    parent = random_hex(16)
    assert len(child) == 32 and child != parent  # with the same pool both would read the same next bytes
