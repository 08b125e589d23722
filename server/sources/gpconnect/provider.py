"""AllergyIntolerance from GP Connect Access Record Structured (STU3 -> UK Core R4).

Search: one patient per search (GP Connect answers for one NHS number); clinical-status
decides whether resolved allergies are asked for (server/sources/gpconnect/query.py);
every parameter but patient is declared `evaluated="local"`, applied by the core's one
matcher to the converted allergies. The conversion is the declared mapping in
mappings/stu3_to_r4/.

Read: ids are issued by the façade as `gpc-{nhs}-{hash}` (mappings/stu3_to_r4/
gpconnect_allergies.py), so a read re-asks GP Connect for that patient's record
(resolved allergies included) and answers the allergy with that id, or 404. GP Connect
has no read by allergy id, and the record may have changed: a 404 then means the
allergy is no longer in the GP record.
"""

from __future__ import annotations

from typing import ClassVar

from server.fhir.errors import NotFound
from server.fhir.outcome import Issue, issue
from server.fhir.search_params import SearchParamSpec
from server.fhir.search_request import SearchRequest
from server.nhs.entry_validation import check_r4, upstream_shape
from server.nhs.nhs_number import is_valid_nhs_number
from server.providers.base import RequestContext, Resource, ResourceProvider, SearchResult
from server.sources.gpconnect.client import API, GPConnectClient
from server.sources.gpconnect.mapping import ConvertedAllergies, allergies_from_structured_record, nhs_number_of
from server.sources.gpconnect.query import (
    ACTIVE_ONLY_NOTE,
    CATEGORY_SYSTEM,
    CLINICAL_SYSTEM,
    CRITICALITY_SYSTEM,
    VERIFICATION_SYSTEM,
    gpconnect_query,
)

SP = "http://hl7.org/fhir/SearchParameter/"


def convert_record(record: Resource, nhs_number: str, *, include_resolved: bool) -> ConvertedAllergies:
    """The allergies of a checked structured record (server.sources.gpconnect.client) as valid R4;
    values of unexpected types in it are GP Connect's fault: UpstreamBadResponse (502).
    The R4 check matters: resources the record references (recorder, asserter) are
    copied in and were not part of the STU3 validation of Lists and allergies."""
    with upstream_shape(API, "the structured record"):
        converted = allergies_from_structured_record(record, nhs_number, include_resolved=include_resolved)
    for allergy in converted.allergies:
        check_r4(allergy, API)
    return converted


class AllergyIntoleranceFromGPConnect(ResourceProvider):
    resource_type: ClassVar[str] = "AllergyIntolerance"
    profile: ClassVar[str | None] = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-AllergyIntolerance"
    documentation: ClassVar[str] = (
        "Allergies from the patient's GP record (GP Connect Access Record Structured, converted from STU3). "
        "Searches need one patient. Resolved allergies are returned only when clinical-status asks for resolved "
        "or inactive. 'No known allergies' recorded by the GP is one AllergyIntolerance coded SNOMED 716186003; "
        "transfer-degraded records keep their original term in code.text. Ids are gpc-{NHS number}-{hash}."
    )
    search_params: ClassVar[tuple[SearchParamSpec, ...]] = (
        SearchParamSpec(
            "patient",
            "reference",
            "The patient: NHS number as id, Patient/{nhs}, or patient:identifier="
            "https://fhir.nhs.uk/Id/nhs-number|{nhs} (Modulus-11 checked). Required; one patient.",
            SP + "clinical-patient",
            path="patient",
            target_types=("Patient",),
            modifiers=("identifier",),  # an NHS number is needed: no :missing
            evaluated="upstream",
        ),
        SearchParamSpec(
            "clinical-status",
            "token",
            f"active | inactive | resolved ({CLINICAL_SYSTEM}); resolved/inactive also asks GP Connect "
            "for resolved allergies. Default: active only.",
            SP + "AllergyIntolerance-clinical-status",
            path="clinicalStatus",
            evaluated="local",
        ),
        SearchParamSpec(
            "verification-status",
            "token",
            f"unconfirmed | confirmed | refuted | entered-in-error ({VERIFICATION_SYSTEM})",
            SP + "AllergyIntolerance-verification-status",
            path="verificationStatus",
            evaluated="local",
        ),
        SearchParamSpec(
            "category",
            "token",
            f"food | medication | environment | biologic ({CATEGORY_SYSTEM})",
            SP + "AllergyIntolerance-category",
            path="category",
            evaluated="local",
        ),
        SearchParamSpec(
            "criticality",
            "token",
            f"low | high | unable-to-assess ({CRITICALITY_SYSTEM})",
            SP + "AllergyIntolerance-criticality",
            path="criticality",
            evaluated="local",
        ),
        SearchParamSpec(
            "date",
            "date",
            "When the allergy was recorded (recordedDate; GP Connect assertedDate)",
            SP + "clinical-date",
            path="recordedDate",
            evaluated="local",
        ),
    )
    includes: ClassVar[tuple[str, ...]] = ("AllergyIntolerance:patient",)
    default_filters: ClassVar[tuple[tuple[str, str], ...]] = (("clinical-status", "active"),)
    names_the_user_upstream: ClassVar[bool] = True  # the consumer JWT's requesting_practitioner

    def __init__(self, gpconnect: GPConnectClient) -> None:
        self.gpconnect = gpconnect

    async def _allergies(self, nhs_number: str, include_resolved: bool, ctx: RequestContext) -> ConvertedAllergies:
        record = await self.gpconnect.structured_record(nhs_number, include_resolved=include_resolved, ctx=ctx)
        return convert_record(record, nhs_number, include_resolved=include_resolved)

    async def read(self, resource_id: str, ctx: RequestContext) -> Resource:
        nhs = nhs_number_of(resource_id)
        if nhs is None or not is_valid_nhs_number(nhs):
            # Not an id this façade issued: nothing to ask GP Connect.
            raise NotFound(
                f"AllergyIntolerance/{resource_id} is not known here (ids look like gpc-<NHS number>-<hash>)"
            )
        converted = await self._allergies(nhs, True, ctx)
        for allergy in converted.allergies:
            if allergy["id"] == resource_id:
                return allergy
        raise NotFound(f"AllergyIntolerance/{resource_id} is no longer in the patient's GP record")

    async def fetch(self, request: SearchRequest, ctx: RequestContext) -> SearchResult:
        query = gpconnect_query(request)
        if not query.can_match:
            return SearchResult(matches=[])
        converted = await self._allergies(query.nhs_number, query.include_resolved, ctx)
        issues: list[Issue] = [issue("informational", text, severity="information") for text in converted.information]
        issues += [issue("incomplete", text, severity="warning") for text in converted.warnings]
        if not request.get("clinical-status"):
            issues.append(issue("informational", ACTIVE_ONLY_NOTE, severity="information"))
        return SearchResult(matches=list(converted.allergies), issues=issues)
