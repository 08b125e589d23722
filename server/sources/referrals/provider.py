"""ServiceRequest from BaRS (by patient) and e-RS (by UBRN), one provider for both.

Searches are routed by server.sources.referrals.query, and every parameter is
evaluated locally by the core on what the routed API answers; every upstream answer is
normalised (server.sources.referrals.service_request_r4, or the STU3 mapping for e-RS A005) and
validated as R4 where it enters, before anything uses it. A resource that fails is left
out of a search with a warning naming the element paths (never values); a read of one
is a 502. Reads take the ids this façade issues (server.sources.referrals.ids),
which say which API, and which BaRS target, holds the referral.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import ClassVar

from server.fhir import errors as fe
from server.fhir.outcome import Issue, issue
from server.fhir.search_params import SearchParamSpec
from server.fhir.search_request import SearchRequest
from server.nhs.entry_validation import r4_problems, upstream_shape
from server.nhs.errors import UpstreamBadResponse, UpstreamError
from server.nhs.nhs_number import NHS_NUMBER_SYSTEM
from server.providers.base import RequestContext, Resource, ResourceProvider, SearchResult
from server.providers.patient_reference import patient_and_subject
from server.providers.upstream_errors import to_fhir_error
from server.sources.referrals.bars_client import BaRSClient, BarsSearchset
from server.sources.referrals.ers_client import ERSClient, ERSContextMissing
from server.sources.referrals.ers_mapping import referral_request_to_service_request
from server.sources.referrals.ids import UBRN_SYSTEM, BarsId, ErsR4Id, ErsStu3Id, issue_id, parse_id
from server.sources.referrals.query import ByPatient, plan_search
from server.sources.referrals.service_request_r4 import carries_ubrn, nhs_number_of, normalise_service_request
from server.sources.referrals.settings import BarsTarget

log = logging.getLogger("facade.servicerequest")
SP = "http://hl7.org/fhir/SearchParameter/"


class Found:
    """Resources from one upstream call plus the warnings the client should see."""

    def __init__(self) -> None:
        self.resources: list[Resource] = []
        self.issues: list[Issue] = []

    def admit(self, resource: Resource | None, where: str) -> None:
        """Keep `resource` if it is valid R4, else warn (paths only, no values)."""
        if resource is None:
            self.issues.append(
                issue(
                    "incomplete",
                    f"A referral from {where} has an id the façade cannot re-issue as a FHIR id; it was left out",
                    severity="warning",
                )
            )
            return
        problems = r4_problems(resource)
        if problems:
            log.warning("upstream ServiceRequest from %s failed R4 validation: %s", where, "; ".join(problems))
            self.issues.append(
                issue(
                    "incomplete",
                    f"A referral from {where} is not valid FHIR R4 ServiceRequest "
                    f"({'; '.join(problems)}); it was left out",
                    severity="warning",
                )
            )
            return
        self.resources.append(resource)

    def reject(self, err: UpstreamBadResponse, where: str) -> None:
        """Leave out one referral the façade could not convert (its message names no values)."""
        log.warning("upstream ServiceRequest from %s could not be converted: %s", where, err.message)
        self.issues.append(
            issue(
                "incomplete",
                f"A referral from {where} could not be read ({err.message}); it was left out",
                severity="warning",
            )
        )


def _context_error(err: ERSContextMissing) -> fe.FHIRError:
    return fe.BadRequest(
        "e-RS searches by UBRN (A041) are user-restricted: send the headers "
        f"{' and '.join(err.missing)} with the request (or configure FACADE_ERS_BUSINESS_FUNCTION / "
        "FACADE_END_USER_ODS)"
    )


def _misrouted_search(err: UpstreamError) -> fe.FHIRError | None:
    """A 404 to a *search* means the upstream does not know the route or target, not
    that the client asked for something missing: that is the façade's problem (502).
    None for any other failure: the upstream exception handler maps it as usual."""
    mapped = to_fhir_error(err)
    if mapped.status != 404:
        return None
    return fe.BadGateway(
        f"{err.api} answered a search with 404 (target service not known?): {mapped.diagnostics}",
        details=mapped.details,
    )


class ServiceRequestFromReferrals(ResourceProvider):
    resource_type: ClassVar[str] = "ServiceRequest"
    documentation: ClassVar[str] = (
        "Referrals. By patient (NHS number) from the Booking and Referral Standard (BaRS) target services "
        "configured in FACADE_BARS_TARGETS; by UBRN from the e-Referral Service (e-RS: R4 A041, or STU3 A005 "
        "mapped to R4 under application-restricted access). A search needs one of the two. Ids are issued by "
        "the façade and name the source; subject carries Patient/{nhs number} and the NHS number identifier; "
        "UBRNs are kept as identifier system https://fhir.nhs.uk/Id/UBRN."
    )
    identifier_systems: ClassVar[tuple[str, ...]] = (UBRN_SYSTEM,)
    includes: ClassVar[tuple[str, ...]] = ("ServiceRequest:patient", "ServiceRequest:subject")
    search_params: ClassVar[tuple[SearchParamSpec, ...]] = (
        *patient_and_subject(
            "ServiceRequest",
            "Patient by NHS number (9000000009, Patient/9000000009, "
            f"patient:identifier={NHS_NUMBER_SYSTEM}|9000000009); Modulus-11 checked; asks BaRS",
            "Same as patient (subject is always a Patient here)",
        ),
        SearchParamSpec(
            "identifier",
            "token",
            f"UBRN ({UBRN_SYSTEM}|000000070000) asks e-RS; other identifiers filter a patient search",
            SP + "clinical-identifier",
            path="identifier",
            evaluated="local",
        ),
        SearchParamSpec(
            "status",
            "token",
            "draft | active | on-hold | revoked | completed | entered-in-error | unknown (filtered by the façade)",
            SP + "ServiceRequest-status",
            path="status",
            evaluated="local",
        ),
        SearchParamSpec(
            "intent",
            "token",
            "proposal | plan | order ... (filtered by the façade)",
            SP + "ServiceRequest-intent",
            path="intent",
            evaluated="local",
        ),
        SearchParamSpec(
            "priority",
            "token",
            "routine | urgent | asap | stat (filtered by the façade)",
            SP + "ServiceRequest-priority",
            path="priority",
            evaluated="local",
        ),
        SearchParamSpec(
            "category",
            "token",
            "e.g. https://fhir.nhs.uk/CodeSystem/message-category-servicerequest|referral (filtered by the façade)",
            SP + "ServiceRequest-category",
            path="category",
            evaluated="local",
        ),
        SearchParamSpec(
            "code",
            "token",
            "What is requested (filtered by the façade)",
            SP + "clinical-code",
            path="code",
            evaluated="local",
        ),
        SearchParamSpec(
            "performer-type",
            "token",
            "Performer role or specialty (filtered by the façade)",
            SP + "ServiceRequest-performer-type",
            path="performerType",
            evaluated="local",
        ),
        SearchParamSpec(
            "authored",
            "date",
            "authoredOn, with FHIR prefixes (filtered by the façade)",
            SP + "ServiceRequest-authored",
            path="authoredOn",
            evaluated="local",
        ),
        SearchParamSpec(
            "occurrence",
            "date",
            "occurrence[x] date or period (filtered by the façade)",
            SP + "clinical-date",
            path="occurrenceDateTime|occurrencePeriod",
            evaluated="local",
        ),
    )

    def __init__(
        self, bars: BaRSClient, ers: ERSClient, targets: Sequence[BarsTarget], *, ers_app_restricted: bool = False
    ) -> None:
        self.bars = bars
        self.ers = ers
        self.targets = {t.key: t for t in targets}
        self.ers_app_restricted = ers_app_restricted

    # ---- read ----------------------------------------------------------------------

    async def read(self, resource_id: str, ctx: RequestContext) -> Resource:
        source = parse_id(resource_id)
        if source is None:
            raise fe.NotFound(
                f"ServiceRequest/{resource_id} was not issued by this server (ids name their source: "
                "bars.<target>.<id>, barsp.<target>.<NHS number>.<id>, ers.<UBRN>.<id>, ers3.<UBRN>)"
            )
        try:
            if isinstance(source, BarsId):
                resource = await self._read_bars(source, resource_id, ctx)
            elif isinstance(source, ErsR4Id):
                resource = await self._read_ers_r4(source, resource_id, ctx)
            else:
                resource = await self._read_ers_stu3(source, ctx)
        except ERSContextMissing as err:
            raise _context_error(err) from None
        problems = r4_problems(resource)
        if problems:
            log.warning("upstream ServiceRequest failed R4 validation: %s", "; ".join(problems))
            raise fe.BadGateway(f"The NHS API's ServiceRequest is not valid FHIR R4 ({'; '.join(problems)})")
        return resource

    async def _read_bars(self, source: BarsId, resource_id: str, ctx: RequestContext) -> Resource:
        target = self.targets.get(source.target)
        if target is None:
            raise fe.NotFound(
                f"ServiceRequest/{resource_id} came from BaRS target '{source.target}', which is no longer configured"
            )
        if source.nhs_number is not None:
            return await self._read_bars_by_patient(target, source, resource_id, ctx)
        upstream = await self.bars.read(target, source.upstream_id, ctx)
        if upstream.get("id") != source.upstream_id:
            raise fe.BadGateway("BaRS answered a read with a different ServiceRequest id")
        if nhs_number_of(upstream.get("subject")) is None:
            # Issued ids name the patient for such referrals (barsp.), so BaRS changed it.
            raise fe.BadGateway(
                "BaRS's ServiceRequest names no patient NHS number; search by patient for its current id"
            )
        with upstream_shape("BaRS", "the ServiceRequest"):
            resource, _ = normalise_service_request(upstream, facade_id=resource_id)
        return resource

    async def _read_bars_by_patient(
        self, target: BarsTarget, source: BarsId, resource_id: str, ctx: RequestContext
    ) -> Resource:
        """A referral that names no NHS number (barsp. ids): the patient's BaRS search
        filtered to the one id, converted exactly as that search converts it, so the read
        and the search serve one content, and BaRS vouches for the patient."""
        assert source.nhs_number is not None
        searchset = await self.bars.search_by_patient(target, source.nhs_number, ctx)
        for upstream in searchset.resources:
            if upstream.get("id") != source.upstream_id:
                continue
            with upstream_shape("BaRS", "the ServiceRequest"):
                resource, _ = normalise_service_request(upstream, facade_id=resource_id, nhs_number=source.nhs_number)
            if nhs_number_of(resource.get("subject")) == source.nhs_number:
                return resource
        raise fe.NotFound(f"ServiceRequest/{resource_id} is no longer listed by BaRS for that patient")

    async def _read_ers_r4(self, source: ErsR4Id, resource_id: str, ctx: RequestContext) -> Resource:
        for upstream in await self.ers.search_r4(source.ubrn, ctx):
            with upstream_shape("e-RS", "the ServiceRequest"):
                if upstream.get("id") == source.upstream_id and carries_ubrn(upstream, source.ubrn):
                    resource, _ = normalise_service_request(
                        upstream, facade_id=resource_id, ubrn=source.ubrn, upstream_request_id=source.upstream_id
                    )
                    return resource
        raise fe.NotFound(f"ServiceRequest/{resource_id} is no longer returned by e-RS for its UBRN")

    async def _read_ers_stu3(self, source: ErsStu3Id, ctx: RequestContext) -> Resource:
        stu3 = await self.ers.referral_request(source.ubrn, ctx)
        if stu3.get("id") != source.ubrn:
            raise fe.BadGateway("e-RS answered a ReferralRequest read with a different UBRN")
        with upstream_shape("e-RS", "the ReferralRequest"):
            return referral_request_to_service_request(stu3, f"ers3.{source.ubrn}")

    # ---- search --------------------------------------------------------------------

    async def fetch(self, request: SearchRequest, ctx: RequestContext) -> SearchResult:
        plan = plan_search(request)
        if isinstance(plan, ByPatient):
            calls = [self._bars_search(t, n, ctx) for n in plan.nhs_numbers for t in self.targets.values()]
        else:
            ask = self._ers_stu3_search if self.ers_app_restricted else self._ers_r4_search
            calls = [ask(u, ctx) for u in plan.ubrns]
        try:
            found: list[Found] = list(await asyncio.gather(*calls))
        except ERSContextMissing as err:
            raise _context_error(err) from None
        except UpstreamError as err:  # stays: a 404 to a search is the façade's 502, not the client's 404
            misrouted = _misrouted_search(err)
            if misrouted is None:
                raise
            raise misrouted from None
        result = SearchResult(matches=[])
        seen: set[str] = set()
        for part in found:
            result.issues.extend(part.issues)
            for resource in part.resources:
                if resource["id"] not in seen:
                    seen.add(resource["id"])
                    result.matches.append(resource)
        return result

    async def _bars_search(self, target: BarsTarget, nhs_number: str, ctx: RequestContext) -> Found:
        return bars_found(await self.bars.search_by_patient(target, nhs_number, ctx), target.key, nhs_number)

    async def _ers_r4_search(self, ubrn: str, ctx: RequestContext) -> Found:
        return ers_r4_found(await self.ers.search_r4(ubrn, ctx), ubrn)

    async def _ers_stu3_search(self, ubrn: str, ctx: RequestContext) -> Found:
        try:
            stu3 = await self.ers.referral_request(ubrn, ctx)
        except UpstreamError as err:
            if err.status == 404:  # a search for an unknown UBRN matches nothing
                return Found()
            raise
        return ers_stu3_found(stu3, ubrn)


# ---- conversion of search answers (pure: what one upstream call gave -> Found) ----------


def bars_found(searchset: BarsSearchset, target_key: str, nhs_number: str) -> Found:
    """A BaRS searchset's referrals as R4; one that cannot be converted is left out with a warning."""
    where = f"BaRS target '{target_key}'"
    found = Found()
    if searchset.unwrapped:
        found.issues.append(
            issue(
                "structure",
                f"{where} sent {searchset.unwrapped} searchset entries without the 'resource' "
                "wrapper; they were read as the ServiceRequests they contain",
                severity="warning",
            )
        )
    for upstream in searchset.resources:
        upstream_id = upstream.get("id")
        # A referral naming no NHS number is served for the patient asked about: the id
        # carries that number, so a read serves the same subject (server.sources.referrals.ids).
        with upstream_shape("BaRS", "the ServiceRequest"):
            named = nhs_number_of(upstream.get("subject"))
        source = (
            BarsId(target_key, upstream_id, None if named else nhs_number) if isinstance(upstream_id, str) else None
        )
        facade_id = issue_id(source) if source is not None else None
        if facade_id is None:
            found.admit(None, where)
            continue
        try:
            with upstream_shape("BaRS", "the ServiceRequest"):
                resource, repairs = normalise_service_request(upstream, facade_id=facade_id, nhs_number=nhs_number)
        except UpstreamBadResponse as err:
            found.reject(err, where)
            continue
        if repairs:
            log.info("BaRS ServiceRequest shape repaired: %s", ", ".join(repairs))
        found.admit(resource, where)
    return found


def ers_r4_found(upstreams: list[Resource], ubrn: str) -> Found:
    """An e-RS A041 searchset's referrals for `ubrn` as R4; unconvertible ones left out with a warning."""
    found = Found()
    for upstream in upstreams:
        try:
            with upstream_shape("e-RS", "the ServiceRequest"):
                if not carries_ubrn(upstream, ubrn):
                    found.issues.append(
                        issue(
                            "incomplete",
                            "e-RS answered a UBRN search with a referral carrying another UBRN; it was left out",
                            severity="warning",
                        )
                    )
                    continue
                facade_id = issue_id(ErsR4Id(ubrn, upstream["id"]))
                if facade_id is None:
                    found.admit(None, "e-RS")
                    continue
                resource, _ = normalise_service_request(
                    upstream, facade_id=facade_id, ubrn=ubrn, upstream_request_id=upstream["id"]
                )
        except UpstreamBadResponse as err:
            found.reject(err, "e-RS")
            continue
        found.admit(resource, "e-RS")
    return found


def ers_stu3_found(stu3: Resource, ubrn: str) -> Found:
    """An e-RS A005 ReferralRequest as an R4 search match, or a warning when it cannot be used."""
    found = Found()
    if stu3.get("id") != ubrn:
        found.issues.append(
            issue(
                "incomplete",
                "e-RS answered a UBRN with a ReferralRequest for another UBRN; it was left out",
                severity="warning",
            )
        )
        return found
    try:
        with upstream_shape("e-RS", "the ReferralRequest"):
            resource = referral_request_to_service_request(stu3, f"ers3.{ubrn}")
    except UpstreamBadResponse as err:
        found.reject(err, "e-RS (STU3)")
        return found
    found.admit(resource, "e-RS (STU3)")
    return found
