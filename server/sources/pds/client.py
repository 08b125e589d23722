"""PDS FHIR R4 client: GET /Patient/{nhs} and GET /Patient?..., with PDS's quirks typed.

PDS quirks handled here (reference: shared/reference/nhs-apis.md section 1):
- too many matches arrives as HTTP 200 whose body is an OperationOutcome (live API) or
  as HTTP 400 (legacy sandbox): both become PDSTooManyMatches;
- a superseded NHS number returns the superseding record (its id differs);
- restricted patients (meta.security R/V) come back with fields removed: passed on as-is.

PDS answers in FHIR R4 already, so this source has no mapping module: what the client
returns is the NHS shape and the served shape at once, checked as valid R4 here, where
it enters (server.nhs.entry_validation.check_r4), and passed on by the provider unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from server.nhs.client import NHSClient
from server.nhs.entry_validation import check_r4, expect_resource, upstream_shape
from server.nhs.error_codes import CodeMeaning
from server.nhs.errors import UpstreamBadResponse, UpstreamRejected, read_nhs_outcome
from server.request_context import RequestContext

Resource = dict[str, Any]


class PDSTooManyMatches(UpstreamRejected):
    """PDS found more candidates than it will return: the search must be narrowed (sent as
    HTTP 200 live, 400 by the sandbox, so PDS's client raises it rather than the code table)."""

    def __init__(self, api: str, message: str, **kwargs: Any) -> None:
        super().__init__(api, message, **{**kwargs, "meaning": CodeMeaning.TOO_MANY_MATCHES})


@dataclass(frozen=True)
class PatientRead:
    patient: Resource
    etag: str | None


@dataclass(frozen=True)
class PatientMatch:
    patient: Resource
    score: float | None


def _is_too_many(body: Any) -> bool:
    return read_nhs_outcome(body).code == "TOO_MANY_MATCHES"


def parse_patient(body: Any, api: str = "PDS") -> Resource:
    """A PDS read's Patient, valid R4 (checked here, where it enters), else UpstreamBadResponse."""
    return check_r4(expect_resource(body, "Patient", api), api)


def parse_search_bundle(body: Any, api: str = "PDS") -> list[PatientMatch]:
    """Matches of a PDS searchset in PDS's order (score descending)."""
    with upstream_shape(api, "the searchset"):
        return _search_matches(body, api)


def _search_matches(body: Any, api: str) -> list[PatientMatch]:
    if _is_too_many(body):
        raise PDSTooManyMatches(
            api, "too many matches", status=200, nhs_code="TOO_MANY_MATCHES", nhs_display="Too Many Matches"
        )
    if not isinstance(body, dict) or body.get("resourceType") != "Bundle":
        raise UpstreamBadResponse(api, "expected a searchset Bundle")
    matches: list[PatientMatch] = []
    for entry in body.get("entry") or []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or resource.get("resourceType") != "Patient":
            raise UpstreamBadResponse(api, "searchset entry without a Patient")
        search = entry.get("search")  # optional: of the wrong type it is treated as absent
        score = search.get("score") if isinstance(search, dict) else None
        score = score if isinstance(score, (int, float)) and not isinstance(score, bool) else None
        matches.append(PatientMatch(check_r4(resource, api), None if score is None else float(score)))
    return matches


class PDSClient:
    """Typed calls on PDS; errors stay UpstreamError subclasses for the caller to map."""

    def __init__(self, client: NHSClient) -> None:
        self.client = client

    async def get_patient(self, nhs_number: str, ctx: RequestContext) -> PatientRead:
        response = await self.client.request("GET", f"Patient/{nhs_number}", ctx)
        return PatientRead(parse_patient(response.body), response.headers.get("ETag"))

    async def search(self, params: Sequence[tuple[str, str]], ctx: RequestContext) -> list[PatientMatch]:
        try:
            response = await self.client.request("GET", "Patient", ctx, params=params)
        except UpstreamRejected as err:
            if err.nhs_code == "TOO_MANY_MATCHES":
                raise PDSTooManyMatches(
                    err.api,
                    "too many matches",
                    status=err.status,
                    nhs_code=err.nhs_code,
                    nhs_display=err.nhs_display,
                    nhs_system=err.nhs_system,
                ) from None
            raise
        return parse_search_bundle(response.body)
