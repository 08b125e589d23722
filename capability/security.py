"""Who may call the façade and with what: the facts the discovery documents publish, and
the CapabilityStatement's `rest.security` that states them.

The façade is an access-controlled resource server (server/access/). Everything said here
is derived from what enforces it, never from a hand-kept list:
- the trusted issuers, from the settings as server.access.wiring trusts them (the
  development issuer only where `dev_issuer_trusted` says so);
- the endpoints where clients get tokens (`auth_endpoints`), from the settings;
- scopes, roles, purpose of use and relationship, from the role table the policy loads
  (FACADE_ACCESS_POLICY or server/access/roles.yaml) and from server.access.scopes;
- the user-restricted types: those whose provider factory wired an NHS client with
  access "user" (server.sources.wiring.Wiring.client records it), and how the
  caller's NHS CIS2 credential reaches them (FACADE_NHS_USER_TOKEN_SOURCE).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server.access.dev_issuer import DEV_ISSUER
from server.access.middleware import PUBLIC_PATHS
from server.access.policy import PERMISSION_NAMES
from server.access.roles import Role, RoleTable, load_role_table
from server.access.scopes import PERMISSIONS, V1_PERMISSIONS
from server.access.wiring import AccessConfigError, dev_issuer_trusted
from server.settings import Settings

SECURITY_SERVICE_SYSTEM = "http://terminology.hl7.org/CodeSystem/restful-security-service"
OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
PURPOSE_OF_USE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
# The names server.access reads (control.py lower-cases the header; claims.py and the
# access middleware read the purpose); tests/unit/test_capability_security.py checks them.
NHS_USER_TOKEN_HEADER = "X-NHS-User-Token"
PURPOSE_HEADER = "X-Purpose-Of-Use"
PURPOSE_CLAIM = "purpose_of_use"
PATIENT_CLAIM = "patient"

UpstreamAccess = Mapping[str, Sequence[tuple[str, str]]]
# Every NHS API URL as configured (None = the embedded emulator): what decides whether the
# development issuer is trusted (Runtime.nhs_urls).
NHSUrls = Sequence[str | None]


def user_restricted(upstream_access: UpstreamAccess) -> dict[str, list[str]]:
    """Resource type -> the NHS APIs behind it that act for the user (sorted, types with none left out)."""
    out = {
        rtype: sorted({api for api, access in pairs if access == "user"}) for rtype, pairs in upstream_access.items()
    }
    return {rtype: apis for rtype, apis in sorted(out.items()) if apis}


@functools.lru_cache(maxsize=8)
def _role_table(path: Path | None) -> RoleTable:
    return load_role_table(path)


def role_table(settings: Settings) -> RoleTable:
    """The role table the access policy enforces. Read once per path, as the policy reads
    it once at start-up: an edited file changes neither until a restart."""
    return _role_table(settings.access_policy)


@dataclass(frozen=True)
class AuthEndpoints:
    token: str | None
    authorize: str | None
    nhs: bool  # the NHS API platform's endpoints (their grants and client authentication are documented)


def auth_endpoints(settings: Settings) -> AuthEndpoints:
    """Where clients get access tokens for the façade: the configured issuer's endpoints
    (FACADE_AUTH_TOKEN_URL, FACADE_AUTH_AUTHORIZE_URL, taken as a pair so the two never
    come from different servers); else, when the inbound token is itself the NHS CIS2
    credential, the NHS endpoints (FACADE_TOKEN_URL, FACADE_SMART_AUTHORIZE_URL); else
    none: nothing is invented."""
    if settings.auth_token_url or settings.auth_authorize_url:
        return AuthEndpoints(settings.auth_token_url, settings.auth_authorize_url, nhs=False)
    if settings.nhs_user_token_source == "inbound":
        return AuthEndpoints(settings.token_url, settings.smart_authorize_url, nhs=True)
    return AuthEndpoints(None, None, nhs=False)


def dev_issuer_published(settings: Settings, nhs_urls: NHSUrls) -> bool:
    """Whether the development issuer is trusted. Settings that wiring refuses (dev issuer
    forced on against production) stop the start-up, so they publish nothing."""
    try:
        return dev_issuer_trusted(settings, nhs_urls)
    except AccessConfigError:
        return False


def trusted_issuer_names(settings: Settings, nhs_urls: NHSUrls) -> list[str]:
    """The `iss` values whose tokens are accepted, in server.access.wiring's order."""
    return ([settings.auth_issuer] if settings.auth_issuer else []) + (
        [DEV_ISSUER] if dev_issuer_published(settings, nhs_urls) else []
    )


def audiences(settings: Settings) -> list[str]:
    """The `aud` values accepted (server.access.wiring: the configured ones, else the public base URL)."""
    return list(settings.auth_audience) or [settings.public_base_url()]


def permission_letters(permissions: frozenset[str]) -> str:
    return "".join(p for p in PERMISSIONS if p in permissions)


def role_grants(role: Role) -> dict[str, str]:
    """Resource type -> the permission letters (cruds order) the role may use; `*` (every
    type the role does not name) last."""
    return {rtype: permission_letters(role.fhir[rtype]) for rtype in sorted(role.fhir, key=lambda t: (t == "*", t))}


def job_roles_of(table: RoleTable, role: str) -> list[str]:
    """The NHS national RBAC job role codes the table maps to a façade role."""
    return sorted(code for code, roles in table.job_roles.items() if role in roles)


def _verbs(letters: str) -> str:
    names = [PERMISSION_NAMES[p] for p in letters]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _role_line(table: RoleTable, role: Role) -> str:
    by_letters: dict[str, list[str]] = {}
    for rtype, letters in role_grants(role).items():
        by_letters.setdefault(letters, []).append(rtype)
    every = "every other type" if len(role.fhir) > 1 else "every type"
    parts = [
        f"{_verbs(letters)} {', '.join(every if t == '*' else t for t in types)}"
        for letters, types in by_letters.items()
    ]
    if role.pas:
        parts.append(f"the PAS endpoints (/pas/v1) for {', '.join(sorted(role.pas))}")
    codes = job_roles_of(table, role.name)
    via = f" (NHS job roles {', '.join(codes)})" if codes else ""
    return f"- `{role.name}`{via}: {'; '.join(parts) or 'nothing'}"


def _describe_access(settings: Settings, nhs_urls: NHSUrls, table: RoleTable) -> list[str]:
    public = ", ".join(sorted(PUBLIC_PATHS))
    issuers = ", ".join(trusted_issuer_names(settings, nhs_urls)) or "none (the façade does not start)"
    why = (
        "every NHS API is the emulator"
        if settings.dev_issuer == "auto"
        else "FACADE_DEV_ISSUER=on, and no configured NHS API is production"
    )
    dev = (
        f" The development issuer ({DEV_ISSUER}, tokens from `nhs-fhir-facade token`) is trusted: {why}."
        if dev_issuer_published(settings, nhs_urls)
        else ""
    )
    v1 = ", ".join(f".{k}" for k in V1_PERMISSIONS)
    paragraphs = [
        f"Every request except {public} needs 'Authorization: Bearer <access token>': a signed JWT from a trusted "
        f"issuer ({issuers}), for audience {', '.join(audiences(settings))}.{dev} No token: 401 with "
        'WWW-Authenticate Bearer; a bad token: 401 with error="invalid_token"; a valid token not allowed the '
        'request: 403 with error="insufficient_scope". Every access, allowed or refused, is recorded as an '
        "AuditEvent.",
        "A request needs both a SMART scope and a role that allow it. Scopes come from the `scope` claim "
        "(space-separated) or `scp` (a list): SMART v2 (`<patient|user|system>/<Type|*>.<cruds>`, e.g. "
        f"patient/Patient.rs) and v1 ({v1}) are accepted; a scope with a query suffix (`?category=...`) is refused "
        f"and grants nothing. patient/ scopes confine every answer (includes, revincludes and pages too) to the "
        f"patient of the token's `{PATIENT_CLAIM}` claim (an NHS number); without one they grant nothing. user/ "
        "and system/ scopes are not confined.",
        "Roles come from the token's `roles` claim (role names, or NHS job role codes such as R8000 or "
        "S0030:G0100:R8000) or the selected CIS2 `nhsid_nrbac_roles` entry. What each role may do (the PAS "
        "endpoints also need a user/ or system/ scope on the FHIR type the endpoint stands for: Patient for "
        "patients and HL7 messages, the record's own type for related records):\n"
        + "\n".join(_role_line(table, role) for role in table.roles.values()),
    ]
    if table.clinical_types:
        glass = ", ".join(sorted(table.break_glass_purposes))
        purpose = (
            f"Clinical types ({', '.join(sorted(table.clinical_types))}) need a purpose of use "
            f"({', '.join(sorted(table.clinical_purposes))}; v3 ActReason) in the token's `{PURPOSE_CLAIM}` "
            f"claim or the {PURPOSE_HEADER} header, which wins."
        )
        if glass:
            purpose += f" {glass} is break-glass: allowed, and flagged in the audit trail for review."
        if settings.relationship_required:
            purpose += (
                " Clinical resources are shown only for patients with a legitimate relationship here: "
                "registered in the PAS store of record, or the patient of the token's launch context"
                + (", unless the purpose is break-glass." if glass else ".")
            )
        paragraphs.append(purpose)
    return paragraphs


def _describe_user_restricted(restricted: dict[str, list[str]], settings: Settings) -> str:
    if not restricted:
        return (
            "No resource type served here is user-restricted; no NHS CIS2 credential is needed. The façade "
            "authenticates to NHS itself."
        )
    handling = (
        "exchanged at the NHS token endpoint (token exchange of the CIS2 id_token) for the call to the NHS API"
        if settings.user_token_mode == "exchange"
        else "passed through unchanged to the NHS API"
    )
    where = (
        f"in the {NHS_USER_TOKEN_HEADER} header (the bearer token is the hospital's own)"
        if settings.nhs_user_token_source == "header"
        else "as the bearer token itself (the façade's token issuer is NHS CIS2)"
    )
    listed = "; ".join(f"{rtype} (via {', '.join(apis)})" for rtype, apis in restricted.items())
    return (
        f"User-restricted resource types also need the caller's NHS CIS2 credential, {where}: {listed}. "
        f"It is {handling}. Other types are application-restricted: the façade authenticates to NHS itself. "
        "Some NHS APIs also need the caller's NHS session headers (e.g. NHSD-Session-URID), described "
        "per resource type."
    )


def describe(settings: Settings, upstream_access: UpstreamAccess, nhs_urls: NHSUrls) -> str:
    """`rest.security.description` (markdown): what a caller must send, and what it grants."""
    paragraphs = _describe_access(settings, nhs_urls, role_table(settings))
    paragraphs.append(_describe_user_restricted(user_restricted(upstream_access), settings))
    return "\n\n".join(paragraphs)


def rest_security(settings: Settings, upstream_access: UpstreamAccess, nhs_urls: NHSUrls) -> dict[str, Any]:
    """`rest.security`: OAuth and SMART-on-FHIR (SMART scopes are enforced); the oauth-uris
    extension only when a token endpoint is known; CORS as configured."""
    endpoints = auth_endpoints(settings)
    security: dict[str, Any] = {"cors": bool(getattr(settings, "cors_allow_origins", []))}
    if endpoints.token:
        uris = [{"url": "token", "valueUri": endpoints.token}]
        if endpoints.authorize:
            uris.insert(0, {"url": "authorize", "valueUri": endpoints.authorize})
        security["extension"] = [{"url": OAUTH_URIS, "extension": uris}]
    security["service"] = [
        {
            "coding": [
                {"system": SECURITY_SERVICE_SYSTEM, "code": "OAuth", "display": "OAuth"},
                {"system": SECURITY_SERVICE_SYSTEM, "code": "SMART-on-FHIR", "display": "SMART-on-FHIR"},
            ],
            "text": "OAuth 2.0 bearer JWTs with SMART App Launch scopes, checked by the façade with the roles, "
            "purpose of use and relationship rules described here",
        }
    ]
    security["description"] = describe(settings, upstream_access, nhs_urls)
    return security
