"""FACADE_LOG_FORMAT=json: one JSON object per log line, for a log pipeline.

Each line is {"ts", "level", "logger", "message"} plus, on the request lines, the fields
the request middleware attaches (server/fhir/middleware.py: request id, trace id, type,
interaction, status, duration, cache result, NHS calls). The process's logging set-up
(server/__main__.py logging_config) names this formatter. Nothing here adds a path, a
query or an exception's text, which may quote patient data.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone
from typing import Any

import orjson


class PlainFormatter(logging.Formatter):
    """The plain log line, its timestamp's date and time formatted once per second: every
    request writes a line, and time.strftime for each was most of the formatting."""

    def __init__(self, fmt: str | None = None) -> None:
        super().__init__(fmt)
        self._second = -1
        self._text = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        if second != self._second:  # a race here only formats the second twice
            self._text = time.strftime(self.default_time_format, self.converter(record.created))
            self._second = second
        return f"{self._text},{int(record.msecs):03d}"  # logging's default_msec_format, "%s,%03d"


class JSONFormatter(logging.Formatter):
    """One JSON object per record; a record's `fields` (a dict given as `extra`) become
    top-level keys. Tracebacks are left out (their text may quote request data): only the
    exception's class is kept."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,  # tells one Granian worker's lines from another's
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = record.exc_info[0].__name__
        return orjson.dumps(entry, default=str).decode()


# Lines kept for one write at most: a long loop iteration still writes every so often.
_MAX_PENDING = 64


class LoopBatchedStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A StreamHandler that writes the lines one event-loop iteration logs in one write.

    Why: the access log is one line per request, and each write to stderr is a system call
    that releases the GIL (under Granian, a chance for the worker to lose it to the server's
    threads and wait to get it back). Lines logged on the event loop's thread are kept and
    written together by a callback at the end of the current loop iteration, so no line
    waits for a timer or a later request; the cost of a crash is at most the lines of that
    one iteration. Lines from any other thread, lines with no running loop (start-up,
    shutdown, the CLI) and every WARNING or worse are written at once, after whatever is
    pending, so the order of lines is kept.
    """

    def __init__(self, stream: Any = None) -> None:
        super().__init__(stream)
        self._pending: list[str] = []
        self._scheduled = False

    def emit(self, record: logging.LogRecord) -> None:  # called with the handler's lock held
        try:
            line = self.format(record) + self.terminator
        except Exception:  # logging's own contract: report, never raise
            self.handleError(record)
            return
        loop = _running_loop()
        if loop is None or record.levelno >= logging.WARNING:
            self._pending.append(line)
            self._write_pending()
            return
        self._pending.append(line)
        if len(self._pending) >= _MAX_PENDING:  # a loop that never yields still writes
            self._write_pending()
        elif not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush_from_loop)

    def _flush_from_loop(self) -> None:
        self.acquire()
        try:
            self._scheduled = False
            self._write_pending()
        finally:
            self.release()

    def _write_pending(self) -> None:
        if not self._pending:
            return
        text, self._pending = "".join(self._pending), []
        try:
            self.stream.write(text)
            self.stream.flush()
        except Exception:  # a closed or broken stderr must not fail a request
            self.handleError(logging.makeLogRecord({"msg": "log write failed"}))

    def flush(self) -> None:
        self.acquire()
        try:
            self._write_pending()
            super().flush()
        finally:
            self.release()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
