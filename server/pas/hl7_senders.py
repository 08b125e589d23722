"""Which HL7 v2 senders the intake accepts: MSH-3 (sending application) and MSH-4 (sending
facility) against an allow-list (FACADE_PAS_HL7_ALLOWED_SENDERS). Pure.

An entry is `APP|FACILITY` (that application at that facility) or `APP|*` (that
application at any facility). Each side is the HD's first component (namespace id),
compared exactly: HL7 values are case-sensitive, and an allow-list that folds case or
trims accepts senders nobody listed (so entries may not start or end with a space). `|` is the field separator MSH-1 fixes for
practically every sender, so the entry reads like the MSH it matches.

Checked at start-up (server.settings validates every entry): a typo fails the façade's
start, not every message later.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

ANY_FACILITY = "*"
# What this project's tests and examples send (MSH|^~\&|PAS|RX1|...): accepted by default
# only when every NHS API is the emulator (Settings.pas_hl7_senders).
SANDBOX_SENDERS = ("PAS|RX1",)
_ENTRY = re.compile(r"^([^|*\s](?:[^|]*[^|\s])?)\|([^|\s](?:[^|]*[^|\s])?)$")


@dataclass(frozen=True)
class Sender:
    application: str
    facility: str  # ANY_FACILITY = any

    def __str__(self) -> str:
        return f"{self.application}|{self.facility}"


def parse_sender(entry: str) -> Sender:
    """`APP|FACILITY` or `APP|*`; ValueError naming the rule otherwise."""
    match = _ENTRY.match(entry)
    if match is None or (ANY_FACILITY in match.group(2) and match.group(2) != ANY_FACILITY):
        raise ValueError(
            f"HL7 sender {entry[:60]!r} is not APP|FACILITY or APP|* "
            "(MSH-3 and MSH-4 namespace ids without surrounding spaces; only the facility may be *)"
        )
    return Sender(match.group(1), match.group(2))


@dataclass(frozen=True)
class SenderAllowList:
    senders: tuple[Sender, ...]

    @classmethod
    def from_entries(cls, entries: Iterable[str]) -> SenderAllowList:
        return cls(tuple(parse_sender(e) for e in entries))

    def allows(self, application: str, facility: str) -> bool:
        return any(s.application == application and s.facility in (ANY_FACILITY, facility) for s in self.senders)
