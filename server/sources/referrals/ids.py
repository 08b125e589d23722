"""Ids the façade issues for ServiceRequests: which NHS API holds the referral, and its
id there, encoded in a valid FHIR id ([A-Za-z0-9-.]{1,64}) so a read knows whom to ask.

Formats (the first dot-separated part names the source):
- `bars.{target key}.{BaRS id}`: a referral held by one BaRS target service that names
  its patient's NHS number itself (a read is a BaRS read);
- `barsp.{target key}.{NHS number}.{BaRS id}`: a BaRS referral that names no NHS number
  (its subject points into a booking message that never reaches us). The patient the
  search asked about travels in the id, as the UBRN does for e-RS, so a read serves the
  same subject as the search; a read is that patient's BaRS search filtered to the one
  id, which also checks that BaRS lists the referral for that patient (a made-up id
  cannot put one patient's referral under another's NHS number). With a target key of
  more than 10 characters such an id (for a UUID BaRS id) can exceed 64 characters; it is then not issued;
- `ers.{UBRN}.{e-RS R4 id}`: e-RS A041 R4 ServiceRequest (e-RS ids look like `r.<uuid>`
  or `a.<uuid>`, dots included); A041 is a search by UBRN only, so the UBRN travels in
  the id and a read is that search filtered to the one upstream id;
- `ers3.{UBRN}`: the STU3 ReferralRequest A005 answers for a UBRN (its id is the UBRN).

The upstream id part becomes a path segment of an NHS URL (BaRS `ServiceRequest/{id}`),
so it must be a plain id: dot-separated runs of letters, digits and `-`, never `.` or
`..` (which a URL resolves to another upstream path, e.g. `bars.sandbox...` read
`ServiceRequest/..`), nor empty parts. Such ids are neither issued nor parsed.
Pure functions, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from server.fhir.ids import is_fhir_id
from server.nhs.nhs_number import is_valid_nhs_number

# \A and \Z, not ^ and $: `$` also matches before a trailing newline ("x\n").
TARGET_KEY_RE = re.compile(r"\A[A-Za-z0-9]{1,16}\Z")
UBRN_RE = re.compile(r"\A[0-9]{12}\Z")
UBRN_SYSTEM = "https://fhir.nhs.uk/Id/UBRN"  # the identifier system of e-RS's UBRNs
UPSTREAM_ID_RE = re.compile(r"\A[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\Z")


@dataclass(frozen=True)
class BarsId:
    target: str
    upstream_id: str
    nhs_number: str | None = None  # only for referrals that name no NHS number themselves


@dataclass(frozen=True)
class ErsR4Id:
    ubrn: str
    upstream_id: str


@dataclass(frozen=True)
class ErsStu3Id:
    ubrn: str


SourceId = BarsId | ErsR4Id | ErsStu3Id


def is_ubrn(value: str) -> bool:
    """e-RS Unique Booking Reference Numbers are twelve digits."""
    return bool(UBRN_RE.match(value))


def issue_id(source: SourceId) -> str | None:
    """The façade id for `source`, or None when it cannot be a FHIR id (too long, or an
    upstream id with characters FHIR ids do not allow)."""
    if isinstance(source, BarsId):
        if not TARGET_KEY_RE.match(source.target):
            return None
        if source.nhs_number is None:
            text = f"bars.{source.target}.{source.upstream_id}"
        elif is_valid_nhs_number(source.nhs_number):
            text = f"barsp.{source.target}.{source.nhs_number}.{source.upstream_id}"
        else:
            return None
    elif isinstance(source, ErsR4Id):
        if not is_ubrn(source.ubrn):
            return None
        text = f"ers.{source.ubrn}.{source.upstream_id}"
    else:
        if not is_ubrn(source.ubrn):
            return None
        return f"ers3.{source.ubrn}"
    if not is_upstream_id(source.upstream_id) or not is_fhir_id(text):
        return None
    return text


def is_upstream_id(value: str) -> bool:
    """An upstream id safe as one URL path segment: no dot segments, no empty parts."""
    return bool(UPSTREAM_ID_RE.match(value))


def parse_id(text: str) -> SourceId | None:
    """The source a façade id names, or None when the façade never issued such an id."""
    if not is_fhir_id(text):
        return None
    tag, _, rest = text.partition(".")
    if tag == "ers3":
        return ErsStu3Id(rest) if is_ubrn(rest) else None
    head, _, upstream_id = rest.partition(".")
    if tag == "barsp":
        nhs_number, _, upstream_id = upstream_id.partition(".")
        if TARGET_KEY_RE.match(head) and is_valid_nhs_number(nhs_number) and is_upstream_id(upstream_id):
            return BarsId(head, upstream_id, nhs_number)
        return None
    if not is_upstream_id(upstream_id):
        return None
    if tag == "bars" and TARGET_KEY_RE.match(head):
        return BarsId(head, upstream_id)
    if tag == "ers" and is_ubrn(head):
        return ErsR4Id(head, upstream_id)
    return None
