"""Clinical Prescription Tracker client: prescription search and prescription details,
converted to validated R4 MedicationRequests.

CPT is user-restricted (CIS2 AAL3, separate auth) and acts for the caller's role, so
every call carries the caller's bearer token (added by the client's auth) and NHS session headers
(server.nhs.session_headers). A patient's medication list is one search
(`GET /RequestGroup?nhsNumber=`) plus one details call per prescription issue
(`GET /RequestGroup/{id}[?issueNumber=]`), fetched concurrently but never more than
`detail_concurrency` at once per search. Reference: shared/reference/nhs-apis.md s.2.1.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar
from urllib.parse import quote

from server.fhir.versioning import ensure_version
from server.nhs.client import NHSClient
from server.nhs.entry_validation import check_r4, upstream_shape
from server.nhs.errors import UpstreamBadResponse, UpstreamRejected
from server.nhs.session_headers import session_headers
from server.request_context import RequestContext
from server.sources.cpt.mapping import CPTShapeError, PrescriptionRef, medication_requests, prescription_refs

Resource = dict[str, Any]
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


def parse_prescription_search(body: Any, api: str = "CPT") -> list[PrescriptionRef]:
    """The prescription issues of a CPT search answer; any shape CPT does not promise is
    UpstreamBadResponse (502)."""
    with upstream_shape(api, "the prescription search"):
        try:
            return prescription_refs(body)
        except CPTShapeError as exc:
            raise UpstreamBadResponse(api, f"prescription search: {exc}") from None


def parse_prescription(
    body: Any, api: str = "CPT", *, issue: int | None = None, nhs_number: str | None = None
) -> list[Resource]:
    """One prescription issue's details as validated R4 MedicationRequests, or
    UpstreamBadResponse (502)."""
    with upstream_shape(api, "the prescription details"):
        try:
            converted = medication_requests(body, issue=issue, nhs_number=nhs_number)
        except CPTShapeError as exc:
            raise UpstreamBadResponse(api, f"prescription details: {exc}") from None
    return [ensure_version(check_r4(r, api)) for r in converted]


class CPTClient:
    """Typed calls on CPT; errors stay UpstreamError subclasses for the provider to map."""

    def __init__(self, client: NHSClient, *, detail_concurrency: int = 4) -> None:
        """`client` carries the auth (user-restricted: the caller's token, see server.nhs.auth)."""
        self.client = client
        self.detail_concurrency = detail_concurrency

    @property
    def api(self) -> str:
        return self.client.api

    async def search(self, ctx: RequestContext, *, nhs_number: str) -> list[PrescriptionRef]:
        """The prescription issues CPT lists for a patient; none when CPT answers 404."""
        headers = session_headers(ctx.headers)
        response = await self.client.request(
            "GET", "RequestGroup", ctx, params=[("nhsNumber", nhs_number)], headers=headers, accepted=(404,)
        )
        if response.status == 404:
            return []
        return parse_prescription_search(response.body, self.api)

    async def prescription(
        self, ctx: RequestContext, prescription_id: str, issue: int | None = None, *, nhs_number: str | None = None
    ) -> list[Resource]:
        """One prescription issue's line items as validated R4 MedicationRequests.
        A CPT 404 propagates as UpstreamRejected(status=404)."""
        headers = session_headers(ctx.headers)
        params = [("issueNumber", str(issue))] if issue is not None else []
        # The id goes in the path, percent-encoded: '+' is a valid EPS check character.
        response = await self.client.request(
            "GET", f"RequestGroup/{quote(prescription_id, safe='')}", ctx, params=params, headers=headers
        )
        return parse_prescription(response.body, self.api, issue=issue, nhs_number=nhs_number)

    async def prescriptions(self, ctx: RequestContext, refs: Sequence[PrescriptionRef]) -> list[PrescriptionItems]:
        """Details of every listed issue, concurrently (bounded), in the order given. An
        issue CPT no longer knows (404) comes back with found=False; any other failure
        fails the whole call (a medication list silently missing items is unsafe). The
        provider has checked the session headers before any call."""

        async def one(ref: PrescriptionRef) -> PrescriptionItems:
            try:
                items = await self.prescription(ctx, ref.prescription_id, ref.issue, nhs_number=ref.nhs_number)
            except UpstreamRejected as err:
                if err.status == 404:
                    return PrescriptionItems(ref, [], found=False)
                raise
            return PrescriptionItems(ref, items)

        unique = list(dict.fromkeys((r.prescription_id, r.issue) for r in refs))
        by_key = {(r.prescription_id, r.issue): r for r in refs}
        results = await bounded_gather([partial(one, by_key[k]) for k in unique], self.detail_concurrency)
        return results
