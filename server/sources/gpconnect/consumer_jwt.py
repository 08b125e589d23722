"""The GP Connect consumer JWT: unsigned (alg none), built per request, naming the real user.

GP Connect (over the Spine Secure Proxy) authenticates the *system* with TLS mutual
auth and ASIDs; the bearer token carries the audit and provenance claims the GP system
records: who is asking (`requesting_practitioner`, and `sub` = its id), from where
(`requesting_organization`, `requesting_device`) and why (`reason_for_request`),
expiring 5 minutes after issue. Source: GP Connect "Cross-organisation audit and
provenance" (nhsconnect/gpconnect pages/integration/
integration_cross_organisation_audit_and_provenance.md; shared/reference/nhs-apis.md s.2.7):

- `requesting_practitioner` SHALL be the logged-on user, never a fixed value or a
  generic system user: `id` (= `sub`), `name`, and three identifiers: the SDS user id
  and the SDS role profile id from the user's smartcard, each `UNK` when the user has
  none, plus a unique local user id under a consumer-defined system. The façade's local
  user id is the token subject, under the token issuer (`iss` + `sub` identify a user).
- `requesting_organization` SHALL be where the request originates (the user's
  organisation), not the hosting organisation.
- `reason_for_request` is `directcare` for the structured record (`migration` is only
  for GP2GP transfers, which the façade does not do).

Pure: the clock is an argument; the caller decides who may be asserted (server.sources.gpconnect.client).
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson

from server.access.principal import Principal
from server.fhir.ids import is_fhir_id
from server.nhs.identifiers import ODS_SYSTEM, SDS_ROLE_PROFILE_ID_SYSTEM, SDS_USER_ID_SYSTEM

SDS_USER_ID = SDS_USER_ID_SYSTEM
SDS_ROLE_PROFILE_ID = SDS_ROLE_PROFILE_ID_SYSTEM
DEVICE_SYSTEM = "https://fhir.nhs.uk/Id/local-system-instance-id"
LIFETIME_SECONDS = 300
READ_SCOPE = "patient/*.read"
UNKNOWN = "UNK"  # GP Connect: the SDS ids of a user not logged on with an NHS smartcard
DIRECT_CARE = "directcare"
# v3 PurposeOfUse codes that are direct care: treatment, and emergency treatment (break-glass).
DIRECT_CARE_PURPOSES = frozenset({"TREAT", "ETREAT"})
_URI_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:\S+")


@dataclass(frozen=True)
class Practitioner:
    """`requesting_practitioner`: the user GP Connect's audit will name."""

    id: str  # Practitioner.id, and the JWT `sub`
    sds_user_id: str = UNKNOWN
    sds_role_profile_id: str = UNKNOWN
    local_system: str | None = None
    local_id: str | None = None
    family: str | None = None
    given: str | None = None


@dataclass(frozen=True)
class Organisation:
    """`requesting_organization`: where the request originates."""

    ods: str
    name: str


@dataclass(frozen=True)
class Device:
    """`requesting_device`: the façade itself."""

    name: str = "nhs-fhir-facade"
    version: str = "0.1.0"


@dataclass(frozen=True)
class Assertion:
    """Everything the JWT asserts about one request: who, from where, why."""

    practitioner: Practitioner
    organisation: Organisation
    reason: str = DIRECT_CARE


@dataclass(frozen=True)
class Requester:
    """The configured organisation (FACADE_GPCONNECT_REQUESTING_*) and the practitioner
    asserted for system callers (no user) in sandbox only (FACADE_GPCONNECT_PRACTITIONER_*).
    GP Connect forbids a generic system user in production; see server.sources.gpconnect.client."""

    organisation_ods: str
    organisation_name: str
    practitioner_sds_user_id: str
    practitioner_role_profile_id: str
    practitioner_family: str
    practitioner_given: str
    device_name: str = "nhs-fhir-facade"
    device_version: str = "0.1.0"

    def organisation(self) -> Organisation:
        return Organisation(self.organisation_ods, self.organisation_name)

    def device(self) -> Device:
        return Device(self.device_name, self.device_version)

    def sandbox_practitioner(self) -> Practitioner:
        return Practitioner(
            id=self.practitioner_sds_user_id,
            sds_user_id=self.practitioner_sds_user_id,
            sds_role_profile_id=self.practitioner_role_profile_id,
            family=self.practitioner_family,
            given=self.practitioner_given,
        )


def reason_for_request(purpose: str | None) -> str | None:
    """GP Connect's reason for a v3 PurposeOfUse code: TREAT and ETREAT are direct care;
    no stated purpose is taken as direct care (the access policy decides whether a
    purpose is required at all); anything else has no GP Connect reason (None)."""
    if purpose is None or purpose in DIRECT_CARE_PURPOSES:
        return DIRECT_CARE
    return None


def local_user_system(issuer: str) -> str:
    """The identifier system of the façade-local user id: the token issuer itself when it
    is an absolute URI (an issuer's subjects are unique within it), else a URN made from it."""
    if _URI_SCHEME.fullmatch(issuer):
        return issuer
    return "urn:nhs-fhir-facade:issuer:" + quote(issuer, safe="")


def practitioner_id(principal: Principal) -> str:
    """Practitioner.id (= JWT sub): the SDS user id when known, else the token subject when
    it is a valid FHIR id, else a stable digest of issuer and subject (a valid id, 64 chars)."""
    if principal.sds_user_id:
        return principal.sds_user_id
    if is_fhir_id(principal.subject):
        return principal.subject
    return hashlib.sha256(f"{principal.issuer}\0{principal.subject}".encode()).hexdigest()


def practitioner_for(principal: Principal) -> Practitioner:
    """The logged-on user as `requesting_practitioner`: SDS ids or UNK, and always the
    local id (subject under the issuer), name parts only when the token has them."""
    return Practitioner(
        id=practitioner_id(principal),
        sds_user_id=principal.sds_user_id or UNKNOWN,
        sds_role_profile_id=principal.sds_role_profile_id or UNKNOWN,
        local_system=local_user_system(principal.issuer),
        local_id=principal.subject,
        family=principal.family,
        given=principal.given,
    )


def _practitioner_resource(p: Practitioner) -> dict[str, Any]:
    identifiers = [
        {"system": SDS_USER_ID, "value": p.sds_user_id},
        {"system": SDS_ROLE_PROFILE_ID, "value": p.sds_role_profile_id},
    ]
    if p.local_system and p.local_id:
        identifiers.append({"system": p.local_system, "value": p.local_id})
    resource: dict[str, Any] = {"resourceType": "Practitioner", "id": p.id, "identifier": identifiers}
    name: dict[str, Any] = {}
    if p.family:
        name["family"] = p.family
    if p.given:
        name["given"] = [p.given]
    if name:  # never invented: a token without names gives a practitioner without a name
        resource["name"] = [name]
    return resource


def consumer_claims(assertion: Assertion, device: Device, *, issuer: str, audience: str, now: int) -> dict[str, Any]:
    """The claim set GP Connect requires, for one request at `now` (UNIX seconds)."""
    practitioner = assertion.practitioner
    organisation = assertion.organisation
    return {
        "iss": issuer,
        "sub": practitioner.id,
        "aud": audience,
        "exp": now + LIFETIME_SECONDS,
        "iat": now,
        "reason_for_request": assertion.reason,
        "requested_scope": READ_SCOPE,
        "requesting_device": {
            "resourceType": "Device",
            "identifier": [{"system": DEVICE_SYSTEM, "value": device.name}],
            "model": device.name,
            "version": device.version,
        },
        "requesting_organization": {
            "resourceType": "Organization",
            "identifier": [{"system": ODS_SYSTEM, "value": organisation.ods}],
            "name": organisation.name,
        },
        "requesting_practitioner": _practitioner_resource(practitioner),
    }


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


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
