"""MedicationRequest from the NHS Clinical Prescription Tracker (EPS prescriptions).

Search by patient = one CPT prescription search + one details call per prescription
issue, converted (server.sources.cpt.mapping) into one list, newest
prescription first, line items in prescription order. Reads decode the prescription from
the façade-issued id (server.sources.cpt.ids) and fetch just that prescription.

This module composes: the client (server.sources.cpt.client) answers in CPT's shapes,
the mapping converts one prescription's details, and the details calls of a search run
here, concurrently but never more than `detail_concurrency` at once per search
(FACADE_CPT_DETAIL_CONCURRENCY).

Clients send their CIS2 bearer token and the NHS session headers nhsd-session-urid,
nhsd-organization-uuid and nhsd-session-jobrole; a missing one is a 400 naming it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar, TypeVar

from server.fhir.errors import NotFound
from server.fhir.outcome import issue
from server.fhir.search_params import SearchParamSpec, fhir_date_range
from server.fhir.search_request import SearchRequest
from server.fhir.versioning import ensure_version
from server.nhs.entry_validation import check_r4, upstream_shape
from server.nhs.errors import UpstreamBadResponse, UpstreamRejected
from server.nhs.nhs_number import NHS_NUMBER_SYSTEM
from server.nhs.session_headers import session_headers
from server.providers.base import RequestContext, Resource, ResourceProvider, SearchResult
from server.providers.patient_reference import patient_and_subject
from server.sources.cpt.client import CPTClient
from server.sources.cpt.ids import parse_medication_request_id
from server.sources.cpt.mapping import (
    ITEM_NUMBER_SYSTEM,
    ORDER_NUMBER_SYSTEM,
    CPTShapeError,
    PrescriptionRef,
    medication_requests,
)
from server.sources.cpt.query import plan

SP = "http://hl7.org/fhir/SearchParameter/"
T = TypeVar("T")


@dataclass(frozen=True)
class PrescriptionItems:
    """The converted line items of one prescription issue; `found` is False on a CPT 404."""

    ref: PrescriptionRef
    items: list[Resource]
    found: bool = True


async def bounded_gather(factories: Sequence[Callable[[], Awaitable[T]]], limit: int) -> list[T]:
    """Run coroutines concurrently, at most `limit` at a time, results in order; the first
    failure cancels the rest and propagates unchanged."""
    semaphore = asyncio.Semaphore(max(1, limit))

    async def run(factory: Callable[[], Awaitable[T]]) -> T:
        async with semaphore:
            return await factory()

    tasks = [asyncio.ensure_future(run(f)) for f in factories]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def convert_prescription(
    body: Any,
    api: str = "CPT",
    *,
    issue: int | None = None,
    nhs_number: str | None = None,
    prescription_id: str | None = None,
) -> list[Resource]:
    """One prescription issue's details (server.sources.cpt.client) as validated R4
    MedicationRequests, or UpstreamBadResponse (502), also when they are not the details
    of `prescription_id` (the one asked for)."""
    with upstream_shape(api, "the prescription details"):
        try:
            converted = medication_requests(body, issue=issue, nhs_number=nhs_number, prescription_id=prescription_id)
        except CPTShapeError as exc:
            raise UpstreamBadResponse(api, f"prescription details: {exc}") from None
    return [ensure_version(check_r4(r, api)) for r in converted]


def _newest_first(refs: list[PrescriptionRef]) -> list[PrescriptionRef]:
    def key(ref: PrescriptionRef) -> float:
        span = fhir_date_range(ref.authored_on) if ref.authored_on else None
        return -span[0].timestamp() if span else float("inf")

    return sorted(refs, key=lambda r: (key(r), r.prescription_id, r.issue or 0))


class MedicationRequestFromCPT(ResourceProvider):
    resource_type: ClassVar[str] = "MedicationRequest"
    documentation: ClassVar[str] = (
        "EPS prescriptions from the NHS Clinical Prescription Tracker (CIS2 user-restricted): one MedicationRequest "
        "per line item, with the prescription-order-number (groupIdentifier), prescription-order-item-number "
        "(identifier) and the EPS dispensing-status extension. Searches need a patient NHS number or a "
        "prescription id. Send the user's bearer token and the headers nhsd-session-urid, nhsd-organization-uuid "
        "and nhsd-session-jobrole."
    )
    interactions: ClassVar[tuple[str, ...]] = ("read", "vread", "search-type")
    identifier_systems: ClassVar[tuple[str, ...]] = (ORDER_NUMBER_SYSTEM, ITEM_NUMBER_SYSTEM)
    search_params: ClassVar[tuple[SearchParamSpec, ...]] = (
        *patient_and_subject(
            "MedicationRequest",
            f"The patient's NHS number: patient=9000000009, or patient.identifier={NHS_NUMBER_SYSTEM}|N "
            "(Modulus-11 checked)",
            "Same as patient (CPT prescriptions are always for a Patient)",
        ),
        # identifier|groupIdentifier: a line item carries its item number as identifier and
        # its prescription's order number as groupIdentifier; both name it.
        SearchParamSpec(
            "identifier",
            "token",
            f"{ORDER_NUMBER_SYSTEM}|<prescription id> fetches that prescription; {ITEM_NUMBER_SYSTEM}|<item> filters",
            SP + "clinical-identifier",
            path="identifier|groupIdentifier",
            evaluated="local",
        ),
        SearchParamSpec(
            "status",
            "token",
            "active | completed | cancelled | ... (filtered by the façade; :not too)",
            SP + "medications-status",
            path="status",
            evaluated="local",
        ),
        SearchParamSpec(
            "authoredon",
            "date",
            "When the prescription was authored; eq, ne, gt, lt, ge, le, sa, eb, ap",
            SP + "MedicationRequest-authoredon",
            path="authoredOn",
            evaluated="local",
        ),
        SearchParamSpec(
            "intent",
            "token",
            "order | instance-order (repeat) | reflex-order (eRD) | ...",
            SP + "MedicationRequest-intent",
            path="intent",
            evaluated="local",
        ),
    )
    includes: ClassVar[tuple[str, ...]] = ("MedicationRequest:patient", "MedicationRequest:subject")

    def __init__(self, cpt: CPTClient, *, detail_concurrency: int = 4) -> None:
        self.cpt = cpt
        self.detail_concurrency = detail_concurrency

    async def _prescription(
        self, ctx: RequestContext, prescription_id: str, issue: int | None = None, *, nhs_number: str | None = None
    ) -> list[Resource]:
        """One prescription issue's line items as validated R4 MedicationRequests.
        A CPT 404 propagates as UpstreamRejected(status=404)."""
        details = await self.cpt.prescription(ctx, prescription_id, issue)
        return convert_prescription(
            details, self.cpt.api, issue=issue, nhs_number=nhs_number, prescription_id=prescription_id
        )

    async def read(self, resource_id: str, ctx: RequestContext) -> Resource:
        key = parse_medication_request_id(resource_id)
        if key is None:
            raise NotFound(f"MedicationRequest/{resource_id[:64]} is not an id this server issued")
        session_headers(ctx.headers)
        items = await self._prescription(ctx, key.prescription_id, key.issue)
        for item in items:
            if item["id"] == resource_id:
                return item
        raise NotFound(f"MedicationRequest/{resource_id} is not on that prescription")

    async def fetch(self, request: SearchRequest, ctx: RequestContext) -> SearchResult:
        query = plan(request)
        session_headers(ctx.headers)
        result = SearchResult(matches=[])
        if query.prescription_ids:
            groups = await self._by_prescription_id(query.prescription_ids, ctx)
        else:
            groups = await self._by_patient(sorted(query.nhs_numbers or ()), ctx)
        for group in groups:
            if not group.found:
                result.issues.append(
                    issue(
                        "incomplete",
                        "A prescription listed by the Prescription Tracker could not be fetched (not "
                        "found); it is missing from these results",
                        severity="warning",
                    )
                )
                continue
            # Every item, whoever it is for: patient (like every parameter here) is evaluated
            # locally, so an item CPT sent for another patient is never shown.
            result.matches.extend(group.items)
        return result

    async def _by_patient(self, nhs_numbers: list[str], ctx: RequestContext) -> list[PrescriptionItems]:
        listed = await bounded_gather(
            [partial(self.cpt.search, ctx, nhs_number=n) for n in nhs_numbers], self.detail_concurrency
        )
        refs = _newest_first([ref for refs in listed for ref in refs])
        return await self._prescriptions(ctx, refs)

    async def _prescriptions(self, ctx: RequestContext, refs: Sequence[PrescriptionRef]) -> list[PrescriptionItems]:
        """Details of every listed issue, concurrently (bounded), in the order given. An
        issue CPT no longer knows (404) comes back with found=False; any other failure
        fails the whole call (a medication list silently missing items is unsafe). The
        session headers were checked before any call."""

        async def one(ref: PrescriptionRef) -> PrescriptionItems:
            try:
                items = await self._prescription(ctx, ref.prescription_id, ref.issue, nhs_number=ref.nhs_number)
            except UpstreamRejected as err:
                if err.status == 404:
                    return PrescriptionItems(ref, [], found=False)
                raise
            return PrescriptionItems(ref, items)

        unique = list(dict.fromkeys((r.prescription_id, r.issue) for r in refs))
        by_key = {(r.prescription_id, r.issue): r for r in refs}
        return await bounded_gather([partial(one, by_key[k]) for k in unique], self.detail_concurrency)

    async def _by_prescription_id(
        self, prescription_ids: tuple[str, ...], ctx: RequestContext
    ) -> list[PrescriptionItems]:
        async def one(prescription_id: str) -> PrescriptionItems | None:
            try:
                items = await self._prescription(ctx, prescription_id)
            except UpstreamRejected as err:
                if err.status == 404:
                    return None  # no such prescription: no match, not an error
                raise
            return PrescriptionItems(PrescriptionRef(prescription_id, None, None, None), items)

        found = await bounded_gather([partial(one, p) for p in prescription_ids], self.detail_concurrency)
        return [g for g in found if g is not None]
