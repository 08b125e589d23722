"""e-Referral Service (e-RS) FHIR client: referrals by UBRN, R4 or STU3.

Two routes (reference: shared/reference/nhs-apis.md s.2.4):
- A041 `GET /R4/ServiceRequest?identifier=https://fhir.nhs.uk/Id/UBRN|<ubrn>`: R4, but
  healthcare-worker (CIS2, user-restricted) access only;
- A005 `GET /STU3/ReferralRequest/{ubrn}`: STU3, also open to application-restricted
  access; mapped to R4 by server.sources.referrals.ers_mapping.

User-restricted e-RS calls carry the caller's context: NHSD-eRS-Business-Function and
NHSD-End-User-Organisation-ODS are required by A041, NHSD-eRS-On-Behalf-Of-User-ID
goes with SERVICE_PROVIDER_CLINICIAN_ADMIN, NHSD-Session-URID selects the user's role.
They are taken from the caller's inbound request headers (RequestContext.headers),
falling back to the façade's settings for business function and ODS; the caller's
bearer token is added by the client's AuthHeaders (server.nhs.auth: pass-through or exchange).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from server.nhs.client import NHSClient
from server.nhs.entry_validation import expect_resource, upstream_shape
from server.nhs.errors import UpstreamBadResponse
from server.nhs.path_segments import path_segment
from server.request_context import RequestContext
from server.sources.referrals.ids import UBRN_SYSTEM

Resource = dict[str, Any]

BUSINESS_FUNCTION = "NHSD-eRS-Business-Function"
END_USER_ODS = "NHSD-End-User-Organisation-ODS"
# Caller headers forwarded to e-RS unchanged.
PASSED_THROUGH = (BUSINESS_FUNCTION, "NHSD-eRS-On-Behalf-Of-User-ID", "NHSD-Session-URID", END_USER_ODS)


class ERSContextMissing(ValueError):
    """A user-restricted e-RS call lacks headers only the caller can supply."""

    def __init__(self, missing: list[str]) -> None:
        super().__init__(", ".join(missing))
        self.missing = missing


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        value = headers.get(name.lower())
    return value.strip() if isinstance(value, str) and value.strip() else None


def ers_context_headers(
    inbound: Mapping[str, str],
    *,
    default_business_function: str | None,
    default_ods: str | None,
    user_restricted: bool,
) -> dict[str, str]:
    """The e-RS context headers for one call; raises ERSContextMissing when a
    user-restricted call lacks the business function or the ODS code."""
    out = {name: value for name in PASSED_THROUGH if (value := _header(inbound, name))}
    if BUSINESS_FUNCTION not in out and default_business_function:
        out[BUSINESS_FUNCTION] = default_business_function
    if END_USER_ODS not in out and default_ods:
        out[END_USER_ODS] = default_ods
    if user_restricted:
        missing = [name for name in (BUSINESS_FUNCTION, END_USER_ODS) if name not in out]
        if missing:
            raise ERSContextMissing(missing)
    return out


@dataclass(frozen=True)
class ERSContextConfig:
    business_function: str | None = None
    end_user_ods: str | None = None


def parse_r4_searchset(body: Any, api: str = "e-RS") -> list[Resource]:
    """ServiceRequests of an A041 searchset (an empty searchset has no `entry`)."""
    with upstream_shape(api, "the searchset"):
        return _searchset_resources(body, api)


def _searchset_resources(body: Any, api: str) -> list[Resource]:
    if not isinstance(body, dict) or body.get("resourceType") != "Bundle" or body.get("type") != "searchset":
        raise UpstreamBadResponse(api, "expected a searchset Bundle")
    out = []
    for entry in body.get("entry") or []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            raise UpstreamBadResponse(api, "searchset entry without a resource")
        if resource.get("resourceType") == "ServiceRequest":
            if not isinstance(resource.get("id"), str):
                raise UpstreamBadResponse(api, "ServiceRequest without an id")
            out.append(resource)
    return out


def parse_referral_request(body: Any, api: str = "e-RS") -> Resource:
    return expect_resource(body, "ReferralRequest", api)  # STU3 (A005)


class ERSClient:
    """Typed e-RS calls; failures stay UpstreamError subclasses for the caller to map."""

    def __init__(self, client: NHSClient, config: ERSContextConfig) -> None:
        self.client = client
        self.config = config

    def _context(self, ctx: RequestContext, user_restricted: bool) -> dict[str, str]:
        return ers_context_headers(
            ctx.headers,
            default_business_function=self.config.business_function,
            default_ods=self.config.end_user_ods,
            user_restricted=user_restricted,
        )

    async def search_r4(self, ubrn: str, ctx: RequestContext) -> list[Resource]:
        """A041: ServiceRequests with this UBRN (user-restricted only)."""
        headers = self._context(ctx, user_restricted=True)
        response = await self.client.request(
            "GET", "R4/ServiceRequest", ctx, headers=headers, params=[("identifier", f"{UBRN_SYSTEM}|{ubrn}")]
        )
        return parse_r4_searchset(response.body)

    async def referral_request(self, ubrn: str, ctx: RequestContext) -> Resource:
        """A005: the STU3 ReferralRequest for this UBRN (application-restricted allowed)."""
        headers = self._context(ctx, user_restricted=False)
        response = await self.client.request("GET", f"STU3/ReferralRequest/{path_segment(ubrn)}", ctx, headers=headers)
        return parse_referral_request(response.body)
