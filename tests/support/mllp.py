"""A small MLLP client for the MLLP listener's tests, on raw asyncio streams (so a test
can send broken framing and compare ACK bytes exactly), plus readers of an ACK's
segments. Every read is bounded by a timeout: a broken server fails a test, never hangs it.

MLLP (HL7 v2 minimal lower layer protocol): <VT=0x0B> message <FS=0x1C><CR=0x0D>."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c\x0d"
READ_TIMEOUT = 5.0

HN_SYSTEM = "https://pas.example.org/Id/hospital-number"
SANDBOX_SENDER = "PAS|RX1"


def frame(message: bytes) -> bytes:
    return START_BLOCK + message + END_BLOCK


def adt(
    hn: str,
    control: str,
    *,
    event: str = "A04",
    app: str = "PAS",
    facility: str = "RX1",
    family: str = "NOBODY",
    given: str = "KNOWN",
    extra: tuple[str, ...] = (),
) -> bytes:
    """An ADT message as the existing HL7 tests send it (ER7, segments ended by CR)."""
    segments = [
        f"MSH|^~\\&|{app}|{facility}|FACADE|NHS|20260101120000||ADT^{event}^ADT_A01|{control}|P|2.4",
        f"EVN|{event}|20260101120000",
        f"PID|1||{hn}^^^RX1^MR||{family}^{given}||19700101|U",
        *extra,
    ]
    return ("\r".join(segments) + "\r").encode()


def segments(ack: bytes) -> list[list[str]]:
    return [line.split("|") for line in ack.decode().split("\r") if line]


def segment(ack: bytes, name: str) -> list[str]:
    found = [s for s in segments(ack) if s[0] == name]
    assert found, f"no {name} segment in {ack!r}"
    return found[0]


def verdict(ack: bytes) -> tuple[str, str]:
    """(MSA-1, MSA-2): the acknowledgment code and the control id it acknowledges."""
    msa = segment(ack, "MSA")
    return msa[1], msa[2]


def err_codes(ack: bytes) -> list[str]:
    """ERR-3's identifier (the HL7 table 0357 code) of every ERR segment."""
    return [s[3].split("^")[0] for s in segments(ack) if s[0] == "ERR" and len(s) > 3]


def err_texts(ack: bytes) -> list[str]:
    """Every ERR's whole text (its fields joined), for assertions on the reason given."""
    return ["|".join(s) for s in segments(ack) if s[0] == "ERR"]


@dataclass
class MLLPConnection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    async def send(self, message: bytes) -> None:
        await self.send_raw(frame(message))

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read_ack(self, timeout: float = READ_TIMEOUT) -> bytes:
        """The next framed message from the server, without its framing bytes."""
        try:
            data = await asyncio.wait_for(self.reader.readuntil(END_BLOCK), timeout)
        except asyncio.IncompleteReadError as exc:
            raise AssertionError(f"the server closed the connection before an ACK (got {exc.partial!r})") from exc
        except TimeoutError as exc:
            raise AssertionError(f"no ACK within {timeout} s") from exc
        except ConnectionResetError as exc:
            raise AssertionError("the server reset the connection instead of answering") from exc
        assert data.startswith(START_BLOCK), f"ACK not framed with a start block: {data!r}"
        return data[len(START_BLOCK) : -len(END_BLOCK)]

    async def exchange(self, message: bytes, timeout: float = READ_TIMEOUT) -> bytes:
        await self.send(message)
        return await self.read_ack(timeout)

    async def closed_by_server(self, timeout: float = READ_TIMEOUT) -> tuple[bytes, float]:
        """Wait for the server to close: (every byte it sent before, seconds it took).
        A reset counts as closed. AssertionError when the connection is still open."""
        started = time.monotonic()
        received = b""
        try:
            async with asyncio.timeout(timeout):
                while chunk := await self.reader.read(65536):
                    received += chunk
        except TimeoutError as exc:
            raise AssertionError(f"the server kept the connection open for {timeout} s (got {received!r})") from exc
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
            pass
        return received, time.monotonic() - started

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError, TimeoutError):
            await asyncio.wait_for(self.writer.wait_closed(), 2)


async def connect(
    port: int, *, host: str = "127.0.0.1", ssl_context: ssl.SSLContext | None = None, within: float = 5.0
) -> MLLPConnection:
    """Open a connection, retrying a refused connect for `within` seconds (the listener
    starts in the façade's lifespan, so it should already be there)."""
    deadline = time.monotonic() + within
    while True:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, ssl=ssl_context, server_hostname=host if ssl_context else None),
                READ_TIMEOUT,
            )
            return MLLPConnection(reader, writer)
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def connection(port: int, *, ssl_context: ssl.SSLContext | None = None) -> AsyncIterator[MLLPConnection]:
    conn = await connect(port, ssl_context=ssl_context)
    try:
        yield conn
    finally:
        await conn.close()


async def send_one(port: int, message: bytes, *, ssl_context: ssl.SSLContext | None = None) -> bytes:
    """A fresh connection, one message, its ACK."""
    async with connection(port, ssl_context=ssl_context) as conn:
        return await conn.exchange(message)
