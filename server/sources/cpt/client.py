"""Clinical Prescription Tracker client: prescription search and prescription details,
as CPT answers them.

CPT is user-restricted (CIS2 AAL3, separate auth) and acts for the caller's role, so
every call carries the caller's bearer token (added by the client's auth) and NHS session headers
(server.nhs.session_headers). A patient's medication list is one search
(`GET /RequestGroup?nhsNumber=`) plus one details call per prescription issue
(`GET /RequestGroup/{id}[?issueNumber=]`). Reference: shared/reference/nhs-apis.md s.2.1.

This client returns CPT's shapes: the search as the prescription issues it lists
(checked here), the details as CPT's bundle. Converting the details to R4 is
server.sources.cpt.mapping's job, and fetching every issue of a search (concurrently,
bounded) is the provider's (server.sources.cpt.provider).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from server.nhs.client import NHSClient
from server.nhs.entry_validation import upstream_shape
from server.nhs.errors import UpstreamBadResponse
from server.nhs.session_headers import session_headers
from server.request_context import RequestContext
from server.sources.cpt.mapping import CPTShapeError, PrescriptionRef, prescription_refs


def parse_prescription_search(body: Any, api: str = "CPT") -> list[PrescriptionRef]:
    """The prescription issues of a CPT search answer; any shape CPT does not promise is
    UpstreamBadResponse (502)."""
    with upstream_shape(api, "the prescription search"):
        try:
            return prescription_refs(body)
        except CPTShapeError as exc:
            raise UpstreamBadResponse(api, f"prescription search: {exc}") from None


class CPTClient:
    """Typed calls on CPT; errors stay UpstreamError subclasses for the provider to map."""

    def __init__(self, client: NHSClient) -> None:
        """`client` carries the auth (user-restricted: the caller's token, see server.nhs.auth)."""
        self.client = client

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

    async def prescription(self, ctx: RequestContext, prescription_id: str, issue: int | None = None) -> Any:
        """One prescription issue's details bundle, as CPT sent it (its shape is checked by
        the conversion, server.sources.cpt.mapping.medication_requests). A CPT 404
        propagates as UpstreamRejected(status=404)."""
        headers = session_headers(ctx.headers)
        params = [("issueNumber", str(issue))] if issue is not None else []
        # The id goes in the path, percent-encoded: '+' is a valid EPS check character.
        response = await self.client.request(
            "GET", f"RequestGroup/{quote(prescription_id, safe='')}", ctx, params=params, headers=headers
        )
        return response.body
