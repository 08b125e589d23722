"""The audit spool on a real directory (tmp_path): durable ordered appends, draining with
partial commits, torn and unreadable lines, files of dead processes claimed by exactly one
live spool, disk failures, and an event loop that keeps running while the disk is slow."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from server.access import audit_spool
from server.access.audit_spool import AuditSpool


def ev(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "AuditEvent",
        "id": f"e{n:04d}",
        "entity": [{"what": {"reference": "Patient/9000000009"}}],
        **extra,
    }


def lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


async def drain_all(spool: AuditSpool, limit: int = 1000) -> list[str]:
    ids: list[str] = []
    while (batch := await spool.next_batch(limit)) is not None:
        ids += [e["id"] for e in batch.events]
        await spool.commit(batch)
    return ids


def dead_file(directory: Path, name: str, content: bytes) -> Path:
    """A spool file as a process that is gone left it (nobody holds its lock)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{audit_spool.PREFIX}{name}{audit_spool.SUFFIX}"
    path.write_bytes(content)
    return path


async def test_appends_are_on_disk_in_order_when_append_returns(tmp_path: Path) -> None:
    spool = AuditSpool(tmp_path / "spool")
    await spool.open()
    assert spool.path.name.startswith(f"{audit_spool.PREFIX}{os.getpid()}-")
    assert oct(spool.path.stat().st_mode & 0o777) == "0o600"  # audit events are PHI
    for n in range(3):
        await spool.append(ev(n))
        assert [e["id"] for e in lines(spool.path)] == [f"e{i:04d}" for i in range(n + 1)]
    assert spool.has_pending() and spool.holds_own_events()
    await spool.aclose()


async def test_concurrent_appends_keep_call_order_and_share_fsyncs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    syncs: list[int] = []
    real_fsync = os.fsync

    def slow_fsync(fd: int) -> None:
        time.sleep(0.02)  # a slow disk
        syncs.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(audit_spool.os, "fsync", slow_fsync)
    spool = AuditSpool(tmp_path)
    await spool.open()
    syncs.clear()
    await asyncio.gather(*(spool.append(ev(n)) for n in range(200)))
    assert [e["id"] for e in lines(spool.path)] == [f"e{n:04d}" for n in range(200)]
    assert len(syncs) <= 3, "appends waiting for the disk go out together in one write and one fsync"
    await spool.aclose()


async def test_a_slow_disk_never_stalls_the_event_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit_spool.os, "fsync", lambda fd: time.sleep(0.2))
    spool = AuditSpool(tmp_path)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    started = time.monotonic()
    for n in range(3):
        await spool.append(ev(n))
    elapsed = time.monotonic() - started
    task.cancel()
    assert elapsed >= 0.6
    assert ticks >= elapsed / 0.01 * 0.5, f"the loop ran only {ticks} times in {elapsed:.2f}s"
    await spool.aclose()


async def test_drain_in_batches_with_partial_commits(tmp_path: Path) -> None:
    spool = AuditSpool(tmp_path)
    for n in range(7):
        await spool.append(ev(n))
    batch = await spool.next_batch(5)
    assert batch is not None and [e["id"] for e in batch.events] == [f"e{n:04d}" for n in range(5)]
    await spool.commit(batch, stored=2)  # MongoDB took two, then failed
    batch = await spool.next_batch(5)
    assert batch is not None and [e["id"] for e in batch.events] == [f"e{n:04d}" for n in range(2, 7)]
    await spool.commit(batch, stored=0)  # failed at once: nothing moves
    assert await drain_all(spool, limit=3) == [f"e{n:04d}" for n in range(2, 7)]
    assert not spool.has_pending() and spool.path.stat().st_size == 0  # emptied once drained
    assert await spool.next_batch(5) is None
    await spool.append(ev(9))  # appends go on at the start of the emptied file
    assert [e["id"] for e in lines(spool.path)] == ["e0009"]
    await spool.aclose()


async def test_an_event_appended_while_a_batch_drains_is_kept(tmp_path: Path) -> None:
    spool = AuditSpool(tmp_path)
    await spool.append(ev(1))
    batch = await spool.next_batch(10)
    assert batch is not None
    await spool.append(ev(2))  # arrives while ev 1 is being inserted
    await spool.commit(batch)
    assert spool.has_pending() and await drain_all(spool) == ["e0002"]
    await spool.aclose()


async def test_lines_longer_than_a_read_chunk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit_spool, "READ_CHUNK", 16)
    spool = AuditSpool(tmp_path)
    for n in range(3):
        await spool.append(ev(n, outcomeDesc="x" * 200))
    assert await drain_all(spool, limit=2) == ["e0000", "e0001", "e0002"]
    await spool.aclose()


async def test_a_torn_last_line_is_skipped_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    good = b"".join(orjson.dumps(ev(n)) + b"\n" for n in range(2))
    torn = orjson.dumps(ev(2, outcomeDesc="SECRET-NAME"))[:25]
    path = dead_file(tmp_path, "1-20260101T000000-dead", good + torn)
    spool = AuditSpool(tmp_path)
    assert await spool.claim_orphans() == 1 and spool.has_pending()
    with caplog.at_level(logging.WARNING, logger="facade.audit.spool"):
        batch = await spool.next_batch(10)
    assert batch is not None and [e["id"] for e in batch.events] == ["e0000", "e0001"] and batch.skipped == 1
    assert "torn last line" in caplog.text and path.name in caplog.text
    assert "SECRET" not in caplog.text and "e0002" not in caplog.text  # never the content
    await spool.commit(batch)
    assert not path.exists() and not spool.has_pending()  # a drained dead file is deleted
    await spool.aclose()


async def test_a_file_that_is_only_a_torn_line(tmp_path: Path) -> None:
    path = dead_file(tmp_path, "1-x-only-torn", b'{"resourceType":"Aud')
    spool = AuditSpool(tmp_path)
    await spool.claim_orphans()
    assert await drain_all(spool) == [] and not path.exists()
    await spool.aclose()


async def test_unreadable_lines_in_the_middle_are_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    content = (
        orjson.dumps(ev(0)) + b"\n" + b"not json\n" + b'{"no": "id"}\n' + b"[1, 2]\n" + orjson.dumps(ev(1)) + b"\n"
    )
    dead_file(tmp_path, "1-x-middle", content)
    spool = AuditSpool(tmp_path)
    await spool.claim_orphans()
    with caplog.at_level(logging.WARNING, logger="facade.audit.spool"):
        batch = await spool.next_batch(10)
    assert batch is not None and [e["id"] for e in batch.events] == ["e0000", "e0001"] and batch.skipped == 3
    assert caplog.text.count("unreadable line") == 3
    await spool.commit(batch, stored=1)  # only e0000 stored: e0001 comes again, the junk does not
    batch = await spool.next_batch(10)
    assert batch is not None and [e["id"] for e in batch.events] == ["e0001"] and batch.skipped == 0
    await spool.commit(batch)
    await spool.aclose()


async def test_two_processes_never_drain_each_others_live_file(tmp_path: Path) -> None:
    """Two spool objects stand for two worker processes: flock locks are per open file,
    so they exclude each other exactly as two processes would."""
    first, second = AuditSpool(tmp_path), AuditSpool(tmp_path)
    await first.open()
    await second.open()
    assert first.path != second.path
    for n in range(3):
        await first.append(ev(n))
    await second.append(ev(100))
    assert await second.claim_orphans() == 0  # first is alive: its file is not an orphan
    assert await second.next_batch(10) is not None  # only second's own event
    await first.aclose()  # "dies" with three events not drained: the file stays
    assert first.path.exists() and len(lines(first.path)) == 3
    assert await second.claim_orphans() == 1
    assert await drain_all(second) == ["e0000", "e0001", "e0002", "e0100"]  # the dead file's (older) first
    assert not first.path.exists()
    await second.aclose()
    assert not second.path.exists()  # nothing pending: a clean stop leaves no file


async def test_a_dead_file_is_claimed_by_exactly_one_live_spool(tmp_path: Path) -> None:
    path = dead_file(tmp_path, "1-x-dead", b"".join(orjson.dumps(ev(n)) + b"\n" for n in range(4)))
    spools = [AuditSpool(tmp_path) for _ in range(3)]
    claimed = [await s.claim_orphans() for s in spools]
    assert sorted(claimed) == [0, 0, 1]
    owner = spools[claimed.index(1)]
    assert await owner.claim_orphans() == 0  # already its own: not claimed twice
    assert await drain_all(owner) == ["e0000", "e0001", "e0002", "e0003"] and not path.exists()
    for spool in spools:
        await spool.aclose()


async def test_empty_dead_files_and_stale_temporaries_are_removed(tmp_path: Path) -> None:
    empty = dead_file(tmp_path, "1-x-empty", b"")
    stale = tmp_path / f".{audit_spool.PREFIX}1-x-stale{audit_spool.SUFFIX}.new"
    stale.write_bytes(b"")
    old = time.time() - 2 * audit_spool.STALE_TEMPORARY_SECONDS
    os.utime(stale, (old, old))
    young = tmp_path / f".{audit_spool.PREFIX}2-x-young{audit_spool.SUFFIX}.new"
    young.write_bytes(b"")  # maybe a live process between create and lock: left alone
    other = tmp_path / "unrelated.jsonl"
    other.write_bytes(b"{}\n")
    spool = AuditSpool(tmp_path)
    assert await spool.claim_orphans() == 0
    assert not empty.exists() and not stale.exists() and young.exists() and other.exists()
    await spool.aclose()


async def test_a_failed_write_leaves_no_partial_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spool = AuditSpool(tmp_path)
    await spool.append(ev(0))
    real_pwrite = os.pwrite

    def disk_full(fd: int, data: Any, offset: int) -> int:
        real_pwrite(fd, bytes(data)[:10], offset)  # part of the line reaches the file
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(audit_spool.os, "pwrite", disk_full)
    with pytest.raises(OSError):
        await spool.append(ev(1))
    monkeypatch.setattr(audit_spool.os, "pwrite", real_pwrite)
    assert [e["id"] for e in lines(spool.path)] == ["e0000"]  # cut back to the last whole line
    await spool.append(ev(2))
    assert [e["id"] for e in lines(spool.path)] == ["e0000", "e0002"]
    assert await drain_all(spool) == ["e0000", "e0002"]
    await spool.aclose()


async def test_an_unusable_directory_fails_every_append(tmp_path: Path) -> None:
    not_a_directory = tmp_path / "spool"
    not_a_directory.write_text("a file where the spool directory should be")
    spool = AuditSpool(not_a_directory)
    with pytest.raises(OSError):
        await spool.open()
    results = await asyncio.gather(*(spool.append(ev(n)) for n in range(3)), return_exceptions=True)
    assert all(isinstance(r, OSError) for r in results)
    assert not spool.has_pending()
    await spool.aclose()


async def test_a_cancelled_caller_does_not_lose_its_event(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit_spool.os, "fsync", lambda fd: time.sleep(0.1))
    spool = AuditSpool(tmp_path)
    task = asyncio.create_task(spool.append(ev(1)))
    await asyncio.sleep(0.02)
    assert spool.holds_own_events()  # being written: later events must queue behind it
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await spool.append(ev(2))
    assert [e["id"] for e in lines(spool.path)] == ["e0001", "e0002"]
    await spool.aclose()
