"""GP Connect Access Record Structured client: POST Patient/$gpc.getstructuredrecord.

Reference: shared/reference/nhs-apis.md s.2.7. The operation is a POST but reads only,
so it is sent with `retry_safe=True` (safe to retry; the resilience layer honours it).

Two ways in, chosen by FACADE_GPCONNECT_AUTH_MODE:
- "ssp-jwt" (default, the production route today): Spine Secure Proxy headers
  Ssp-TraceID (UUID per request), Ssp-From / Ssp-To (consumer / provider ASIDs),
  Ssp-InteractionID, and `Authorization: Bearer <unsigned consumer JWT>` built here
  for the authenticated caller (server/sources/gpconnect/consumer_jwt.py). TLS mutual auth belongs
  to the deployment (HSCN), not to this code.
- "gateway" (the Clinical Data Gateway API on the NHS API platform): the caller's CIS2
  bearer token is passed through, with Ssp-TraceID and Ods-from.

Who the GP system's audit sees (`asserted_identity`), decided before GP Connect is called:
- the caller (ctx.principal) as `requesting_practitioner`: SDS user and role profile ids
  (UNK without a smartcard identity), the local user id, the name when the token has one;
- `requesting_organization` / `Ods-from`: the caller's ODS code, else the configured one;
- `reason_for_request` "directcare" for purposes TREAT, ETREAT (or none stated); any
  other purpose is refused with 403 before the call: the structured record is for
  direct care only, and asserting directcare for another purpose would falsify the audit;
- a system caller (no user: no principal, client-credentials or only system/ scopes) is
  asserted as the configured practitioner in sandbox only (GP Connect at the emulator,
  a loopback or NHS sandbox URL); elsewhere it gets 403, as GP Connect forbids a
  generic system user in requesting_practitioner.

The answer is an STU3 Bundle (collection). What the façade uses of it (the allergy
Lists and the AllergyIntolerance resources) is validated with fhir.resources.STU3 here,
where the data enters, and the record must be the requested patient's.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from server.access.environments import classify_url
from server.access.principal import Principal
from server.fhir.errors import Forbidden, Unauthorized
from server.nhs.client import NHSClient
from server.nhs.entry_validation import model_problems, upstream_shape
from server.nhs.errors import UpstreamBadResponse
from server.nhs.nhs_number import NHS_NUMBER_SYSTEM
from server.request_context import RequestContext
from server.sources.gpconnect.consumer_jwt import (
    Assertion,
    Organisation,
    Requester,
    consumer_claims,
    practitioner_for,
    reason_for_request,
    unsigned_jwt,
)
from server.sources.gpconnect.settings import GPConnectSettings

API = "GP Connect"
OPERATION_PATH = "Patient/$gpc.getstructuredrecord"
INTERACTION_ID = "urn:nhs:names:services:gpconnect:fhir:operation:gpc.getstructuredrecord-1"
AuthMode = Literal["ssp-jwt", "gateway"]
Resource = dict[str, Any]


@dataclass(frozen=True)
class GPConnectConfig:
    """Who we are to GP Connect: ASIDs, the configured organisation (and the sandbox
    practitioner for system callers), the route, and whether GP Connect is a sandbox."""

    consumer_asid: str
    provider_asid: str
    requester: Requester
    issuer: str  # the façade's own public base URL (JWT iss)
    auth_mode: AuthMode = "ssp-jwt"
    # True only when GP Connect is the emulator or a sandbox: then a system caller is
    # asserted as requester's practitioner; otherwise it is refused (403).
    sandbox: bool = False


def gpconnect_config(settings: GPConnectSettings, issuer: str) -> GPConnectConfig:
    """The GP Connect identity and route from the typed settings; `issuer` is the façade's
    public base URL (the consumer JWT's iss)."""
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
        issuer=issuer,
        auth_mode=settings.gpconnect_auth_mode,
        sandbox=classify_url(settings.gpconnect_base_url) in ("emulator", "sandbox"),
    )


def structured_record_parameters(nhs_number: str, *, include_resolved: bool) -> Resource:
    """The Parameters body asking for allergies only (includeResolvedAllergies is
    mandatory inside includeAllergies)."""
    return {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "patientNHSNumber", "valueIdentifier": {"system": NHS_NUMBER_SYSTEM, "value": nhs_number}},
            {
                "name": "includeAllergies",
                "part": [{"name": "includeResolvedAllergies", "valueBoolean": include_resolved}],
            },
        ],
    }


def acts_for_a_user(principal: Principal) -> bool:
    """False for a system caller: a client-credentials token (subject = client id) or one
    whose data scopes are all system/ scopes; an SDS user id always means a user."""
    if principal.sds_user_id:
        return True
    if principal.client_id is not None and principal.subject == principal.client_id:
        return False
    contexts = {scope.context for scope in principal.scopes.scopes}
    return contexts != {"system"}


def requesting_organisation(requester: Requester, principal: Principal | None) -> Organisation:
    """The caller's organisation (its ODS code) when the token names one, else the configured
    one. GP Connect has no name for a code the façade was not configured with: the code is used."""
    ods = principal.organisation_ods if principal is not None and principal.organisation_ods else None
    if ods is None or ods == requester.organisation_ods:
        return requester.organisation()
    return Organisation(ods, ods)


def direct_care_reason(principal: Principal | None) -> str:
    """GP Connect's reason_for_request for the caller's purpose of use, or Forbidden: the
    structured record is for direct care only (TREAT, ETREAT, or no purpose stated)."""
    purpose = principal.purpose if principal is not None else None
    reason = reason_for_request(purpose)
    if reason is None:
        raise Forbidden(
            f"GP Connect Access Record Structured is for direct care only: purpose of use "
            f"{purpose} is not TREAT or ETREAT, so the GP record was not asked for"
        )
    return reason


def asserted_identity(config: GPConnectConfig, principal: Principal | None) -> Assertion:
    """Who, from where and why this request is made, as GP Connect will audit it; Forbidden
    (before anything is sent) for a purpose other than direct care, and for a system caller
    outside sandbox."""
    reason = direct_care_reason(principal)
    organisation = requesting_organisation(config.requester, principal)
    if principal is not None and acts_for_a_user(principal):
        return Assertion(practitioner_for(principal), organisation, reason)
    if config.sandbox:
        return Assertion(config.requester.sandbox_practitioner(), organisation, reason)
    raise Forbidden(
        "GP Connect needs a logged-on user to name in its audit (requesting_practitioner); "
        "a system client without a user cannot read GP records"
    )


def request_headers(
    config: GPConnectConfig, audience: str, ctx: RequestContext, *, now: int, trace_id: str
) -> dict[str, str]:
    """Headers for one structured-record request on the configured route, for ctx.principal."""
    if config.auth_mode == "gateway":
        direct_care_reason(ctx.principal)  # the gateway forwards to GP Connect: direct care only too
        if not ctx.user_token:
            raise Unauthorized(
                "GP Connect through the Clinical Data Gateway needs the caller's CIS2 bearer token",
                headers={"WWW-Authenticate": 'Bearer realm="nhs-fhir-facade"'},
            )
        return {
            "Authorization": f"Bearer {ctx.user_token}",
            "Ssp-TraceID": trace_id,
            "Ods-from": requesting_organisation(config.requester, ctx.principal).ods,
        }
    assertion = asserted_identity(config, ctx.principal)
    claims = consumer_claims(assertion, config.requester.device(), issuer=config.issuer, audience=audience, now=now)
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


def _record_nhs_numbers(bundle: Resource) -> set[str | None]:
    numbers: set[str | None] = set()  # None: an NHS number identifier without a value
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict) and resource.get("resourceType") == "Patient":
            numbers |= {
                i.get("value")
                for i in resource.get("identifier") or []
                if isinstance(i, dict) and i.get("system") == NHS_NUMBER_SYSTEM
            }
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
    if not isinstance(entries, list) or not all(
        isinstance(e, dict) and isinstance(e.get("resource"), dict) for e in entries
    ):
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

    def __init__(self, client: NHSClient, config: GPConnectConfig, clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.config = config
        self.clock = clock

    async def structured_record(self, nhs_number: str, *, include_resolved: bool, ctx: RequestContext) -> Resource:
        """The patient's structured record with allergies (resolved ones when asked)."""
        headers = request_headers(
            self.config, self.client.config.base_url, ctx, now=int(self.clock()), trace_id=str(uuid.uuid4())
        )
        response = await self.client.request(
            "POST",
            OPERATION_PATH,
            ctx,
            headers=headers,
            json_body=structured_record_parameters(nhs_number, include_resolved=include_resolved),
            retry_safe=True,
        )
        return parse_structured_record(response.body, nhs_number)
