"""Patient from PDS: read by NHS number, search translated to PDS's parameters.

Every search parameter is evaluated upstream (the SearchParamSpec default): PDS matches
names and addresses by its own rules (fuzzy, history), which no local rule repeats.
"""

from __future__ import annotations

from typing import ClassVar

from server.fhir.errors import InvalidSearchParameter
from server.fhir.outcome import issue
from server.fhir.search_params import ParsedParam, SearchParamSpec, TokenValue
from server.fhir.search_request import SearchRequest
from server.nhs.errors import UpstreamError
from server.nhs.nhs_number import NHS_NUMBER_SYSTEM, is_valid_nhs_number
from server.providers.base import RequestContext, Resource, ResourceProvider, SearchResult
from server.providers.patient_reference import check_nhs_number
from server.providers.upstream_errors import to_fhir_error
from server.sources.pds.client import PDSClient
from server.sources.pds.query import pds_search_params

SP = "http://hl7.org/fhir/SearchParameter/"


class PatientFromPDS(ResourceProvider):
    resource_type: ClassVar[str] = "Patient"
    profile: ClassVar[str | None] = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient"
    documentation: ClassVar[str] = (
        "Demographics from the NHS Personal Demographics Service (PDS FHIR R4). The id is the NHS number. "
        "Searches need an NHS number identifier, or at least family and birthdate (PDS minimum)."
    )
    identifier_systems: ClassVar[tuple[str, ...]] = (NHS_NUMBER_SYSTEM,)
    # PDS search results lack extensions a read of the same versionId has (the nominated
    # pharmacy among them): search copies are marked (server.fhir.versioning.search_copy).
    search_copies_complete: ClassVar[bool] = False
    # Resolved by running each source type's patient search for every Patient on the page
    # (server/fhir/includes.py); advertised only when that type is registered.
    search_params: ClassVar[tuple[SearchParamSpec, ...]] = (
        SearchParamSpec(
            "identifier",
            "token",
            f"NHS number: {NHS_NUMBER_SYSTEM}|9000000009 (Modulus-11 checked)",
            SP + "Patient-identifier",
            path="identifier",
            modifiers=(),  # PDS: an NHS number read; no modifier (search_params.accepted_modifiers)
        ),
        SearchParamSpec(
            "family",
            "string",
            "Family name; starts-with by default, :exact supported",
            SP + "individual-family",
            path="name",
            modifiers=("exact",),  # PDS: no :contains, no :missing (server/sources/pds/query.py)
        ),
        SearchParamSpec(
            "given",
            "string",
            "Given name; repeat for several given names",
            SP + "individual-given",
            path="name",
            modifiers=("exact",),
        ),
        SearchParamSpec(
            "gender", "token", "male | female | other | unknown", SP + "individual-gender", path="gender", modifiers=()
        ),
        SearchParamSpec(
            "birthdate",
            "date",
            "Date of birth; eq, ge, le, gt, lt, sa, eb and partial dates",
            SP + "individual-birthdate",
            path="birthDate",
            modifiers=(),
        ),
        SearchParamSpec(
            "death-date",
            "date",
            "Date of death; same prefixes as birthdate",
            SP + "Patient-death-date",
            path="deceasedDateTime",
            modifiers=(),
        ),
        SearchParamSpec(
            "address-postalcode",
            "string",
            "Postcode (spaces ignored by PDS)",
            SP + "individual-address-postalcode",
            path="address",
            modifiers=("exact",),
        ),
        SearchParamSpec(
            "general-practitioner",
            "reference",
            "Registered GP practice ODS code",
            SP + "Patient-general-practitioner",
            path="generalPractitioner",
            target_types=("Organization",),
            modifiers=("identifier",),
        ),
        SearchParamSpec(
            "email", "token", "Email address, exact", SP + "individual-email", path="telecom", modifiers=()
        ),
        SearchParamSpec("phone", "token", "Phone number, exact", SP + "individual-phone", path="telecom", modifiers=()),
        SearchParamSpec("_fuzzy-match", "token", "PDS fuzzy (soundex) search: true | false", modifiers=()),
        SearchParamSpec("_exact-match", "token", "PDS exact match only (score 1.0): true | false", modifiers=()),
        SearchParamSpec(
            "_history", "token", "PDS: also match previous names and addresses: true | false", modifiers=()
        ),
    )

    def __init__(self, pds: PDSClient, *, max_results: int | None = None) -> None:
        self.pds = pds
        self.max_results = max_results

    async def read(self, resource_id: str, ctx: RequestContext) -> Resource:
        check_nhs_number(resource_id)  # checked locally: an invalid number never reaches PDS
        return (await self.pds.get_patient(resource_id, ctx)).patient

    async def fetch(self, request: SearchRequest, ctx: RequestContext) -> SearchResult:
        identifiers = request.get("identifier")
        if identifiers:
            others = sorted({p.key() for p in request.params if p.name != "identifier"})
            if others:
                # An NHS number search is a PDS read: PDS cannot also apply other criteria,
                # and ignoring them would return records the client excluded (AND semantics).
                raise InvalidSearchParameter(
                    "Parameter 'identifier' (an NHS number read) cannot be combined with " + ", ".join(others)
                )
            return await self._by_identifier(identifiers, ctx)
        params = pds_search_params(request)
        if self.max_results is not None:
            params.append(("_max-results", str(self.max_results)))
        matches = await self.pds.search(params, ctx)  # PDSTooManyMatches: the upstream handler's 422
        return SearchResult(
            matches=[m.patient for m in matches],
            scores={m.patient["id"]: m.score for m in matches if m.score is not None},
        )

    async def _by_identifier(self, identifiers: list[ParsedParam], ctx: RequestContext) -> SearchResult:
        """identifier=system|nhs is a PDS read; several AND-ed identifiers must agree."""
        wanted: set[str] | None = None
        for param in identifiers:
            if param.modifier:
                raise InvalidSearchParameter(f"Parameter 'identifier:{param.modifier}' is not supported")
            numbers = set()
            for value in param.values:
                assert isinstance(value, TokenValue)
                if not value.any_system and value.system != NHS_NUMBER_SYSTEM:
                    continue  # another system: no PDS patient carries it
                if not value.code:
                    raise InvalidSearchParameter("Parameter 'identifier' needs an NHS number after the '|'")
                numbers.add(value.code)
            wanted = numbers if wanted is None else wanted & numbers
        result = SearchResult(matches=[])
        seen: set[str] = set()
        for number in sorted(wanted or ()):
            if not is_valid_nhs_number(number):
                result.issues.append(
                    issue("value", f"'{number}' is not a valid NHS number (Modulus-11)", severity="warning")
                )
                continue
            try:
                patient = (await self.pds.get_patient(number, ctx)).patient
                if patient["id"] not in seen:  # a superseded number and its successor: one match
                    seen.add(patient["id"])
                    result.matches.append(patient)
            except UpstreamError as err:  # stays: a number PDS does not know (or invalidated) matches nothing
                if to_fhir_error(err).status not in (404, 410):
                    raise
        return result
