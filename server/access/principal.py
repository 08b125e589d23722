"""The authenticated caller, as every layer below the HTTP edge sees it.

Built once per request from a verified access token (server.access.tokens) and carried
on RequestContext. Pure data: no I/O, nothing secret (the raw token is never kept here).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from server.access.scopes import ScopeSet


@dataclass(frozen=True)
class Principal:
    """Who is asking, from which client, for whom, and why.

    - `roles`: façade roles (clinician, clerk, pas-system, auditor), mapped from the
      token's role claim and its NHS job role codes (server/access/roles.yaml).
    - `patient`: the SMART launch context (NHS number) when the token carries one.
    - `purpose`: the v3 PurposeOfUse code asserted for this request (claim or header).
    - `sds_user_id`, `sds_role_profile_id`, `family`, `given`: the user's NHS identity,
      asserted to GP Connect as `requesting_practitioner` when known.
    """

    subject: str
    issuer: str
    scopes: ScopeSet
    roles: frozenset[str] = frozenset()
    client_id: str | None = None
    role_codes: tuple[str, ...] = ()
    patient: str | None = None
    purpose: str | None = None
    organisation_ods: str | None = None
    sds_user_id: str | None = None
    sds_role_profile_id: str | None = None
    family: str | None = None
    given: str | None = None
    token_id: str | None = None
    extra: dict[str, str] = field(default_factory=dict, compare=False)

    def binding_key(self) -> str:
        """A digest of everything that decides what this caller may see. Page snapshots are
        bound to it: another user, client, scope set or patient context gets a 404."""
        parts = [
            self.issuer,
            self.subject,
            self.client_id or "",
            self.scopes.text(),
            ",".join(sorted(self.roles)),
            self.patient or "",
            self.purpose or "",
        ]
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()
