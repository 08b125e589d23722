"""The caller's own bearer token, forwarded to a user-restricted NHS API.

User-restricted APIs (e-RS A041 needs a CIS2 healthcare-worker token) cannot be called
with one server-wide credential: the façade passes the caller's token through. This is
the one place that does it; an AuthHeaders implementation that exchanges or mints
tokens (the auth work) replaces it in server.providers.catalogue.
"""
from __future__ import annotations

from server.providers.base import RequestContext


class CallerBearer:
    """AuthHeaders: `Authorization: Bearer <caller's token>` when the caller sent one."""

    async def headers(self, ctx: RequestContext) -> dict[str, str]:
        return {"Authorization": f"Bearer {ctx.user_token}"} if ctx.user_token else {}
