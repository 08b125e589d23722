"""Discovery documents beside /metadata: the SMART configuration and the OpenAPI document.

Plain JSON, not FHIR resources (like server/health.py), and public (no token: clients
read them to learn how to get one). Both are built by capability/ from the registry, the
settings, the role table and the wiring's access modes, exactly as the CapabilityStatement is.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from capability.openapi import openapi_document
from capability.smart import smart_configuration
from server.runtime import Runtime


async def smart(request: Request) -> JSONResponse:
    rt: Runtime = request.app.state.runtime
    return JSONResponse(smart_configuration(rt.settings, rt.upstream_access, rt.registry, rt.nhs_urls))


async def openapi(request: Request) -> JSONResponse:
    rt: Runtime = request.app.state.runtime
    return JSONResponse(openapi_document(rt.registry, rt.settings, rt.base_url, rt.upstream_access, rt.nhs_urls))
