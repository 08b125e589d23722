"""FACADE_LOG_LEVEL=DEBUG must not turn on library loggers that print patient data."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from server.__main__ import _setup_logging
from server.log_setup import PlainFormatter


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    pymongo = logging.getLogger("pymongo")
    saved = root.level, list(root.handlers), pymongo.level
    yield
    root.setLevel(saved[0])
    root.handlers[:] = saved[1]
    pymongo.setLevel(saved[2])


def test_debug_leaves_pymongo_command_documents_out(restored_logging: None) -> None:
    # pymongo.command logs whole commands and replies at DEBUG: cache keys name NHS
    # numbers and cached documents are Patients.
    logging.getLogger().handlers[:] = []  # as at process start (basicConfig skips a configured root)
    _setup_logging("DEBUG")
    assert logging.getLogger("facade").isEnabledFor(logging.DEBUG)
    assert not logging.getLogger("pymongo.command").isEnabledFor(logging.DEBUG)
    assert logging.getLogger("pymongo.command").isEnabledFor(logging.WARNING)


def test_the_plain_formatter_writes_the_time_as_logging_does_across_seconds() -> None:
    """The date and time are formatted once per second; every line still reads as the
    standard formatter would write it, on either side of a second's edge."""
    ours, standard = PlainFormatter("%(asctime)s %(message)s"), logging.Formatter("%(asctime)s %(message)s")
    for created in (1764466800.001, 1764466800.999, 1764466801.0, 1764466801.5, 1764466799.25, 1764553200.75):
        record = logging.LogRecord("facade", logging.INFO, "", 0, "line", (), None)
        record.created, record.msecs = created, (created - int(created)) * 1000
        assert ours.format(record) == standard.format(record)
