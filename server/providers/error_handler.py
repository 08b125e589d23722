"""NHS failures -> OperationOutcome, registered as Starlette exception handlers (style item 17).

An NHS failure (UpstreamError) or a request the NHS layer found unsendable
(CallerInputError) that escapes a provider is rendered here, once, exactly as the FHIRError
`server.providers.upstream_errors` maps it to would be: same status, same headers
(Retry-After, WWW-Authenticate), the NHS error code kept in issue.details. Providers catch
an UpstreamError by hand only where the failure becomes something else (a warning, a
fallback, a partial answer).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from server.fhir.error_handlers import fhir_error
from server.nhs.errors import CallerInputError, UpstreamError
from server.providers.failures import as_fhir_error


async def upstream_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, (UpstreamError, CallerInputError))
    return await fhir_error(request, as_fhir_error(exc))


UPSTREAM_EXCEPTION_HANDLERS = {UpstreamError: upstream_error, CallerInputError: upstream_error}
