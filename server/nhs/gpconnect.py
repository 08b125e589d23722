"""GP Connect Access Record Structured client: POST Patient/$gpc.getstructuredrecord.

Reference: shared/reference/nhs-apis.md s.2.7. The operation is a POST but reads only,
so it is sent with `retry_safe=True` (safe to retry; the resilience layer honours it).

Two ways in, chosen by FACADE_GPCONNECT_AUTH_MODE:
- "ssp-jwt" (default, the production route today): Spine Secure Proxy headers
  Ssp-TraceID (UUID per request), Ssp-From / Ssp-To (consumer / provider ASIDs),
  Ssp-InteractionID, and `Authorization: Bearer <unsigned consumer JWT>` built here
  from settings (server/nhs/gpconnect_jwt.py). TLS mutual auth belongs to the
  deployment (HSCN), not to this code.
- "gateway" (the Clinical Data Gateway API on the NHS API platform): the caller's CIS2
  bearer token is passed through, with Ssp-TraceID and Ods-from.

The answer is an STU3 Bundle (collection). What the façade uses of it (the allergy
Lists and the AllergyIntolerance resources) is validated with fhir.resources.STU3 here,
where the data enters, and the record must be the requested patient's.
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Literal

from server.fhir.errors import Unauthorized
from server.nhs.client import NHSClient
from server.nhs.entry_validation import model_problems, upstream_shape
from server.nhs.errors import UpstreamBadResponse
from server.nhs.gpconnect_jwt import Requester, consumer_claims, unsigned_jwt
from server.nhs.nhs_number import NHS_NUMBER_SYSTEM
from server.providers.base import RequestContext
from server.settings import Settings

API = "GP Connect"
OPERATION_PATH = "Patient/$gpc.getstructuredrecord"
INTERACTION_ID = "urn:nhs:names:services:gpconnect:fhir:operation:gpc.getstructuredrecord-1"
AuthMode = Literal["ssp-jwt", "gateway"]
Resource = dict[str, Any]


@dataclass(frozen=True)
class GPConnectConfig:
    """Who we are to GP Connect: ASIDs, the requester in the JWT, and the route."""

    consumer_asid: str
    provider_asid: str
    requester: Requester
    issuer: str  # the façade's own public base URL (JWT iss)
    auth_mode: AuthMode = "ssp-jwt"


def gpconnect_config(settings: Settings) -> GPConnectConfig:
    """The GP Connect identity and route from the typed settings."""
    return GPConnectConfig(
        consumer_asid=settings.gpconnect_consumer_asid,
        provider_asid=settings.gpconnect_provider_asid,
        requester=Requester(
            organisation_ods=settings.gpconnect_requesting_ods,
            organisation_name=settings.gpconnect_requesting_org_name,
            practitioner_sds_user_id=settings.gpconnect_practitioner_sds_user_id,
            practitioner_role_profile_id=settings.gpconnect_practitioner_role_profile_id,
            practitioner_family=settings.gpconnect_practitioner_family,
            practitioner_given=settings.gpconnect_practitioner_given,
        ),
        issuer=settings.public_base_url(),
        auth_mode=settings.gpconnect_auth_mode,
    )


def structured_record_parameters(nhs_number: str, *, include_resolved: bool) -> Resource:
    """The Parameters body asking for allergies only (includeResolvedAllergies is
    mandatory inside includeAllergies)."""
    return {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "patientNHSNumber",
             "valueIdentifier": {"system": NHS_NUMBER_SYSTEM, "value": nhs_number}},
            {"name": "includeAllergies",
             "part": [{"name": "includeResolvedAllergies", "valueBoolean": include_resolved}]},
        ],
    }


def request_headers(config: GPConnectConfig, audience: str, ctx: RequestContext, *, now: int,
                    trace_id: str) -> dict[str, str]:
    """Headers for one structured-record request on the configured route."""
    if config.auth_mode == "gateway":
        if not ctx.user_token:
            raise Unauthorized("GP Connect through the Clinical Data Gateway needs the caller's CIS2 bearer token",
                               headers={"WWW-Authenticate": 'Bearer realm="nhs-fhir-facade"'})
        return {"Authorization": f"Bearer {ctx.user_token}", "Ssp-TraceID": trace_id,
                "Ods-from": config.requester.organisation_ods}
    claims = consumer_claims(config.requester, issuer=config.issuer, audience=audience, now=now)
    return {
        "Ssp-TraceID": trace_id,
        "Ssp-From": config.consumer_asid,
        "Ssp-To": config.provider_asid,
        "Ssp-InteractionID": INTERACTION_ID,
        "Authorization": f"Bearer {unsigned_jwt(claims)}",
    }


def _validate_stu3(resource: Resource) -> None:
    from fhir.resources.STU3.allergyintolerance import AllergyIntolerance
    from fhir.resources.STU3.list import List

    model = {"List": List, "AllergyIntolerance": AllergyIntolerance}[resource["resourceType"]]
    problems = model_problems(model, resource)  # element paths only: values may be clinical data
    if problems:
        raise UpstreamBadResponse(API, f"invalid STU3 {resource['resourceType']} ({', '.join(problems)})")


def _record_nhs_numbers(bundle: Resource) -> set[str]:
    numbers = set()
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict) and resource.get("resourceType") == "Patient":
            numbers |= {i.get("value") for i in resource.get("identifier") or []
                        if isinstance(i, dict) and i.get("system") == NHS_NUMBER_SYSTEM}
    return numbers


def parse_structured_record(body: Any, nhs_number: str) -> Resource:
    """The STU3 collection Bundle, checked: shape, the patient it is about, and STU3
    validity of every List and AllergyIntolerance in it (contained ones too)."""
    with upstream_shape(API, "the structured record"):
        return _checked_record(body, nhs_number)


def _checked_record(body: Any, nhs_number: str) -> Resource:
    if not isinstance(body, dict) or body.get("resourceType") != "Bundle" or body.get("type") != "collection":
        raise UpstreamBadResponse(API, "expected an STU3 collection Bundle")
    entries = body.get("entry")
    if not isinstance(entries, list) or not all(isinstance(e, dict) and isinstance(e.get("resource"), dict)
                                                for e in entries):
        raise UpstreamBadResponse(API, "Bundle entries without resources")
    numbers = _record_nhs_numbers(body)
    if numbers and nhs_number not in numbers:
        # Never show one patient's allergies under another's NHS number.
        raise UpstreamBadResponse(API, "the record returned is not the requested patient's")
    for entry in entries:
        resource = entry["resource"]
        if resource.get("resourceType") in ("List", "AllergyIntolerance"):
            _validate_stu3(resource)
    return body


class GPConnectClient:
    """Typed structured-record calls; errors stay UpstreamError subclasses for the caller."""

    def __init__(self, client: NHSClient, config: GPConnectConfig,
                 clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.config = config
        self.clock = clock

    async def structured_record(self, nhs_number: str, *, include_resolved: bool, ctx: RequestContext) -> Resource:
        """The patient's structured record with allergies (resolved ones when asked)."""
        headers = request_headers(self.config, self.client.config.base_url, ctx, now=int(self.clock()),
                                  trace_id=str(uuid.uuid4()))
        response = await self.client.request(
            "POST", OPERATION_PATH, ctx, headers=headers,
            json_body=structured_record_parameters(nhs_number, include_resolved=include_resolved),
            retry_safe=True,
        )
        return parse_structured_record(response.body, nhs_number)
