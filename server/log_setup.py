"""FACADE_LOG_FORMAT=json: one JSON object per log line, for a log pipeline.

Each line is {"ts", "level", "logger", "message"} plus, on the request lines, the fields
the request middleware attaches (server/fhir/middleware.py: request id, trace id, type,
interaction, status, duration, cache result, NHS calls). The process's logging set-up
(server/__main__.py logging_config) names this formatter. Nothing here adds a path, a
query or an exception's text, which may quote patient data.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

import orjson


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
