"""The GP Connect consumer JWT: unsigned (alg none), built per request.

GP Connect (over the Spine Secure Proxy) authenticates the *system* with TLS mutual
auth and ASIDs; the bearer token only carries audit and provenance claims: who is
asking (practitioner with SDS ids), from where (organisation ODS code, device) and why
(reason_for_request "directcare", requested_scope "patient/*.read"), expiring 5
minutes after issue. Source: GP Connect integration_cross_organisation_audit_and_provenance
(shared/reference/nhs-apis.md s.2.7). Pure: the clock is an argument.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import orjson

SDS_USER_ID = "https://fhir.nhs.uk/Id/sds-user-id"
SDS_ROLE_PROFILE_ID = "https://fhir.nhs.uk/Id/sds-role-profile-id"
ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
DEVICE_SYSTEM = "https://fhir.nhs.uk/Id/local-system-instance-id"
LIFETIME_SECONDS = 300
READ_SCOPE = "patient/*.read"


@dataclass(frozen=True)
class Requester:
    """Who the façade says is asking GP Connect (from settings; see README)."""

    organisation_ods: str
    organisation_name: str
    practitioner_sds_user_id: str
    practitioner_role_profile_id: str
    practitioner_family: str
    practitioner_given: str
    device_name: str = "nhs-fhir-facade"
    device_version: str = "0.1.0"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def consumer_claims(requester: Requester, *, issuer: str, audience: str, now: int) -> dict[str, Any]:
    """The claim set GP Connect requires, for one request."""
    practitioner_id = requester.practitioner_sds_user_id
    return {
        "iss": issuer,
        "sub": practitioner_id,
        "aud": audience,
        "exp": now + LIFETIME_SECONDS,
        "iat": now,
        "reason_for_request": "directcare",
        "requested_scope": READ_SCOPE,
        "requesting_device": {
            "resourceType": "Device",
            "identifier": [{"system": DEVICE_SYSTEM, "value": requester.device_name}],
            "model": requester.device_name,
            "version": requester.device_version,
        },
        "requesting_organization": {
            "resourceType": "Organization",
            "identifier": [{"system": ODS_SYSTEM, "value": requester.organisation_ods}],
            "name": requester.organisation_name,
        },
        "requesting_practitioner": {
            "resourceType": "Practitioner",
            "id": practitioner_id,
            "identifier": [
                {"system": SDS_USER_ID, "value": requester.practitioner_sds_user_id},
                {"system": SDS_ROLE_PROFILE_ID, "value": requester.practitioner_role_profile_id},
            ],
            "name": [{"family": requester.practitioner_family, "given": [requester.practitioner_given]}],
        },
    }


def unsigned_jwt(claims: dict[str, Any]) -> str:
    """`header.payload.` with an empty signature, as GP Connect specifies (alg none)."""
    header = _b64url(orjson.dumps({"alg": "none", "typ": "JWT"}))
    return f"{header}.{_b64url(orjson.dumps(claims))}."


def decode_unsigned_jwt(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, claims) of an unsigned JWT; ValueError when it is not one. Used by the emulator."""
    parts = token.split(".")
    if len(parts) != 3 or parts[2] != "":
        raise ValueError("not an unsigned JWT (three parts, empty signature)")

    def part(text: str) -> dict[str, Any]:
        padded = text + "=" * (-len(text) % 4)
        try:
            value = orjson.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        except (ValueError, orjson.JSONDecodeError):
            raise ValueError("JWT part is not base64url JSON") from None
        if not isinstance(value, dict):
            raise ValueError("JWT part is not a JSON object")
        return value

    return part(parts[0]), part(parts[1])
