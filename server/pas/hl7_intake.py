"""HL7 v2 ADT intake: ER7 in, HL7 ACK out, through the same mapping engine as PAS JSON.

ADT^A04 (register), A08 (update), A28 (add person), A31 (update person) register or
update the patient; A40 merges the MRG-1 patient into the PID-3 one. Parsing uses the
`hl7` library (python-hl7); PID/PD1/MRG are flattened to SEGMENT.field.component
(mappings/hl7/adt_pid.yaml says which repetitions are keyed and which components are
gathered into lists), mapped HL7 -> FHIR by that profile, then FHIR -> PAS record by the
PAS profile, so the stored record is the same whichever door it came in by.

HL7 field semantics: an empty field means "no change" on an update, so a message only
overwrites the top-level PAS fields it carries (address lines and postcode together).

Answers (HTTP 200 always; the verdict is in MSA-1): AA on success; AE with one ERR per
problem when the message is understood but its data is wrong; AR when it is not an ADT
message this intake handles or cannot be parsed at all. Never a 500.

Senders: MSH-3/MSH-4 must be on the allow-list (server.pas.hl7_senders), checked right
after parsing and before anything else is looked at or stored. An unlisted sender gets AR
with one ERR, code 103 (HL7 table 0357, table value not found: MSH-3 and MSH-4 take their
values from the user-defined tables 0361 Application and 0362 Facility, and the value is
not in ours), at MSH^1^3. AR, not AE: table 0008 keeps AE for a message whose content is
wrong, and the PID data is not what is wrong here; AR is what this intake already answers
for a header it refuses (unsupported MSH-9), and it tells the interface engine the message
was not processed at all. The message is not stored and its PID is never mapped.

PAS store outage (MongoDB down): AR with ERR code 207 (HL7 table 0357, application
internal error), severity E, text "the PAS record store is unavailable (...); nothing
was stored; resend the message later". AR, not AE, because HL7 table 0008 defines AR as "failed to process message for
reason unrelated to content or format ... sender must decide on whether to automatically
send message again": the message itself is fine, and interface engines queue and resend
on AR, whereas AE tells the sender its data is wrong. Nothing of the message is stored
(for A40, a survivor update that landed before the outage is redone harmlessly by the
resend, and the merge itself is safe to repeat; server.pas.mongo_store).
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import hl7
from hl7.containers import Component, Message

from mappings.engine import MappingFailed, Problem, to_fhir, to_pas
from mappings.paths import get_path, set_path
from mappings.spec import Profile
from server.pas.errors import PASError, PASStoreUnavailable
from server.pas.hl7_senders import SenderAllowList
from server.pas.service import PASService
from server.providers.base import RequestContext

log = logging.getLogger("facade.pas.hl7")

UPSERT_EVENTS = {"A04", "A08", "A28", "A31"}
MERGE_EVENTS = {"A40"}
# HL7 table 0357 message error condition codes.
SEGMENT_ERROR, REQUIRED_MISSING, DATA_TYPE_ERROR, TABLE_VALUE = "100", "101", "102", "103"
UNSUPPORTED_TYPE, UNSUPPORTED_EVENT, UNKNOWN_KEY, INTERNAL = "200", "201", "204", "207"


@dataclass(frozen=True)
class HL7Problem:
    code: str
    text: str
    location: str = ""


class Rejected(Exception):
    """AR: the message is not one this intake can process."""

    def __init__(self, problem: HL7Problem) -> None:
        super().__init__(problem.text)
        self.problem = problem


def _repetitions(field: Any) -> list[list[str]]:
    """A parsed field as repetitions of component strings (escapes still in)."""
    if all(isinstance(x, str) for x in field):
        return [[str(field)]]
    reps = []
    for rep in field:
        if isinstance(rep, str):
            reps.append([rep])
        elif any(isinstance(c, Component) for c in rep):
            reps.append([str(c) for c in rep])
        else:
            reps.append([str(rep)])
    return reps


def flatten(message: Message, options: dict[str, Any]) -> dict[str, Any]:
    """SEGMENT -> field number -> component number -> text (first repetition, unescaped)."""
    repeat_keys: dict[str, int] = options.get("repeat_keys", {})
    record: dict[str, Any] = {}
    for seg_id in options.get("segments", []):
        try:
            segment = message.segment(seg_id)
        except KeyError:
            continue
        fields: dict[str, Any] = {}
        for number in range(1, len(segment)):
            reps = [[message.unescape(c) for c in rep] for rep in _repetitions(segment[number])]
            key_at = repeat_keys.get(f"{seg_id}.{number}")
            if key_at:
                keyed = {rep[key_at - 1]: rep[0] for rep in reps if len(rep) >= key_at and rep[key_at - 1] and rep[0]}
                if keyed:
                    fields[str(number)] = keyed
            elif reps and any(reps[0]):
                fields[str(number)] = {str(i + 1): c for i, c in enumerate(reps[0]) if c}
        record[seg_id] = fields
    for target, sources in (options.get("collect") or {}).items():
        values = [v for v in (get_path(record, s) for s in sources) if isinstance(v, str) and v]
        if values:
            set_path(record, target, values)
    return record


def _error_code(reason: str) -> str:
    if reason == "required":
        return REQUIRED_MISSING
    if reason.startswith("not one of the codes"):
        return TABLE_VALUE
    return DATA_TYPE_ERROR


def _location(path: str) -> str:
    """`PID.7.1` -> ERL `PID^1^7^1^1` (segment, sequence, field, repetition, component)."""
    parts = path.split(".")
    if len(parts) < 2 or not re.fullmatch(r"[A-Z][A-Z0-9]{2}", parts[0]) or not parts[1].isdigit():
        return ""
    loc = [parts[0], "1", parts[1]]
    if len(parts) > 2 and parts[2].isdigit():
        loc += ["1", parts[2]]
    return "^".join(loc)


def _escape(text: str) -> str:
    """Escape for the default encoding characters (ACKs always use them)."""
    out = text.replace("\\", "\\E\\").replace("|", "\\F\\").replace("^", "\\S\\").replace("&", "\\T\\")
    return out.replace("~", "\\R\\").replace("\r", " ").replace("\n", " ")


def _err_segment(problem: HL7Problem) -> str:
    return f"ERR||{problem.location}|{problem.code}^{_escape(problem.text)}^HL70357|E||||{_escape(problem.text)}"


def _control_id() -> str:
    return uuid.uuid4().hex[:20].upper()


def build_ack(code: str, message: Message | None, problems: list[HL7Problem]) -> str:
    """An ACK for `message` (its MSH fields swapped), or a bare one when it could not be read."""
    if message is not None:
        try:
            ack = str(message.create_ack(ack_code=code, message_id=_control_id()))
            lines = [line for line in ack.split("\r") if line]
            if lines and not lines[0].startswith("MSH|^~\\&"):
                message = None  # unusual encoding characters: answer with the default ones
            else:
                return "\r".join(lines + [_err_segment(p) for p in problems]) + "\r"
        except Exception:
            message = None
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S")
    msh = f"MSH|^~\\&|NHS-FHIR-FACADE||||{stamp}||ACK|{_control_id()}|P|2.4"
    return "\r".join([msh, f"MSA|{code}|", *(_err_segment(p) for p in problems)]) + "\r"


def field_value(message: Message, path: str) -> str:
    """The text at `path` (e.g. "MSH.F10.R1.C1"), "" when the message has no such field."""
    try:
        return str(message[path])
    except Exception:
        return ""


def parse(raw: bytes) -> Message:
    """Decode and parse ER7; raises Rejected with the reason."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Rejected(HL7Problem(SEGMENT_ERROR, "the message is not UTF-8 text")) from None
    text = text.replace("\r\n", "\r").replace("\n", "\r").strip("\r \t\x0b\x1c")  # also MLLP framing bytes
    if not text.startswith("MSH"):
        raise Rejected(HL7Problem(SEGMENT_ERROR, "not an HL7 v2 message: it must start with an MSH segment"))
    try:
        message = hl7.parse(text)
    except Exception:
        raise Rejected(HL7Problem(SEGMENT_ERROR, "the message cannot be parsed as HL7 v2 (ER7)")) from None
    return message


@dataclass
class HL7Intake:
    service: PASService
    profile: Profile
    senders: SenderAllowList = SenderAllowList(())  # empty: every sender refused

    def _check_sender(self, message: Message, ctx: RequestContext) -> None:
        """AR (Rejected) unless MSH-3/MSH-4 are on the allow-list (module docstring)."""
        application, facility = field_value(message, "MSH.F3.R1.C1"), field_value(message, "MSH.F4.R1.C1")
        if not self.senders.allows(application, facility):
            log.warning(
                "hl7: sender not allowed (MSH-3 %r, MSH-4 %r) request_id=%s",
                application[:20],
                facility[:20],
                ctx.request_id,
            )
            raise Rejected(
                HL7Problem(
                    TABLE_VALUE,
                    f"sending application '{application[:20]}' at facility "
                    f"'{facility[:20]}' is not on this façade's list of allowed HL7 senders "
                    "(FACADE_PAS_HL7_ALLOWED_SENDERS); nothing was stored",
                    "MSH^1^3",
                )
            )

    def _event(self, message: Message) -> str:
        msg_type, event = field_value(message, "MSH.F9.R1.C1"), field_value(message, "MSH.F9.R1.C2")
        if msg_type != "ADT":
            raise Rejected(
                HL7Problem(UNSUPPORTED_TYPE, f"message type '{msg_type[:10]}' is not supported (ADT only)", "MSH^1^9")
            )
        if event not in UPSERT_EVENTS | MERGE_EVENTS:
            raise Rejected(
                HL7Problem(
                    UNSUPPORTED_EVENT,
                    f"event '{event[:10]}' is not supported ({', '.join(sorted(UPSERT_EVENTS | MERGE_EVENTS))})",
                    "MSH^1^9",
                )
            )
        try:
            message.segment("PID")
        except KeyError:
            raise Rejected(HL7Problem(SEGMENT_ERROR, "the message has no PID segment", "PID")) from None
        return event

    def to_pas_record(self, message: Message) -> dict[str, Any]:
        """PID/PD1 -> FHIR (HL7 profile) -> PAS record (PAS profile); raises MappingFailed."""
        flat = flatten(message, self.profile.options)
        patient = to_fhir(self.profile.record("Patient"), flat)
        record, _ = to_pas(self.service.mappings.record("Patient"), patient)
        return record

    async def _upsert(self, record: dict[str, Any], ctx: RequestContext) -> None:
        current = await self.service.find(record["hospitalNumber"])
        body = {**current.record, **record, "hospitalNumber": current.hospital_number} if current else record
        await self.service.upsert(body, ctx)

    async def handle(
        self, raw: bytes, ctx: RequestContext, touched: Callable[[str, str | None], None] | None = None
    ) -> str:
        """The ACK for one message; `touched(hospital number, NHS number)` is told of every
        patient the message wrote (the audit trail names them)."""
        message: Message | None = None
        try:
            message = parse(raw)
            self._check_sender(message, ctx)
            event = self._event(message)
            record = self.to_pas_record(message)
            old = None
            if event in MERGE_EVENTS:
                old = get_path(flatten(message, self.profile.options), "MRG.1.MR")
                if not old:
                    return build_ack(
                        "AE",
                        message,
                        [
                            HL7Problem(
                                REQUIRED_MISSING,
                                "A40 needs MRG-1 with the prior hospital number (identifier type MR)",
                                "MRG^1^1",
                            )
                        ],
                    )
                await self.service.stored(old)  # checked before anything is written
            await self._upsert(record, ctx)
            if touched is not None:
                touched(record["hospitalNumber"], record.get("nhsNumber"))
            if old is not None:
                await self.service.merge(old, record["hospitalNumber"])
                if touched is not None:
                    touched(old, None)
        except Rejected as rejected:
            log.info("hl7: rejected (%s) request_id=%s", rejected.problem.code, ctx.request_id)
            return build_ack("AR", message, [rejected.problem])
        except MappingFailed as failed:
            return build_ack(
                "AE",
                message,
                [HL7Problem(_error_code(p.reason), _describe(p), _location(p.path)) for p in failed.problems],
            )
        except PASStoreUnavailable as err:
            log.warning("hl7: PAS store unavailable, answered AR request_id=%s", ctx.request_id)
            text = f"{err.problems[0].reason}; resend the message later"
            return build_ack("AR", message, [HL7Problem(INTERNAL, text)])
        except PASError as err:
            code = UNKNOWN_KEY if err.status == 404 else DATA_TYPE_ERROR if err.status == 422 else INTERNAL
            return build_ack(
                "AE",
                message,
                [
                    HL7Problem(_error_code(p.reason) if err.status == 422 else code, _describe(p), _location(p.path))
                    for p in err.problems
                ],
            )
        except Exception as exc:
            log.error("hl7: internal %s request_id=%s", type(exc).__name__, ctx.request_id)
            return build_ack(
                "AE", message, [HL7Problem(INTERNAL, f"internal error; quote request id {ctx.request_id}")]
            )
        log.info("hl7: accepted %s request_id=%s", event, ctx.request_id)
        return build_ack("AA", message, [])


def _describe(problem: Problem) -> str:
    if not problem.path:
        return problem.reason
    value = f" ({problem.value!r})" if problem.value is not None else ""
    return f"{problem.path}{value}: {problem.reason}"
