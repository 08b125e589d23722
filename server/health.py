"""GET /_health: plain JSON for load balancers and operators, not a FHIR resource.

It reports what the façade depends on without failing on it: the cache backend (a
MongoDB outage degrades the façade to upstream-only, it does not stop it), the audit
trail (spooling locally while MongoDB is down), and where each NHS API points (the embedded emulator or a configured URL). Always 200 while the
process serves; `status` is "ok" or "degraded". No URLs, keys or patient data.

GET /_health/live and /_health/ready are the probes for an orchestrator or a load
balancer (which hold no token: all three are public, see server/access/middleware.py):
live is 200 whenever the process answers; ready is 200 only when the façade can serve
NHS data now, i.e. MongoDB (when configured) answers a ping in time and the NHS
application token can be had (auth_mode none: nothing to have), else 503 with the reason
per check (an exception's class name at most: never its text, which may name hosts).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from pymongo import AsyncMongoClient
from starlette.requests import Request
from starlette.responses import JSONResponse

from server.nhs.client import AuthHeaders
from server.request_context import RequestContext
from server.runtime import Runtime

NO_STORE = {"Cache-Control": "no-store"}


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


async def live(request: Request) -> JSONResponse:
    """The process is up and its event loop answers: nothing else is checked."""
    return JSONResponse({"status": "live"}, headers=NO_STORE)


@dataclass(frozen=True)
class Readiness:
    """What /_health/ready checks, built by the composition root (server.app)."""

    mongo: AsyncMongoClient[dict[str, Any]] | None  # None: no MongoDB configured
    nhs_auth: AuthHeaders  # the application-restricted auth every NHS client shares
    mongo_timeout: float  # seconds a ping may take
    token_timeout: float  # seconds getting the NHS token may take (cached: instant)

    async def check(self) -> dict[str, str]:
        """Each dependency's state: "ok", "not configured", or why it is not ready."""
        mongo, token = await asyncio.gather(self._mongo(), self._token())
        return {"mongodb": mongo, "nhs_token": token}

    async def _mongo(self) -> str:
        if self.mongo is None:
            return "not configured"
        try:
            async with asyncio.timeout(self.mongo_timeout):
                await self.mongo.admin.command("ping")
        except TimeoutError:
            return "no answer in time"
        except Exception as exc:  # any driver failure means "not ready", named by class only
            return f"unreachable ({type(exc).__name__})"
        return "ok"

    async def _token(self) -> str:
        try:
            async with asyncio.timeout(self.token_timeout):
                # NoAuth answers {} at once; the signed-JWT auth returns its cached token or fetches one.
                await self.nhs_auth.headers(RequestContext(request_id="readiness", base_url=""))
        except TimeoutError:
            return "no answer in time"
        except Exception as exc:  # the token endpoint refused or failed: named by class only
            return f"unavailable ({type(exc).__name__})"
        return "ok"


async def ready(request: Request) -> JSONResponse:
    """200 when every check is "ok" or "not configured", else 503: take this worker out of rotation."""
    readiness: Readiness = request.app.state.readiness
    checks = await readiness.check()
    ok = all(state in ("ok", "not configured") for state in checks.values())
    return JSONResponse(
        {"status": "ready" if ok else "not ready", "checks": checks}, status_code=200 if ok else 503, headers=NO_STORE
    )
