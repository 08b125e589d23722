"""AccessControl: what the access edge and the handlers share at request time.

Built once in the app lifespan (server.access.wiring.build_access) and set on
`app.state.access`. It verifies tokens, decides (policy), records (audit trail) and
builds each request's RequestContext, so no handler reads Authorization itself.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from server.access.access_record import AccessRecord
from server.access.audit_event import AuditNote
from server.access.audit_trail import AuditTrail, AuditUnavailable
from server.access.claims import principal_from_claims
from server.access.policy import AccessPolicy
from server.access.principal import Principal
from server.access.quota import CallerQuota
from server.access.roles import RoleTable
from server.access.tokens import TokenVerifier

log = logging.getLogger("facade.access")

NHS_USER_TOKEN_HEADER = "x-nhs-user-token"
VERIFIED_CACHE_SIZE = 10_000


@dataclass
class AccessControl:
    verifier: TokenVerifier
    table: RoleTable
    policy: AccessPolicy
    trail: AuditTrail
    observer: str  # the façade's base URL, as AuditEvent.source.site
    user_token_source: Literal["header", "inbound"] = "header"
    quota: CallerQuota | None = None
    clock: Callable[[], float] = time.time
    leeway: float = 30.0
    # Verified principals by (token digest, purpose header), until the token expires: a
    # client sends the same token many times, and an RS256 check costs ~100 us of CPU.
    _verified: OrderedDict[bytes, tuple[Principal, float]] = field(default_factory=OrderedDict, repr=False)

    async def authenticate(self, token: str, purpose_header: str | None) -> Principal:
        """The principal of a bearer token, or InvalidToken / BadPurpose."""
        key = hashlib.sha256(f"{purpose_header}\0{token}".encode()).digest()
        hit = self._verified.get(key)
        if hit is not None and self.clock() <= hit[1]:
            self._verified.move_to_end(key)
            return hit[0]
        claims = await self.verifier.verify(token)
        principal = principal_from_claims(claims, self.table, purpose_header=purpose_header)
        self._verified[key] = (principal, float(claims["exp"]) + self.leeway)
        while len(self._verified) > VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)
        return principal

    async def record(self, note: AuditNote, principal: Principal | None, status: int) -> bool:
        """Write the AuditEvent of one request; False when it could be stored nowhere."""
        glass = principal is not None and principal.purpose in self.table.break_glass_purposes
        access = AccessRecord.of(note, principal, status, observer=self.observer, break_glass=glass)
        try:
            await self.trail.record(access)
        except AuditUnavailable:
            log.error("audit trail unavailable: request_id=%s refused (fail closed)", note.request_id)
            return False
        return True

    def nhs_user_token(self, headers: Any, inbound_token: str | None) -> str | None:
        """The caller's NHS CIS2 credential for user-restricted NHS APIs (README: "NHS user
        identity"): the X-NHS-User-Token header, or the inbound token itself when the
        façade's issuer is CIS2."""
        if self.user_token_source == "inbound":
            return inbound_token
        value = headers.get(NHS_USER_TOKEN_HEADER)
        return value.strip() or None if value else None
