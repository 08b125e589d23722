"""Façade-issued MedicationRequest ids for Prescription Tracker items, and their decoding.

CPT has no MedicationRequest endpoint: a line item can only be fetched with its
prescription (`GET /RequestGroup/{prescriptionId}[?issueNumber=]`). So the id we issue
carries the prescription id and issue number, and a read decodes them to know what to
fetch. The line-item part only has to be unique within one prescription issue: a read
re-derives it for every item and picks the one that matches.

Shape: `{prescription}[.{issue}].{item}`, where `.` never occurs in any part.
- prescription: the EPS id kept readable (`622F04-A83008-A691D5`); EPS ids use the
  Mod 37-2 check character set `0-9 A-Z +`, and `+` is not a FHIR id character, so it is
  written `p` (lowercase never occurs in an EPS id). An id outside that set is written
  `x` + lowercase unpadded base32 of its UTF-8 bytes.
- issue: only for repeat / eRD prescriptions (CPT lists each issue separately).
- item: the prescription-order-item-number (a GUID) when it is made of `A-Za-z0-9-`,
  else (or when the whole id would pass FHIR's 64-character limit) `h` + 16 hex of its
  SHA-256.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from server.fhir.ids import is_fhir_id

_READABLE_RX = re.compile(r"^[0-9A-Z][0-9A-Z+\-]*$")
_ENCODED_RX = re.compile(r"^(?:[0-9A-Z][0-9A-Zp\-]*|x[a-z2-7]+)$")
_PLAIN_ITEM = re.compile(r"^[A-Za-z0-9\-]+$")
MAX_ID = 64


class UnissuableId(ValueError):
    """The prescription id is too long to fit a FHIR id, even in its compact form."""


@dataclass(frozen=True)
class PrescriptionKey:
    """What a façade MedicationRequest id says about where its item lives in CPT."""

    prescription_id: str
    issue: int | None


def encode_prescription_id(prescription_id: str) -> str:
    if _READABLE_RX.match(prescription_id):
        return prescription_id.replace("+", "p")
    raw = base64.b32encode(prescription_id.encode("utf-8")).decode("ascii")
    return "x" + raw.rstrip("=").lower()


def decode_prescription_id(token: str) -> str | None:
    if not _ENCODED_RX.match(token):
        return None
    if token.startswith("x"):
        body = token[1:].upper()
        try:
            text = base64.b32decode(body + "=" * (-len(body) % 8)).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
    else:
        text = token.replace("p", "+")
    return text if text and encode_prescription_id(text) == token else None


def _hashed(item_number: str) -> str:
    return "h" + hashlib.sha256(item_number.encode("utf-8")).hexdigest()[:16]


def medication_request_id(prescription_id: str, issue: int | None, item_number: str) -> str:
    """The stable id the façade issues for one line item of one prescription issue."""
    if not prescription_id or not item_number:
        raise UnissuableId("a prescription id and an item number are both needed")
    head = encode_prescription_id(prescription_id)
    if issue is not None:
        head = f"{head}.{int(issue)}"
    item = item_number if _PLAIN_ITEM.match(item_number) else _hashed(item_number)
    if len(head) + 1 + len(item) > MAX_ID:
        item = _hashed(item_number)
    out = f"{head}.{item}"
    if len(out) > MAX_ID:
        raise UnissuableId("prescription id too long for a FHIR id")
    return out


def parse_medication_request_id(resource_id: str) -> PrescriptionKey | None:
    """Which prescription issue a façade id points at; None for ids we never issue."""
    if not is_fhir_id(resource_id):
        return None
    parts = resource_id.split(".")
    if len(parts) == 2:
        rx_token, issue = parts[0], None
    elif len(parts) == 3 and parts[1].isdigit() and parts[1] == str(int(parts[1])):
        rx_token, issue = parts[0], int(parts[1])
    else:
        return None
    if not parts[-1]:
        return None
    prescription_id = decode_prescription_id(rx_token)
    if prescription_id is None:
        return None
    return PrescriptionKey(prescription_id, issue)
