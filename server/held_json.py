"""JSON bytes to keep: orjson's output copied to its exact size.

orjson.dumps writes into a buffer it grows and never shrinks: a 1.5 KB Patient comes back
in a 16-32 KB allocation (measured here with tracemalloc: 32 KB for a 2.3 KB AuditEvent;
Home Assistant found the same, home-assistant/core#181240). A response body lives for
one request, so that costs nothing; bytes held for minutes (the memory cache's bodies, the
in-memory audit trail) kept the whole buffer each, about 8 KB of RSS per entry. One copy
(about 0.3 us for 2 KB) gives an exact-size object and frees the buffer.
"""

from __future__ import annotations

from typing import Any

import orjson


def held_json(value: Any) -> bytes:
    """`orjson.dumps(value)` in an allocation of its own size, for bytes kept long."""
    return exact_size(orjson.dumps(value))


def exact_size(data: bytes) -> bytes:
    """orjson's bytes copied to an allocation of their own size (its buffer freed)."""
    return bytes(memoryview(data))
