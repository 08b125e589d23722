"""Discovery documents beside /metadata: the SMART configuration and the OpenAPI document.

Plain JSON, not FHIR resources (like server/health.py); both are built from the registry
and the wiring's access modes by capability/, exactly as the CapabilityStatement is.
"""
from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from capability.openapi import openapi_document
from capability.smart import smart_configuration
from server.fhir.errors import NotFound
from server.runtime import Runtime


async def smart(request: Request) -> JSONResponse:
    rt: Runtime = request.app.state.runtime
    doc = smart_configuration(rt.settings, rt.upstream_access)
    if doc is None:
        raise NotFound("No SMART configuration: this façade runs no authorization server and no NHS token "
                       "endpoint is configured (FACADE_TOKEN_URL); see rest.security in /metadata")
    return JSONResponse(doc)


async def openapi(request: Request) -> JSONResponse:
    rt: Runtime = request.app.state.runtime
    return JSONResponse(openapi_document(rt.registry, rt.settings, rt.base_url, rt.upstream_access))
