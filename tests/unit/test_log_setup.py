"""FACADE_LOG_LEVEL=DEBUG must not turn on library loggers that print patient data."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from server.__main__ import _setup_logging


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
