"""GET /_health: plain JSON for load balancers and operators, not a FHIR resource.

It reports what the façade depends on without failing on it: the cache backend (a
MongoDB outage degrades the façade to upstream-only, it does not stop it), the audit
trail (spooling locally while MongoDB is down), and where each NHS API points (the embedded emulator or a configured URL). Always 200 while the
process serves; `status` is "ok" or "degraded". No URLs, keys or patient data.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from server.runtime import Runtime


async def health(request: Request) -> JSONResponse:
    rt: Runtime = request.app.state.runtime
    cache: dict[str, Any] = (
        await rt.cache.health() if rt.cache is not None else {"backend": "none", "status": "disabled"}
    )
    modes = rt.upstream_modes
    kinds = set(modes.values())
    access = getattr(request.app.state, "access", None)
    audit = {"backend": access.trail.backend, "status": access.trail.status()} if access is not None else None
    degraded = cache["status"] == "down" or (audit is not None and audit["status"] != "ok")
    body = {
        "status": "degraded" if degraded else "ok",
        "cache": cache,
        "audit": audit,  # "spooling": MongoDB cannot take events, they wait in the local spool
        "upstream": {
            "mode": "sandbox" if kinds == {"emulator"} else "live" if kinds == {"configured"} else "mixed",
            "apis": modes,
        },
    }
    return JSONResponse(body, headers={"Cache-Control": "no-store"})
