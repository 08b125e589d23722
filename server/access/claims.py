"""From verified token claims (and the purpose-of-use header) to a Principal.

Two token families are read the same way:
- a hospital identity provider's access token: `roles` (façade role names or NHS job
  role codes), `patient` (SMART launch context), `purpose_of_use`, `client_id`/`azp`,
  `ods_code`, and optionally `sds_user_id` / `sds_role_profile_id`;
- an NHS CIS2 token: `nhsid_useruid` (the SDS user id) and `nhsid_nrbac_roles` (each with
  `role_code` site:group:role, `person_roleid`, `org_code`); `selected_roleid` picks the
  role the user chose at login, when present.
Pure: no I/O.
"""

from __future__ import annotations

import re
from typing import Any

from server.access.principal import Principal
from server.access.roles import RoleTable
from server.access.scopes import ScopeSet

# fullmatch only (a `$` would also match before a trailing newline), ASCII digits only.
PURPOSE = re.compile(r"[A-Z]{2,20}")
NHS_NUMBER = re.compile(r"[0-9]{10}")
SDS_ID = re.compile(r"[0-9]{6,20}")
ODS = re.compile(r"[A-Z0-9]{3,10}")
MAX_ROLE_CODE = 100


class BadPurpose(ValueError):
    """A purpose-of-use value that is not a v3 ActReason code's shape (400)."""

    status = 400


class PurposeNotAllowed(BadPurpose):
    """A purpose the header may not declare over the token's own (403)."""

    status = 403


def _text(claims: dict[str, Any], *names: str, pattern: re.Pattern[str] | None = None, limit: int = 200) -> str | None:
    for name in names:
        value = claims.get(name)
        if isinstance(value, str) and value and len(value) <= limit and (pattern is None or pattern.fullmatch(value)):
            return value
    return None


def _role_names(claims: dict[str, Any]) -> list[str]:
    raw = claims.get("roles")
    names = (
        raw.split() if isinstance(raw, str) else [r for r in raw if isinstance(r, str)] if isinstance(raw, list) else []
    )
    return [n for n in names if len(n) <= MAX_ROLE_CODE][:50]


def _nrbac(claims: dict[str, Any]) -> dict[str, Any] | None:
    """The CIS2 role the user selected (or the only one they hold)."""
    listed = claims.get("nhsid_nrbac_roles")
    roles = [r for r in listed if isinstance(r, dict)][:50] if isinstance(listed, list) else []
    selected = claims.get("selected_roleid")
    chosen = (
        [r for r in roles if r.get("person_roleid") == selected] if selected else roles[:1] if len(roles) == 1 else []
    )
    return chosen[0] if chosen else None


BREAK_GLASS = "ETREAT"


def purpose_of(claims: dict[str, Any], header: str | None) -> str | None:
    """The purpose asserted for this request. The token's `purpose_of_use` claim is what the
    identity provider vouched for; the X-Purpose-Of-Use header sets it only when the token
    carries none, and may always declare break-glass (ETREAT: allowed, flagged for review).
    A header may not turn a token issued for, say, operations into one for treatment."""
    claim = claims.get("purpose_of_use")
    if isinstance(claim, list):
        claim = next((c for c in claim if isinstance(c, str)), None)
    from_token = claim.upper() if isinstance(claim, str) and PURPOSE.fullmatch(claim.upper()) else None
    if header is None:
        return from_token
    value = header.strip().upper()
    if not PURPOSE.fullmatch(value):
        raise BadPurpose("X-Purpose-Of-Use takes one v3 PurposeOfUse code such as TREAT or ETREAT")
    if from_token is not None and value not in (from_token, BREAK_GLASS):
        raise PurposeNotAllowed(
            f"X-Purpose-Of-Use {value} differs from the token's purpose of use {from_token}; "
            f"only {BREAK_GLASS} (break-glass) may be declared over it"
        )
    return value


def principal_from_claims(claims: dict[str, Any], table: RoleTable, *, purpose_header: str | None = None) -> Principal:
    nrbac = _nrbac(claims)
    role_codes = [*_role_names(claims)]
    if nrbac is not None and isinstance(nrbac.get("role_code"), str) and len(nrbac["role_code"]) <= MAX_ROLE_CODE:
        role_codes.append(nrbac["role_code"])
    return Principal(
        subject=str(claims["sub"])[:200],
        issuer=str(claims["iss"])[:500],
        scopes=ScopeSet.parse(claims.get("scope", claims.get("scp"))),
        roles=table.roles_for(role_codes),
        client_id=_text(claims, "client_id", "azp", limit=200),
        role_codes=tuple(c for c in role_codes if c not in table.roles),
        patient=_text(claims, "patient", pattern=NHS_NUMBER),
        purpose=purpose_of(claims, purpose_header),
        organisation_ods=(_text(nrbac or {}, "org_code", pattern=ODS) or _text(claims, "ods_code", pattern=ODS)),
        sds_user_id=_text(claims, "nhsid_useruid", "sds_user_id", pattern=SDS_ID),
        sds_role_profile_id=(
            _text(nrbac or {}, "person_roleid", pattern=SDS_ID) or _text(claims, "sds_role_profile_id", pattern=SDS_ID)
        ),
        family=_text(claims, "family_name", limit=100),
        given=_text(claims, "given_name", limit=100),
        token_id=_text(claims, "jti", limit=200),
    )
