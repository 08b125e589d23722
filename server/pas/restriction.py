"""A PAS patient's confidentiality: which label to show and what to withhold, from what PDS
said (now, or last time it answered) and what the PAS itself says. Pure.

PDS is the authority on restriction (shared/reference/nhs-apis.md 1.6). The PAS copy of
a restricted patient still holds the address, phone and GP the PAS recorded, so the
façade must know the restriction before it shows them. It knows it only when PDS has
said so for the record's current NHS number (`StoredPatient.pds_security`). Until then
the status is unknown and the façade fails closed: it withholds what an R record
withholds (address, telecom, contact, registered GP, pharmacy and birth-place
extensions; server.pas.merge.withhold). Unknown covers a patient registered while PDS
was down, one whose trace failed (PDS's own search hides restricted patients whenever
the query has a postcode, so "no match" does not mean "not restricted"), one without an
NHS number, and records stored before the façade kept PDS's answer.

- The label shown (`meta.security`, the PAS `confidentiality` field) is the stricter of
  PDS's confirmed code and the code the PAS itself sent: a PAS may restrict locally, never
  lift a restriction PDS holds. Unconfirmed, only the PAS's own code is shown (the façade
  does not claim R on PDS's behalf), while the R set is withheld anyway.
- V (name and birth date withheld too) applies once PDS or the PAS says V; the unknown
  state withholds the R set, not the V set, because name and birth date are what the
  registering hospital identifies its own patient by (and what a trace searches on).
"""

from __future__ import annotations

from dataclasses import dataclass

from server.pas.merge import Resource, labelled, security_code, withhold
from server.pas.store import PDSSecurity, StoredPatient, now_iso

CODES = ("U", "R", "V")  # least to most restrictive
UNCONFIRMED_WITHHOLDS = "R"


def stricter(*codes: str | None) -> str | None:
    """The most restrictive of the known codes (None when there is none)."""
    known = [c for c in codes if c in CODES]
    return max(known, key=CODES.index) if known else None


def pds_said(code: str | None, nhs_number: str | None) -> PDSSecurity | None:
    """A confirmation from a PDS answer; None when PDS gave no U/R/V label (not a confirmation)."""
    if code not in CODES or not nhs_number:
        return None
    return PDSSecurity(code, nhs_number, now_iso())


def confirmed_code(stored: StoredPatient) -> str | None:
    """PDS's code for the record's current NHS number, or None when PDS never confirmed it."""
    pds = stored.pds_security
    if pds is None or not stored.nhs_number or pds.nhs_number != stored.nhs_number:
        return None
    return pds.code if pds.code in CODES else None


@dataclass(frozen=True)
class Restriction:
    """How a PAS patient is shown: the label, what is withheld, and what PDS said."""

    label: str | None  # confidentiality code shown (meta.security), if any
    withheld_as: str | None  # the code whose fields are withheld (server.pas.merge.withhold)
    pds: str | None  # PDS's code for the current NHS number; None = unconfirmed


def restriction(pds: str | None, pas: str | None) -> Restriction:
    """The rule of the module docstring, from PDS's code (None = never confirmed) and the
    code the PAS sent."""
    if pds in CODES:
        label = stricter(pds, pas)
        return Restriction(label, label, pds)
    return Restriction(stricter(pas), stricter(pas, UNCONFIRMED_WITHHOLDS), None)


def restriction_of(stored: StoredPatient) -> Restriction:
    """Without a fresh PDS answer: what the store knows."""
    return restriction(confirmed_code(stored), stored.record.get("confidentiality"))


def shown(patient: Resource, rule: Restriction) -> Resource:
    """The patient labelled and withheld as `rule` says (a PDS label already equal is kept as is)."""
    if security_code(patient) != rule.label:
        patient = labelled(patient, rule.label)
    return withhold(patient, rule.withheld_as)
