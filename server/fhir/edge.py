"""The middleware every request passes between the request id and the routes (issue 8).

Outermost first:
1. CORS, only when origins are configured, so a preflight is answered before anything
   else and every answer, errors included, carries the CORS headers a browser needs;
2. no-store: every private answer, the size refusals below included, is uncacheable;
3. the access edge (authentication and the audit trail), given by the composition root,
   so even a refused oversized request is attributed and audited;
4. size limits: oversized bodies and query strings are refused before a handler reads them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.middleware import Middleware

from server.fhir.body_limit import BodyLimitMiddleware
from server.fhir.cors import cors_middleware
from server.fhir.no_store import NoStoreMiddleware
from server.fhir.request_limits import RequestLimits

if TYPE_CHECKING:
    from server.settings import Settings


def edge_middleware(settings: Settings, access: Middleware) -> list[Middleware]:
    """The edge middleware for these settings, in the order above."""
    return [
        *cors_middleware(settings.cors_allow_origins),
        Middleware(NoStoreMiddleware),
        access,
        Middleware(BodyLimitMiddleware, limits=RequestLimits.from_settings(settings)),
    ]
