"""UpstreamError -> OperationOutcome, registered as a Starlette exception handler (style item 17).

An NHS failure that escapes a provider is rendered here, once, exactly as the FHIRError
`server.nhs.errors.to_fhir_error` maps it to would be: same status, same headers
(Retry-After, WWW-Authenticate), the NHS error code kept in issue.details. Providers catch
an UpstreamError by hand only where the failure becomes something else (a warning, a
fallback, a partial answer).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from server.fhir.error_handlers import fhir_error
from server.nhs.errors import UpstreamError, to_fhir_error


async def upstream_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, UpstreamError)
    return await fhir_error(request, to_fhir_error(exc))


UPSTREAM_EXCEPTION_HANDLERS = {UpstreamError: upstream_error}
