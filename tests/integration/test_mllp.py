"""HL7 v2 over MLLP (issue 13), over real sockets: the façade's MLLP listener on a free
loopback port, the emulator as PDS, raw asyncio streams (and the `hl7` library's MLLP
client) as the sending PAS or interface engine.

One ACK per message, in order, MSH-10 in MSA-2, the same intake as POST /pas/v1/hl7;
a resend within FACADE_MLLP_DEDUP_SECONDS gets the same ACK bytes and is applied once; a
reused control id with other content is AE 205; broken streams (bytes outside framing, a
missing end block, an over-long message, a silent or slow sender, one connection too
many) lose only their own connection while another keeps working; a MongoDB outage is AR
207 and the resend after recovery is applied exactly once; a sender off the allow-list is
AR 103 and every message leaves one AuditEvent naming its sender; MLLP over TLS, with and
without client certificates. Every read has a timeout (tests/support/mllp.py)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import hl7
import hl7.mllp
import pytest

from tests.support.access import audit_events
from tests.support.checked_client import CheckedClient
from tests.support.mllp import (
    HN_SYSTEM,
    SANDBOX_SENDER,
    START_BLOCK,
    MLLPConnection,
    adt,
    connect,
    connection,
    err_codes,
    err_texts,
    frame,
    segment,
    send_one,
    verdict,
)
from tests.support.mongo import SecantusProcess
from tests.support.servers import Emulator, FHIRClient, free_port, running_facade
from tests.support.tls_certs import make_tls_files
from tests.support.tokens import bearer, token


@dataclass
class MLLPFacade:
    url: str
    port: int
    fhir: FHIRClient
    checked: CheckedClient


@contextlib.asynccontextmanager
async def mllp_facade(emulator: Emulator, http: aiohttp.ClientSession, **overrides: Any) -> AsyncIterator[MLLPFacade]:
    """The façade with its MLLP listener on another free loopback port. A generous idle
    timeout unless a test sets its own, so only the tests about idleness depend on it."""
    port = free_port()
    settings: dict[str, Any] = {"mllp_port": port, "mllp_host": "127.0.0.1", "mllp_idle_seconds": 10.0, **overrides}
    async with running_facade(emulator, **settings) as url:
        yield MLLPFacade(url, port, FHIRClient(url, http), CheckedClient(url, http))


async def pas_record(facade: MLLPFacade, hn: str) -> tuple[int, str | None, Any]:
    """(status, ETag, body) of GET /pas/v1/patients/{hn}: the ETag is the record's version,
    so it tells one write from two."""
    status, headers, body = await facade.fhir.get(f"/pas/v1/patients/{hn}")
    assert status in (200, 404), (status, body)
    return status, headers.get("ETag"), body


async def assert_not_stored(facade: MLLPFacade, hn: str) -> None:
    status, _, body = await pas_record(facade, hn)
    assert status == 404, body


def assert_aa(ack: bytes, control: str) -> None:
    assert verdict(ack) == ("AA", control), ack
    assert err_codes(ack) == [], ack


@dataclass
class KeepsWorking:
    """Another connection sending a message every 50 ms and checking each ACK, while a
    test breaks a different connection: the broken one must not stall or close it."""

    port: int
    hn: str
    acked: list[float] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    async def _run(self, conn: MLLPConnection) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            control = f"{self.hn}-{n}"
            ack = await conn.exchange(adt(self.hn, control), timeout=5.0)
            assert_aa(ack, control)
            self.acked.append(time.monotonic())
            await asyncio.sleep(0.05)

    async def __aenter__(self) -> KeepsWorking:
        conn = await connect(self.port)
        assert_aa(await conn.exchange(adt(self.hn, f"{self.hn}-0")), f"{self.hn}-0")
        self._conn = conn
        self._task = asyncio.create_task(self._run(conn))
        return self

    def acked_between(self, start: float, end: float) -> int:
        return sum(1 for t in self.acked if start <= t <= end)

    async def more_acks(self, count: int = 2, within: float = 5.0) -> None:
        """Wait until `count` more messages were ACKed AA (fails if the connection broke)."""
        target = len(self.acked) + count
        deadline = time.monotonic() + within
        while len(self.acked) < target:
            assert self._task is not None
            if self._task.done():
                self._task.result()  # re-raise what broke the good connection
                raise AssertionError("the good connection stopped")
            assert time.monotonic() < deadline, "the good connection stalled"
            await asyncio.sleep(0.02)

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._task is not None
        try:
            await asyncio.wait_for(self._task, 10)
        finally:
            await self._conn.close()


def mllp_events(events: list[dict[str, Any]], sender: str) -> list[dict[str, Any]]:
    """The AuditEvents whose agent is the HL7 sender `MSH-3|MSH-4` (as identifier value or display)."""
    found = []
    for event in events:
        for agent in event.get("agent", []):
            who = agent.get("who", {})
            if sender in (who.get("identifier", {}).get("value"), who.get("display")):
                found.append(event)
                break
    return found


async def sender_events(
    facade: MLLPFacade, sender: str, count: int, within: float = 5.0, **query: str
) -> list[dict[str, Any]]:
    """The events naming `sender`, once there are `count` of them (audit writes may land
    just after the ACK); fails if there are more, or fewer after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        found = mllp_events(await audit_events(facade.checked, **query), sender)
        if len(found) >= count or time.monotonic() > deadline:
            assert len(found) == count, [(e.get("outcome"), e.get("outcomeDesc")) for e in found]
            return found
        await asyncio.sleep(0.1)


# ---- the happy path ---------------------------------------------------------------------------


async def test_an_a04_over_mllp_is_acked_aa_and_the_patient_is_found_over_fhir(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """With the hl7 library's own MLLP client, as the README shows."""
    async with mllp_facade(emulator, http) as facade:
        message = adt(
            "H200",
            "CTRL42",
            family="TAYLOR",
            given="SAM",
            extra=("PD1|||GP PRACTICE^^Y23456", "PV1|1|O"),
        )
        reader, writer = await hl7.mllp.open_hl7_connection("127.0.0.1", facade.port)
        try:
            writer.writemessage(hl7.parse(message.decode()))
            await writer.drain()
            ack = await asyncio.wait_for(reader.readmessage(), 5)
        finally:
            writer.close()
            await writer.wait_closed()
        assert str(ack.segment("MSH")[9]) == "ACK^A04^ACK"
        assert str(ack.segment("MSA")[1]) == "AA" and str(ack.segment("MSA")[2]) == "CTRL42"
        status, _, bundle = await facade.fhir.get(f"/Patient?identifier={HN_SYSTEM}|H200")
        assert status == 200 and bundle["total"] == 1, bundle
        found = bundle["entry"][0]["resource"]
        assert found["id"] == "pas-H200" and {"system": HN_SYSTEM, "value": "H200"} in found["identifier"]
        status, etag, record = await pas_record(facade, "H200")
        assert status == 200 and etag == 'W/"1"' and record["surname"].upper() == "TAYLOR"
        port = facade.port
    with pytest.raises(OSError):  # the listener stops with the façade
        await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)


async def test_the_mllp_ack_is_the_http_intakes_ack(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    """AA / AE / AR exactly as POST /pas/v1/hl7 answers (same intake), MSH-10 echoed."""
    async with mllp_facade(emulator, http) as facade:
        cases = [
            (adt("H210", "E1"), "AA", []),
            (adt("H211", "E2", extra=()).replace(b"19700101", b"19703112"), "AE", ["102"]),
            (adt("H212", "E3", event="A01"), "AR", ["201"]),
        ]
        async with connection(facade.port) as conn:
            for message, code, errs in cases:
                ack = await conn.exchange(message)
                control = message.split(b"|")[9].decode()
                assert verdict(ack) == (code, control), ack
                assert err_codes(ack) == errs, ack
                async with facade.fhir.session.post(
                    facade.url + "/pas/v1/hl7",
                    data=message.replace(control.encode(), b"HTTP" + control.encode()),
                    headers={"Content-Type": "application/hl7-v2", **bearer()},
                ) as resp:
                    over_http = (await resp.text()).encode()
                assert verdict(over_http)[0] == code and err_codes(over_http) == errs, over_http
        await assert_not_stored(facade, "H211")
        await assert_not_stored(facade, "H212")


async def test_messages_on_one_connection_are_acked_and_applied_in_order(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    async with mllp_facade(emulator, http) as facade, connection(facade.port) as conn:
        # Sent back to back without waiting: the ACKs come back in the order sent, and the
        # updates land in that order (the last surname wins, one version per message).
        messages = [
            adt("H220", "ORD1", family="ONE"),
            adt("H220", "ORD2", event="A08", family="TWO"),
            adt("H221", "ORD3"),
            adt("H220", "ORD4", event="A08", family="THREE"),
            adt("H221", "ORD5", event="A08", family="FIVE"),
        ]
        await conn.send_raw(b"".join(frame(m) for m in messages))
        acks = [await conn.read_ack() for _ in messages]
        assert [verdict(a) for a in acks] == [("AA", f"ORD{n}") for n in range(1, 6)]
        assert len({segment(a, "MSH")[9] for a in acks}) == 5  # each ACK has its own control id
        _, etag, record = await pas_record(facade, "H220")
        assert etag == 'W/"3"' and record["surname"].upper() == "THREE"
        _, etag, record = await pas_record(facade, "H221")
        assert etag == 'W/"2"' and record["surname"].upper() == "FIVE"


# ---- resends and control ids ----------------------------------------------------------------


async def test_a_resent_message_gets_the_same_ack_and_is_applied_once(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    async with mllp_facade(emulator, http) as facade:
        first = adt("H230", "RS1", family="FIRST")
        async with connection(facade.port) as conn:
            ack = await conn.exchange(first)
            assert_aa(ack, "RS1")
            assert await conn.exchange(first) == ack  # the ACK was lost: resent on the same connection
        assert await send_one(facade.port, first) == ack  # and on a new connection, as engines reconnect
        _, etag, _ = await pas_record(facade, "H230")
        assert etag == 'W/"1"'
        # A later update, then a late resend of the first message: not applied again (it
        # would put the old surname back), answered with the first ACK.
        assert_aa(await send_one(facade.port, adt("H230", "RS2", event="A08", family="SECOND")), "RS2")
        assert await send_one(facade.port, first) == ack
        _, etag, record = await pas_record(facade, "H230")
        assert etag == 'W/"2"' and record["surname"].upper() == "SECOND"


async def test_the_same_message_on_several_connections_at_once_is_applied_once(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """An engine that reconnects and resends while the first copy is still being applied."""
    async with mllp_facade(emulator, http) as facade:
        message = adt("H235", "RACE1")
        acks = await asyncio.gather(*(send_one(facade.port, message) for _ in range(5)))
        assert_aa(acks[0], "RACE1")
        assert len(set(acks)) == 1, acks  # one answer, byte for byte
        _, etag, _ = await pas_record(facade, "H235")
        assert etag == 'W/"1"'


async def test_a_reused_control_id_with_other_content_is_ae_205_and_not_applied(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    async with mllp_facade(emulator, http, pas_hl7_allowed_senders=["PAS|RX1", "PAS|RX2"]) as facade:
        ack = await send_one(facade.port, adt("H240", "DUP1"))
        assert_aa(ack, "DUP1")
        reused = await send_one(facade.port, adt("H241", "DUP1"))
        assert verdict(reused) == ("AE", "DUP1") and err_codes(reused) == ["205"], reused
        await assert_not_stored(facade, "H241")
        _, etag, _ = await pas_record(facade, "H240")
        assert etag == 'W/"1"'
        assert await send_one(facade.port, adt("H240", "DUP1")) == ack  # the original still resends
        # The key is sender and control id: another facility may use the same MSH-10.
        assert_aa(await send_one(facade.port, adt("H242", "DUP1", facility="RX2")), "DUP1")
        status, _, _ = await pas_record(facade, "H242")
        assert status == 200


async def test_a_resend_after_the_dedup_window_is_applied_again(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    async with mllp_facade(emulator, http, mllp_dedup_seconds=0.5) as facade:
        message = adt("H250", "WIN1")
        assert_aa(await send_one(facade.port, message), "WIN1")
        await asyncio.sleep(1.0)
        assert_aa(await send_one(facade.port, message), "WIN1")
        _, etag, _ = await pas_record(facade, "H250")
        assert etag == 'W/"2"'  # forgotten after 0.5 s: a new message, applied


# ---- broken streams close only their own connection ---------------------------------------


GARBAGE = {
    "unframed-message": adt("H260", "NOFRAME"),  # a sender that forgot the framing
    "http-request": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    "end-block-only": b"\x1c\x0d",
    "zero-bytes": b"\x00" * 64,
    "text-then-block": b"hello" + frame(adt("H260", "AFTERTEXT")),
}


@pytest.mark.parametrize("garbage", GARBAGE.values(), ids=GARBAGE.keys())
async def test_bytes_outside_framing_close_that_connection_only(
    emulator: Emulator, http: aiohttp.ClientSession, garbage: bytes
) -> None:
    """Closed at once (the idle timeout is 10 s here), with no ACK, nothing applied."""
    async with mllp_facade(emulator, http) as facade:
        async with KeepsWorking(facade.port, "H261") as good, connection(facade.port) as bad:
            await bad.send_raw(garbage)
            received, _ = await bad.closed_by_server(timeout=3.0)
            assert received == b"", received  # no ACK for what is not a message
            await good.more_acks()
        await assert_not_stored(facade, "H260")


async def test_a_missing_end_block_then_eof_closes_without_an_ack(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    async with mllp_facade(emulator, http) as facade:
        async with KeepsWorking(facade.port, "H271") as good, connection(facade.port) as bad:
            await bad.send_raw(START_BLOCK + adt("H270", "NOEND"))
            await good.more_acks()  # the half-sent message holds up nobody
            bad.writer.write_eof()
            received, _ = await bad.closed_by_server(timeout=3.0)
            assert received == b""
            await good.more_acks()
        await assert_not_stored(facade, "H270")


async def test_an_over_long_message_is_ar_100_then_closed(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    async with mllp_facade(emulator, http, mllp_max_message_bytes=1024) as facade:
        long = adt("H280", "LONG1", extra=("NTE|1||" + "X" * 1500,))
        fits = adt("H282", "FITS1", extra=("NTE|1||" + "X" * 700,))
        assert len(fits) <= 1024 < len(long)
        async with KeepsWorking(facade.port, "H281") as good:
            async with connection(facade.port) as bad:
                await bad.send(long)
                ack = await bad.read_ack()
                assert verdict(ack)[0] == "AR" and err_codes(ack) == ["100"], ack
                received, _ = await bad.closed_by_server(timeout=3.0)
                assert received == b""
            await good.more_acks()
        await assert_not_stored(facade, "H280")
        assert_aa(await send_one(facade.port, fits), "FITS1")  # the limit is the limit, not less


def padded(hn: str, control: str, size: int) -> bytes:
    """An A04 of exactly `size` bytes between the start and end block (an NTE pads it)."""
    bare = adt(hn, control, extra=("NTE|1||",))
    message = adt(hn, control, extra=("NTE|1||" + "X" * (size - len(bare)),))
    assert len(message) == size
    return message


async def test_the_size_limit_counts_the_message_between_the_blocks(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """FACADE_MLLP_MAX_MESSAGE_BYTES bytes exactly is accepted; one more is AR 100."""
    async with mllp_facade(emulator, http, mllp_max_message_bytes=1024) as facade:
        assert_aa(await send_one(facade.port, padded("H285", "EXACT", 1024)), "EXACT")
        async with connection(facade.port) as conn:
            await conn.send(padded("H286", "OVER", 1025))
            ack = await conn.read_ack()
            assert verdict(ack)[0] == "AR" and err_codes(ack) == ["100"], ack
        await assert_not_stored(facade, "H286")


async def test_an_over_long_message_is_refused_before_its_end_block_arrives(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """A sender streaming an endless message is not buffered until it stops."""
    async with mllp_facade(emulator, http, mllp_max_message_bytes=1024) as facade:
        async with KeepsWorking(facade.port, "H291") as good, connection(facade.port) as bad:
            head = adt("H290", "ENDLESS")
            await bad.send_raw(START_BLOCK + head + b"NTE|1||" + b"X" * 2048)
            ack = await bad.read_ack(timeout=3.0)  # well inside the 10 s idle timeout
            assert verdict(ack)[0] == "AR" and err_codes(ack) == ["100"], ack
            received, _ = await bad.closed_by_server(timeout=3.0)
            assert received == b""
            await good.more_acks()
        await assert_not_stored(facade, "H290")


async def test_a_silent_sender_is_closed_after_the_idle_timeout(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    async with mllp_facade(emulator, http, mllp_idle_seconds=0.5) as facade:
        async with KeepsWorking(facade.port, "H301") as good, connection(facade.port) as silent:
            opened = time.monotonic()
            received, took = await silent.closed_by_server(timeout=5.0)
            assert received == b"" and 0.3 <= took <= 3.0, took
            # the busy connection, idle never for 0.5 s, went on being answered meanwhile
            assert good.acked_between(opened, opened + took) >= 2
            await good.more_acks()


async def test_a_slow_sender_is_closed_after_the_idle_timeout(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    """A byte every 100 ms keeps the socket busy but never completes a message in 0.5 s."""
    async with mllp_facade(emulator, http, mllp_idle_seconds=0.5) as facade:
        async with KeepsWorking(facade.port, "H311") as good, connection(facade.port) as slow:
            data = frame(adt("H310", "SLOW1"))

            async def trickle() -> None:
                with contextlib.suppress(ConnectionError):
                    for i in range(len(data)):
                        await slow.send_raw(data[i : i + 1])
                        await asyncio.sleep(0.1)

            trickling = asyncio.create_task(trickle())
            try:
                received, took = await slow.closed_by_server(timeout=6.0)
            finally:
                trickling.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await trickling
            assert received == b"" and took <= 3.0, took
            await good.more_acks()
        await assert_not_stored(facade, "H310")


async def test_connections_beyond_the_limit_are_closed_at_once(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    async with mllp_facade(emulator, http, mllp_max_connections=2) as facade:
        first = await connect(facade.port)
        second = await connect(facade.port)
        try:
            assert_aa(await first.exchange(adt("H320", "LIM1")), "LIM1")
            assert_aa(await second.exchange(adt("H321", "LIM2")), "LIM2")
            async with connection(facade.port) as third:
                with contextlib.suppress(ConnectionError):
                    await third.send(adt("H322", "LIM3"))
                received, took = await third.closed_by_server(timeout=3.0)
                assert received == b"" and took < 1.5, took  # at once: the idle timeout is 10 s
            assert_aa(await first.exchange(adt("H320", "LIM4")), "LIM4")  # the two held go on working
            await second.close()
            # Once one closes, a new connection is served (the server notices the close
            # asynchronously: try a few times).
            deadline = time.monotonic() + 5
            while True:
                async with connection(facade.port) as fourth:
                    try:
                        assert_aa(await fourth.exchange(adt("H323", "LIM5")), "LIM5")
                        break
                    except AssertionError:
                        if time.monotonic() > deadline:
                            raise
                await asyncio.sleep(0.1)
        finally:
            await first.close()
            await second.close()
        await assert_not_stored(facade, "H322")


# ---- who may send, and the audit trail --------------------------------------------------------


async def test_a_disallowed_sender_gets_ar_103_with_the_reason_and_is_audited(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    async with mllp_facade(emulator, http) as facade:
        async with connection(facade.port) as conn:
            refused = await conn.exchange(adt("H330", "EV1", app="EVIL", facility="RX1"))
            assert verdict(refused) == ("AR", "EV1") and err_codes(refused) == ["103"], refused
            [text] = err_texts(refused)
            assert "MSH^1^3" in text and "application 'EVIL' at facility 'RX1' is not on" in text, text
            assert segment(refused, "MSH")[4:6] == ["EVIL", "RX1"]  # the ACK answers whoever sent it
            assert_aa(await conn.exchange(adt("H331", "OK1")), "OK1")  # the connection stays usable
        await assert_not_stored(facade, "H330")
        [event] = await sender_events(facade, "EVIL|RX1", 1)
        assert event["outcome"] == "4", event
        [event] = await sender_events(facade, SANDBOX_SENDER, 1)
        assert event["outcome"] == "0", event


async def test_every_message_accepted_or_refused_leaves_one_audit_event(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    async with mllp_facade(emulator, http) as facade:
        message = adt("H340", "AU1")
        async with connection(facade.port) as conn:
            ack = await conn.exchange(message)
            assert_aa(ack, "AU1")
            assert await conn.exchange(message) == ack  # a resend is a message too
            assert verdict(await conn.exchange(adt("H341", "AU2", event="A01")))[0] == "AR"
            assert verdict(await conn.exchange(adt("H342", "AU3").replace(b"19700101", b"19703112")))[0] == "AE"
            assert verdict(await conn.exchange(adt("H343", "AU4", app="PAS", facility="RX9")))[0] == "AR"
        events = await sender_events(facade, SANDBOX_SENDER, 4)
        assert sorted(e["outcome"] for e in events)[:2] == ["0", "0"], [e["outcome"] for e in events]
        [refused] = await sender_events(facade, "PAS|RX9", 1)
        assert refused["outcome"] == "4"


# ---- MongoDB outage ---------------------------------------------------------------------------


@pytest.mark.mongo
async def test_mongodb_outage_is_ar_207_and_the_resend_after_recovery_applies_once(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    port = free_port()
    server = SecantusProcess(port)
    uri = f"mongodb://127.0.0.1:{port}/?directConnection=true"
    await asyncio.to_thread(server.start)
    try:
        async with mllp_facade(
            emulator,
            http,
            mongodb_uri=uri,
            mongodb_database="mllp_outage",
            mongodb_timeout_ms=200,
            audit_spool_dir=tmp_path / "spool",
        ) as facade:
            assert_aa(await send_one(facade.port, adt("H350", "MG1")), "MG1")
            server.kill()
            message = adt("H351", "MG2")
            outage = await send_one(facade.port, message)
            assert verdict(outage) == ("AR", "MG2") and err_codes(outage) == ["207"], outage
            assert "nothing was stored" in err_texts(outage)[0] and "resend" in err_texts(outage)[0]
            # Resends while MongoDB is still down are AR again (an AR is not remembered as the answer).
            assert verdict(await send_one(facade.port, message)) == ("AR", "MG2")

            await asyncio.to_thread(server.start)  # same port: the URI the façade holds
            deadline = time.monotonic() + 15
            while True:
                ack = await send_one(facade.port, message)
                if verdict(ack)[0] != "AR" or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            assert_aa(ack, "MG2")
            assert await send_one(facade.port, message) == ack  # a further resend: same AA
            status, etag, _ = await pas_record(facade, "H351")
            assert status == 200 and etag == 'W/"1"'  # applied exactly once
            # The outage was audited as such (outcome 8), from the spool once MongoDB returned.
            deadline = time.monotonic() + 15
            while True:
                outcomes = [e["outcome"] for e in mllp_events(await audit_events(facade.checked), SANDBOX_SENDER)]
                if "8" in outcomes or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.3)
            assert "8" in outcomes, outcomes
    finally:
        server.stop()


# ---- TLS ----------------------------------------------------------------------------------------


async def test_mllp_over_tls(emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path) -> None:
    tls = make_tls_files(tmp_path / "tls")
    async with mllp_facade(
        emulator, http, mllp_tls_cert=str(tls.server_cert), mllp_tls_key=str(tls.server_key)
    ) as facade:
        context = tls.client_context(with_certificate=False)
        assert_aa(await send_one(facade.port, adt("H360", "TLS1"), ssl_context=context), "TLS1")
        # The hl7 library's client over TLS too.
        reader, writer = await hl7.mllp.open_hl7_connection(
            "127.0.0.1", facade.port, ssl=context, server_hostname="127.0.0.1"
        )
        try:
            writer.writemessage(hl7.parse(adt("H361", "TLS2").decode()))
            await writer.drain()
            ack = await asyncio.wait_for(reader.readmessage(), 5)
            assert str(ack.segment("MSA")[1]) == "AA"
        finally:
            writer.close()
        # Plain MLLP to the TLS port is not a message.
        async with connection(facade.port) as plain:
            with contextlib.suppress(ConnectionError):
                await plain.send(adt("H362", "PLAIN"))
            received, _ = await plain.closed_by_server(timeout=5.0)
            assert b"MSA|" not in received
        await assert_not_stored(facade, "H362")
        assert (await pas_record(facade, "H360"))[0] == 200


async def test_mllp_over_tls_with_client_certificates(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    tls = make_tls_files(tmp_path / "tls")
    async with mllp_facade(
        emulator,
        http,
        mllp_tls_cert=str(tls.server_cert),
        mllp_tls_key=str(tls.server_key),
        mllp_tls_client_ca=str(tls.ca_cert),
    ) as facade:
        # Without a certificate: the handshake fails, or (TLS 1.3) the server closes
        # the connection right after it; either way no ACK and nothing stored.
        try:
            async with connection(facade.port, ssl_context=tls.client_context(with_certificate=False)) as anon:
                with contextlib.suppress(ConnectionError, OSError):
                    await anon.send(adt("H370", "ANON"))
                received, _ = await anon.closed_by_server(timeout=5.0)
                assert b"MSA|" not in received
        except OSError:  # ssl.SSLError is an OSError
            pass
        await assert_not_stored(facade, "H370")
        with_cert = tls.client_context(with_certificate=True)
        assert_aa(await send_one(facade.port, adt("H371", "CERT1"), ssl_context=with_cert), "CERT1")
        assert (await pas_record(facade, "H371"))[0] == 200


# ---- off unless configured -----------------------------------------------------------------------


def own_listening_ports() -> set[int]:
    """TCP ports this process listens on (Linux /proc): the sockets among our file
    descriptors that /proc/net/tcp{,6} lists in state LISTEN (0A)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            link = os.readlink(f"/proc/self/fd/{fd}")
            if link.startswith("socket:["):
                inodes.add(link[len("socket:[") : -1])
    ports = set()
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                cols = line.split()
                if cols[3] == "0A" and cols[9] in inodes:
                    ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


async def test_the_listener_is_off_unless_a_port_is_set(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    before = own_listening_ports()
    async with running_facade(emulator) as url:
        opened = own_listening_ports() - before
        assert opened == {int(url.rsplit(":", 1)[1])}  # the HTTP port only
    async with mllp_facade(emulator, http) as facade:
        opened = own_listening_ports() - before
        assert opened == {int(facade.url.rsplit(":", 1)[1]), facade.port}  # the check sees a listener
    with pytest.raises(OSError):
        await asyncio.wait_for(asyncio.open_connection("127.0.0.1", facade.port), 5)


async def test_each_mllp_message_is_on_the_console_with_its_sender_and_verdict(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """The console (on in the sandbox) lists MLLP messages beside HTTP requests: the sender,
    each ERR and the verdict, and a resend marked as such."""
    admin = bearer(token("user/*.rs", roles=["admin"], purpose=None))
    async with mllp_facade(emulator, http, console="auto") as facade:
        async with connection(facade.port) as conn:
            for message in (
                adt("H810", "CTRL810"),
                adt("H810", "CTRL810"),  # the resend
                adt("H811", "CTRL811", extra=("PV1|1|O",)).replace(b"19700101", b"19701399"),  # a bad date
            ):
                await conn.send(message)
                await conn.read_ack()
        status, _, listed = await facade.fhir.get("/_console/api/traces?limit=10", headers=admin)
        assert status == 200, listed
        mllp = [t for t in listed["traces"] if t["method"] == "MLLP"]
        assert len(mllp) == 3 and {t["path"] for t in mllp} == {"/mllp"}
        assert [t["status"] for t in mllp] == [422, 200, 200]  # newest first: the AE, the resend, the A04
        traces = []
        for summary in mllp:
            status, _, found = await facade.fhir.get(f"/_console/api/traces/{summary['request_id']}", headers=admin)
            assert status == 200, found
            traces.append(found)
        bad, resend, first = traces
        assert first["events"][0]["kind"] == "access" and first["events"][0]["detail"]["sender"] == "PAS|RX1"
        assert "ADT^A04 from PAS|RX1" in first["events"][0]["label"]
        assert [e["label"] for e in first["events"] if e["kind"] == "response"][0] == "HL7 AA"
        assert any(e["label"].startswith("a resend") for e in resend["events"])
        errors = [e for e in bad["events"] if e["kind"] == "conversion"]
        assert errors and all(e["detail"]["code"] for e in errors)
        assert [e["label"] for e in bad["events"] if e["kind"] == "response"][0] == "HL7 AE"
