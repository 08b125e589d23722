"""HL7 v2 over MLLP: the ADT intake of POST /pas/v1/hl7 on a TCP port (FACADE_MLLP_PORT).

Legacy PAS and interface engines send ADT as MLLP blocks (0x0B message 0x1C 0x0D) over a
long-lived TCP connection and wait for one ACK per message. The `hl7` library frames
the stream (hl7.mllp.start_hl7_server); this module adds what a deployment needs around
it, and hands each message to the same HL7Intake as the HTTP door (parsing, sender
allow-list, mapping, merges, ACK rules), so the two doors cannot drift apart.

Per connection, messages are read, applied and acknowledged one at a time, so the ACKs
come back in order and a message is applied only after the one before it. On top of the
intake's answers:
- a resend (same MSH-3, MSH-4, MSH-10 and bytes, within FACADE_MLLP_DEDUP_SECONDS) gets
  the first ACK again and is not applied again; the same control id on different bytes is
  AE, ERR 205 (server/pas/hl7_ledger.py);
- the ledger unreachable (MongoDB down) is AR, ERR 207, nothing applied: resend later;
- a message longer than FACADE_MLLP_MAX_MESSAGE_BYTES is AR, ERR 100, and the connection
  is closed (the rest of it is still on the wire);
- bytes outside the framing, an end of stream inside a message, and no complete message
  for FACADE_MLLP_IDLE_SECONDS close that connection; past FACADE_MLLP_MAX_CONNECTIONS a
  new connection is closed at once. Nothing of one connection stalls another: each is a
  task of its own, and reads are bounded by the size limit.
Who may send: the intake's MSH-3/MSH-4 allow-list, and with FACADE_MLLP_TLS_CLIENT_CA a
client certificate that CA signed. Every message, applied or refused, leaves one
AuditEvent (agent: the sender "MSH-3|MSH-4", with the certificate's subject when there is
one); the ACK goes out only once it is recorded (fail closed: AR when it cannot be).
Logs carry the request id, the event type and the verdict, never message content.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hl7.containers import Message
from hl7.mllp import start_hl7_server
from hl7.mllp.exceptions import InvalidBlockError
from hl7.mllp.streams import CARRIAGE_RETURN, END_BLOCK, START_BLOCK, HL7StreamReader, HL7StreamWriter

from server import request_trace
from server.access.audit_event import AuditNote
from server.access.control import AccessControl
from server.access.principal import Principal
from server.access.scopes import ScopeSet
from server.pas.hl7_intake import (
    INTERNAL,
    SEGMENT_ERROR,
    HL7Intake,
    HL7Problem,
    Rejected,
    build_ack,
    field_value,
    parse,
)
from server.pas.hl7_ledger import DeliveryLedger, LedgerUnavailable
from server.pas.records import audit_references
from server.random_ids import random_uuid
from server.request_context import RequestContext
from server.request_trace import Trace, tracing

log = logging.getLogger("facade.pas.mllp")

MLLP_ISSUER = "urn:nhs-fhir-facade:mllp"  # the AuditEvent agent's identifier system for an MLLP sender
DUPLICATE_KEY = "205"  # HL7 table 0357: duplicate key identifier
# The status an ACK stands for in the AuditEvent (its outcome) and the access log.
_ERR_STATUS = {"103": 403, INTERNAL: 503}


@dataclass(frozen=True)
class MLLPConfig:
    host: str
    port: int
    max_message_bytes: int
    idle_seconds: float
    max_connections: int
    tls: ssl.SSLContext | None = None


def tls_context(cert: str | None, key: str | None, client_ca: str | None) -> ssl.SSLContext | None:
    """The listener's TLS context: none without a certificate; client certificates required
    (and checked against `client_ca`) when it is given."""
    if cert is None or key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    if client_ca is not None:
        context.load_verify_locations(client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


@dataclass
class MLLPListener:
    """The MLLP server of one worker: `async with` starts and stops it."""

    config: MLLPConfig
    intake: Callable[[], HL7Intake]  # read per message: the PAS runtime is built in the lifespan
    access: Callable[[], AccessControl]
    ledger: DeliveryLedger
    base_url: str
    # The console's (server/console): each message's trace is filed there; None = not traced.
    keep_trace: Callable[[Trace], None] | None = None
    redact_traces: bool = False  # live mode: identifiers out of the trace as it is recorded
    _server: asyncio.AbstractServer | None = None
    _connections: set[asyncio.Task[Any]] = field(default_factory=set)
    port: int = 0

    async def __aenter__(self) -> MLLPListener:
        server: asyncio.Server = await start_hl7_server(
            self._connected,
            self.config.host,
            self.config.port,
            limit=self.config.max_message_bytes,
            ssl=self.config.tls,
            reuse_port=True,  # each Granian worker listens; the kernel spreads connections
        )
        self._server = server
        self.port = server.sockets[0].getsockname()[1]
        log.info("MLLP listener on %s:%d (%s)", self.config.host, self.port, "TLS" if self.config.tls else "plain TCP")
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        log.info("MLLP listener stopped")

    async def _connected(self, reader: HL7StreamReader, writer: HL7StreamWriter) -> None:
        task = asyncio.current_task()
        if len(self._connections) >= self.config.max_connections:
            log.warning("MLLP connection refused: %d connections open", len(self._connections))
            await _close(writer)
            return
        assert task is not None
        self._connections.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError) as exc:
            log.info("MLLP connection ended: %s", type(exc).__name__)
        except Exception as exc:  # last line of defence: one line by type, never a traceback (it may quote data)
            log.error("MLLP connection closed after an unexpected %s", type(exc).__name__)
        finally:
            self._connections.discard(task)
            await _close(writer)

    async def _serve(self, reader: HL7StreamReader, writer: HL7StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else None
        certificate = _certificate_subject(writer.get_extra_info("peercert"))
        while True:
            try:
                block = await asyncio.wait_for(_read_block(reader), self.config.idle_seconds)
            except TimeoutError:
                log.info("MLLP connection closed: no complete message for %.0f s", self.config.idle_seconds)
                return
            except asyncio.IncompleteReadError as exc:
                if exc.partial.strip():
                    log.info("MLLP connection closed inside a message (no end block)")
                return
            except InvalidBlockError:
                log.warning("MLLP connection closed: bytes outside MLLP framing (no start block)")
                return
            except asyncio.LimitOverrunError:
                too_long = HL7Problem(
                    SEGMENT_ERROR,
                    f"the message is longer than {self.config.max_message_bytes} bytes "
                    "(FACADE_MLLP_MAX_MESSAGE_BYTES); nothing was stored",
                )
                log.warning("MLLP message over %d bytes: AR, connection closed", self.config.max_message_bytes)
                writer.writeblock(build_ack("AR", None, [too_long]).encode())
                await writer.drain()
                return
            ack = await self._deliver(block, address, certificate)
            writer.writeblock(ack.encode())
            await writer.drain()

    async def _deliver(self, block: bytes, address: str | None, certificate: str | None) -> str:
        """The ACK for one message: applied at most once, audited before it is answered."""
        request_id = random_uuid()
        try:
            message: Message | None = parse(block)
        except Rejected:
            message = None  # the intake answers it (AR), and it is audited as refused
        sender = _sender(message)
        principal = Principal(
            subject=sender,
            issuer=MLLP_ISSUER,
            scopes=ScopeSet.parse("system/Patient.cu"),
            roles=frozenset({"pas-system"}),
            client_id=f"tls:{certificate}" if certificate else None,
        )
        ctx = RequestContext(request_id=request_id, base_url=self.base_url, principal=principal)
        note = AuditNote(
            request_id=request_id,
            method="MLLP",
            target=f"mllp {_message_type(message)}",
            client_address=address,
            interaction="create",
            resource_type="Patient",
        )

        def touched(hospital_number: str, nhs_number: str | None) -> None:
            note.saw(*audit_references(hospital_number, nhs_number))

        trace = Trace(request_id, "MLLP", "/mllp", redact=self.redact_traces) if self.keep_trace else None
        with tracing(trace) if trace is not None else contextlib.nullcontext():
            request_trace.record(
                "access",
                f"{_message_type(message)} from {sender}" + (f" (TLS client {certificate})" if certificate else ""),
                {"sender": sender, "client_certificate": certificate, "address": address},
            )
            ack = await self._applied_once(block, message, sender, ctx, touched)
            _trace_verdict(ack)
        status = ack_status(ack)
        if status >= 400:
            note.reason = f"HL7 {ack_code(ack)}"
        if not await self.access().record(note, principal, status):
            return build_ack(
                "AR", message, [HL7Problem(INTERNAL, "the audit trail is unavailable; resend the message later")]
            )
        if trace is not None and self.keep_trace is not None:
            trace.finish(status)
            self.keep_trace(trace)
        log.info("hl7 over MLLP: %s %s request_id=%s", _message_type(message), ack_code(ack), request_id)
        return ack

    async def _applied_once(
        self,
        block: bytes,
        message: Message | None,
        sender: str,
        ctx: RequestContext,
        touched: Callable[[str, str | None], None],
    ) -> str:
        intake = self.intake()
        control_id = _field(message, "MSH.F10.R1.C1") if message is not None else ""
        if message is None or not control_id:
            return await intake.handle(block, ctx, touched)  # unreadable, or no id to key on
        key = f"{sender}|{control_id}"
        try:
            claim = await self.ledger.claim(key, hashlib.sha256(block).hexdigest())
        except LedgerUnavailable as exc:
            return build_ack(
                "AR", message, [HL7Problem(INTERNAL, f"{exc}; nothing was stored; resend the message later")]
            )
        if claim.outcome == "done" and claim.ack is not None:
            request_trace.record(
                "response", "a resend: the first ACK again, nothing applied", {"control_id": control_id}
            )
            return claim.ack  # a resend: the first answer again, nothing applied
        if claim.outcome == "different":
            return build_ack(
                "AE",
                message,
                [
                    HL7Problem(
                        DUPLICATE_KEY,
                        "MSH-10 was already used by this sender for a different message; nothing was stored",
                        "MSH^1^10",
                    )
                ],
            )
        ack = await intake.handle(block, ctx, touched)
        if ack_code(ack) == "AR":
            await self.ledger.release(key)  # not applied: a resend must be
        else:
            try:
                await self.ledger.finish(key, ack)
            except LedgerUnavailable:
                log.error("hl7 over MLLP: applied but not recorded in the ledger request_id=%s", ctx.request_id)
        return ack


async def _read_block(reader: HL7StreamReader) -> bytes:
    """One MLLP block's message: the first byte must be the start block (anything else is
    refused at once, not after the idle timeout), then up to the end block. The stream's
    limit (FACADE_MLLP_MAX_MESSAGE_BYTES) counts the message alone; past it,
    LimitOverrunError. hl7.mllp's own readblock checks the start byte only once the end
    block has come, so garbage without one would hold the connection until the timeout."""
    start = await reader.readexactly(1)
    if start != START_BLOCK:
        raise InvalidBlockError("the block does not begin with the start block character <VT>")
    data: bytes = await reader.readuntil(END_BLOCK + CARRIAGE_RETURN)
    return data[:-2]


def _trace_verdict(ack: str) -> None:
    """The ACK's verdict and each ERR (code, text) on the console's trace."""
    if request_trace.current() is None:
        return
    for segment in ack.split("\r"):
        fields = segment.split("|")
        if fields[0] == "ERR" and len(fields) > 3:
            code, _, text = fields[3].partition("^")
            request_trace.record("conversion", f"ERR {code}: {text.split('^')[0]}", {"code": code})
    request_trace.record("response", f"HL7 {ack_code(ack) or '?'}", {"ack": ack_code(ack)})


def ack_code(ack: str) -> str:
    """MSA-1 of an ACK the intake built ("AA", "AE", "AR"), "" when it has none."""
    for segment in ack.split("\r"):
        if segment.startswith("MSA|"):
            return segment.split("|")[1] if segment.count("|") >= 1 else ""
    return ""


def ack_status(ack: str) -> int:
    """The HTTP status an ACK stands for: AA 200; AE 422; AR 403 for a refused sender, 503
    for an outage, else 400 (unreadable, unsupported)."""
    code = ack_code(ack)
    if code == "AA":
        return 200
    if code == "AE":
        return 422
    errors = [s.split("|")[3].split("^")[0] for s in ack.split("\r") if s.startswith("ERR|") and s.count("|") >= 3]
    return next((_ERR_STATUS[e] for e in errors if e in _ERR_STATUS), 400)


def _field(message: Message | None, path: str) -> str:
    return field_value(message, path) if message is not None else ""


def _sender(message: Message | None) -> str:
    return f"{_field(message, 'MSH.F3.R1.C1')[:40]}|{_field(message, 'MSH.F4.R1.C1')[:40]}"


def _message_type(message: Message | None) -> str:
    kind = f"{_field(message, 'MSH.F9.R1.C1')}^{_field(message, 'MSH.F9.R1.C2')}"
    return kind[:20] if kind != "^" else "unreadable"


def _certificate_subject(certificate: Any) -> str | None:
    """The client certificate's common name (ssl's getpeercert() form), when there is one."""
    if not isinstance(certificate, dict):
        return None
    for rdn in certificate.get("subject", ()):
        for name, value in rdn:
            if name == "commonName":
                return str(value)[:64]
    return None


async def _close(writer: HL7StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError, ssl.SSLError, asyncio.TimeoutError):
        await asyncio.wait_for(writer.wait_closed(), 2.0)
