"""Exception -> OperationOutcome, in one place: typed FHIR errors and the framework's own
404/405 (which Starlette would otherwise render as plain text)."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from server.fhir.errors import FHIRError, MethodNotAllowed, NotFound
from server.fhir.responses import FHIRResponse


async def fhir_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, FHIRError)
    return FHIRResponse(exc.outcome(), status_code=exc.status, headers=exc.headers)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    error: FHIRError
    if exc.status_code == 404:
        error = NotFound(f"No FHIR endpoint at {request.url.path[:100]!r}")
    elif exc.status_code == 405:
        error = MethodNotAllowed(f"{request.method} is not supported on this endpoint")
        allow = (exc.headers or {}).get("Allow")
        if allow:
            error.headers["Allow"] = allow
    else:
        error = FHIRError(str(exc.detail), status=exc.status_code)
    return FHIRResponse(error.outcome(), status_code=error.status, headers=error.headers)


EXCEPTION_HANDLERS = {FHIRError: fhir_error, HTTPException: http_error}
