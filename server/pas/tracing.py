"""NHS number tracing: which PDS searches to run for a PAS patient, and what their
results mean. Pure decisions; the PDS calls live in server.pas.service.

The rule is "never guess": a number is accepted only from one confident candidate.

1. Exact search (`_exact-match=true`) on family, given, gender, birth date and, when
   known, postcode. Accepted: exactly one result, score 1.0, and its birth date (when
   PDS shows one) equal to the PAS one. Two or more exact results, or PDS's "too many
   matches", end the trace at once as a multiple match (a fuzzy search can only widen
   the field). No result: go on to step 2.
2. Fuzzy search (`_fuzzy-match=true`, soundex names) on the same data, when it meets
   PDS's fuzzy minimum. Accepted: exactly one result with score >= FUZZY_MIN_SCORE
   (0.95 by default: a spelling variant of one name, not of two), and the birth date
   and gender PDS shows equal to the PAS ones (PDS's fuzzy search tolerates
   transposed dates; a trace must not).
3. Anything else: no match.

Outcomes map to the NHS Number Status Indicator: 01 (present and verified) on
acceptance, 04 (trace attempted - no match or multiple match) otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from server.sources.pds.client import PatientMatch

VERIFIED = "01"
TRACE_FAILED = "04"
FUZZY_MIN_SCORE = 0.95
EXACT_SCORE = 1.0

Reason = Literal[
    "exact-match", "fuzzy-match", "no-match", "multiple-matches", "too-many-matches", "low-score", "details-differ"
]


@dataclass(frozen=True)
class TraceQuery:
    """The demographics a trace searches on, taken from the PAS patient's FHIR form."""

    family: str
    birth_date: str
    given: str | None = None
    gender: str | None = None
    postcode: str | None = None

    @classmethod
    def from_patient(cls, patient: dict[str, Any]) -> TraceQuery | None:
        """None when the patient lacks PDS's minimum (family and birth date)."""
        name = (patient.get("name") or [{}])[0]
        family, birth = name.get("family"), patient.get("birthDate")
        if not family or not birth:
            return None
        given = (name.get("given") or [None])[0]
        postcode = ((patient.get("address") or [{}])[0]).get("postalCode")
        return cls(family=family, birth_date=birth, given=given, gender=patient.get("gender"), postcode=postcode)

    def exact_params(self) -> list[tuple[str, str]]:
        return [("_exact-match", "true"), *self._demographics()]

    def fuzzy_params(self) -> list[tuple[str, str]] | None:
        """PDS's fuzzy minimum: given+family+birthdate, or family+birthdate+gender+postcode."""
        if not self.given and not (self.gender and self.postcode):
            return None
        return [("_fuzzy-match", "true"), *self._demographics()]

    def _demographics(self) -> list[tuple[str, str]]:
        params = [("family", self.family)]
        if self.given:
            params.append(("given", self.given))
        if self.gender:
            params.append(("gender", self.gender))
        params.append(("birthdate", f"eq{self.birth_date}"))
        if self.postcode:
            params.append(("address-postalcode", self.postcode))
        return params


@dataclass(frozen=True)
class TraceOutcome:
    status: str
    reason: Reason
    stage: Literal["exact", "fuzzy"]
    nhs_number: str | None = None
    score: float | None = None
    candidates: int = 0
    security: str | None = None  # meta.security code PDS gave the match (U, R, V)

    @property
    def matched(self) -> bool:
        return self.nhs_number is not None

    def header(self) -> str:
        """For the X-NHS-Trace response header: no PHI, just the decision."""
        parts = [
            f"status={self.status}",
            f"result={self.reason}",
            f"stage={self.stage}",
            f"candidates={self.candidates}",
        ]
        if self.score is not None:
            parts.append(f"score={self.score:g}")
        return "; ".join(parts)


def _security(patient: dict[str, Any]) -> str | None:
    labels = (patient.get("meta") or {}).get("security") or []
    return labels[0].get("code") if labels and isinstance(labels[0], dict) else None


def _details_agree(query: TraceQuery, patient: dict[str, Any], *, check_gender: bool) -> bool:
    birth = patient.get("birthDate")
    if birth is not None and birth[:10] != query.birth_date:
        return False
    gender = patient.get("gender")
    return not (check_gender and query.gender and gender and gender != query.gender)


def judge_exact(query: TraceQuery, matches: Sequence[PatientMatch] | None) -> TraceOutcome | None:
    """The exact stage's verdict, or None to go on to the fuzzy stage.

    `matches=None` means PDS answered "too many matches".
    """
    if matches is None:
        return TraceOutcome(TRACE_FAILED, "too-many-matches", "exact")
    if not matches:
        return None
    if len(matches) > 1:
        return TraceOutcome(TRACE_FAILED, "multiple-matches", "exact", candidates=len(matches))
    only = matches[0]
    if only.score is not None and only.score < EXACT_SCORE:
        return None
    if not _details_agree(query, only.patient, check_gender=False):
        return TraceOutcome(TRACE_FAILED, "details-differ", "exact", candidates=1, score=only.score)
    return TraceOutcome(
        VERIFIED,
        "exact-match",
        "exact",
        nhs_number=only.patient["id"],
        score=only.score,
        candidates=1,
        security=_security(only.patient),
    )


def judge_fuzzy(
    query: TraceQuery, matches: Sequence[PatientMatch] | None, min_score: float = FUZZY_MIN_SCORE
) -> TraceOutcome:
    if matches is None:
        return TraceOutcome(TRACE_FAILED, "too-many-matches", "fuzzy")
    if not matches:
        return TraceOutcome(TRACE_FAILED, "no-match", "fuzzy")
    if len(matches) > 1:
        return TraceOutcome(TRACE_FAILED, "multiple-matches", "fuzzy", candidates=len(matches))
    only = matches[0]
    if only.score is None or only.score < min_score:
        return TraceOutcome(TRACE_FAILED, "low-score", "fuzzy", candidates=1, score=only.score)
    if not _details_agree(query, only.patient, check_gender=True):
        return TraceOutcome(TRACE_FAILED, "details-differ", "fuzzy", candidates=1, score=only.score)
    return TraceOutcome(
        VERIFIED,
        "fuzzy-match",
        "fuzzy",
        nhs_number=only.patient["id"],
        score=only.score,
        candidates=1,
        security=_security(only.patient),
    )


def no_fuzzy_possible() -> TraceOutcome:
    """The exact search found nobody and the data is below PDS's fuzzy minimum."""
    return TraceOutcome(TRACE_FAILED, "no-match", "exact")
