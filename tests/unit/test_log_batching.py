"""The access log's handler writes one event-loop iteration's lines together, in order,
and never holds a warning or a line logged off the loop."""

from __future__ import annotations

import asyncio
import io
import logging
import threading

from server.log_setup import _MAX_PENDING, LoopBatchedStreamHandler


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def _logger(stream: CountingStream) -> logging.Logger:
    log = logging.getLogger(f"test.batching.{id(stream)}")
    log.propagate = False
    log.setLevel(logging.INFO)
    handler = LoopBatchedStreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    return log


async def test_lines_of_one_loop_iteration_leave_in_one_write_at_its_end():
    stream = CountingStream()
    log = _logger(stream)
    for n in range(5):
        log.info("line %d", n)
    assert stream.getvalue() == ""  # not yet: the iteration is still running
    await asyncio.sleep(0)  # the loop runs the flush callback
    await asyncio.sleep(0)
    assert stream.getvalue() == "".join(f"line {n}\n" for n in range(5))
    assert stream.writes == 1


async def test_a_warning_is_written_at_once_after_what_is_pending():
    stream = CountingStream()
    log = _logger(stream)
    log.info("first")
    log.warning("second")
    assert stream.getvalue() == "first\nsecond\n"


async def test_a_loop_that_never_yields_still_writes_every_so_often():
    stream = CountingStream()
    log = _logger(stream)
    for n in range(_MAX_PENDING * 3):
        log.info("n=%d", n)
    assert stream.getvalue().count("\n") == _MAX_PENDING * 3
    assert stream.writes == 3


def test_without_a_running_loop_each_line_is_written_at_once():
    stream = CountingStream()
    log = _logger(stream)
    log.info("at start-up")
    assert stream.getvalue() == "at start-up\n"


async def test_a_line_from_another_thread_is_written_in_order_with_the_pending_ones():
    stream = CountingStream()
    log = _logger(stream)
    log.info("on the loop")
    worker = threading.Thread(target=log.info, args=("off the loop",))
    worker.start()
    worker.join()
    assert stream.getvalue() == "on the loop\noff the loop\n"


async def test_flush_writes_what_is_pending():
    stream = CountingStream()
    log = _logger(stream)
    log.info("pending")
    for handler in log.handlers:
        handler.flush()
    assert stream.getvalue() == "pending\n"
