"""Random ids for every request (request ids, trace ids, AuditEvent ids), from a pooled read
of the operating system's CSPRNG.

Why a pool: `uuid.uuid4()` and `secrets.token_hex()` each make a `getrandom` system call,
and CPython releases the GIL around it. A cached read mints three ids; under Granian, whose
Rust threads wait for the GIL to hand requests in, every release is a chance for the worker
to lose the GIL and wait to get it back. Reading 4 KiB at a time makes that one system call
per ~80 requests. The bytes are the same `os.urandom` bytes, so the ids are as unguessable
as uuid4's; they are only read ahead.

A forked child must never reuse its parent's unread bytes (two Granian workers would mint
the same ids): the pool is emptied in the child at fork (os.register_at_fork).
"""

from __future__ import annotations

import os

_POOL_BYTES = 4096


class _Pool:
    def __init__(self) -> None:
        self.buffer = b""
        self.offset = 0

    def take(self, count: int) -> bytes:
        end = self.offset + count
        if end > len(self.buffer):
            self.buffer = os.urandom(max(_POOL_BYTES, count))
            self.offset, end = 0, count
        chunk = self.buffer[self.offset : end]
        self.offset = end
        return chunk

    def forget(self) -> None:
        self.buffer, self.offset = b"", 0


_pool = _Pool()
os.register_at_fork(after_in_child=_pool.forget)


def random_bytes(count: int) -> bytes:
    """`count` bytes from the operating system's CSPRNG, each handed out once."""
    return _pool.take(count)


def random_hex(count: int) -> str:
    """`count` random bytes as lower-case hex (2 × count characters)."""
    return _pool.take(count).hex()


def random_uuid() -> str:
    """A random (version 4, RFC 9562) UUID in its canonical 8-4-4-4-12 form, as str(uuid4())."""
    raw = bytearray(_pool.take(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # the RFC variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
