"""One MLLP message's delivery, with the intake, audit trail and ledger as stand-ins: the
error paths that real sockets cannot provoke on demand."""

from __future__ import annotations

import asyncio
from typing import Any

from server.pas.hl7_intake import INTERNAL, build_ack, parse
from server.pas.hl7_ledger import LedgerUnavailable, MemoryLedger
from server.pas.mllp import MLLPConfig, MLLPListener, ack_code

A04 = b"MSH|^~\\&|PAS|RX1|FACADE|NHS|20260101120000||ADT^A04^ADT_A01|CTRL42|P|2.4\rPID|1||H1^^^RX1^MR\r"


class Intake:
    def __init__(self) -> None:
        self.applied = 0

    async def handle(self, raw: bytes, ctx: Any, touched: Any = None) -> str:
        self.applied += 1
        touched("H1", "9000000009")
        return build_ack("AA", parse(raw), [])


class Audit:
    def __init__(self, works: bool) -> None:
        self.works = works
        self.notes: list[tuple[Any, Any, int]] = []

    async def record(self, note: Any, principal: Any, status: int) -> bool:
        self.notes.append((note, principal, status))
        return self.works


class LedgerThatForgets(MemoryLedger):
    async def finish(self, key: str, ack: str) -> None:
        raise LedgerUnavailable("the delivery ledger is unavailable (AutoReconnect)")


def listener(intake: Intake, audit: Audit, ledger: MemoryLedger) -> MLLPListener:
    config = MLLPConfig(host="127.0.0.1", port=0, max_message_bytes=4096, idle_seconds=1, max_connections=1)
    return MLLPListener(config, lambda: intake, lambda: audit, ledger, "http://facade")  # type: ignore[arg-type, return-value]


async def test_an_audit_trail_that_cannot_record_turns_the_ack_into_ar() -> None:
    intake, audit = Intake(), Audit(works=False)
    ack = await listener(intake, audit, MemoryLedger(60))._deliver(A04, "10.0.0.1", None)
    assert ack_code(ack) == "AR"
    assert "the audit trail is unavailable; resend the message later" in ack and f"|{INTERNAL}^" in ack
    [(note, principal, status)] = audit.notes
    assert status == 200 and note.patients == ["Patient/9000000009"] and principal.subject == "PAS|RX1"


async def test_applied_but_not_in_the_ledger_is_still_acknowledged() -> None:
    intake, audit = Intake(), Audit(works=True)
    deliver = listener(intake, audit, LedgerThatForgets(60))._deliver
    assert ack_code(await deliver(A04, None, None)) == "AA"  # it was applied: the sender must not resend
    assert intake.applied == 1 and [status for _, _, status in audit.notes] == [200]


async def test_the_client_certificate_names_the_audited_client() -> None:
    intake, audit = Intake(), Audit(works=True)
    await listener(intake, audit, MemoryLedger(60))._deliver(A04, None, "pas.trust.nhs.uk")
    [(_, principal, _)] = audit.notes
    assert principal.client_id == "tls:pas.trust.nhs.uk" and principal.roles == frozenset({"pas-system"})


async def test_an_unexpected_failure_closes_only_that_connection_with_one_line(caplog: Any) -> None:
    class Broken(Intake):
        async def handle(self, raw: bytes, ctx: Any, touched: Any = None) -> str:
            raise RuntimeError("Jane Smith 9000000009")  # a message that must not reach the log

    config = MLLPConfig(host="127.0.0.1", port=0, max_message_bytes=4096, idle_seconds=2, max_connections=4)
    async with MLLPListener(
        config, lambda: Broken(), lambda: Audit(works=True), MemoryLedger(60), "http://f"
    ) as server:  # type: ignore[arg-type, return-value]
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"\x0b" + A04 + b"\x1c\r")
        await writer.drain()
        assert await asyncio.wait_for(reader.read(100), 5) == b""  # closed, no ACK
        writer.close()
    assert "MLLP connection closed after an unexpected RuntimeError" in caplog.text
    assert "9000000009" not in caplog.text and "Traceback" not in caplog.text
