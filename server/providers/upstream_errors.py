"""How an NHS failure becomes what the façade's client sees: the one mapping.

UpstreamError (an NHS API failed or refused) and CallerInputError (the NHS layer found the
caller's request unsendable) are raised below, in server.nhs, which knows nothing of
HTTP-facing FHIR errors; this module, above both, decides each status, once. NHS
OperationOutcomes are translated, not passed through: the NHS error code stays visible in
issue.details.coding, under the code system the API sent it in.
"""

from __future__ import annotations

from server.fhir import errors as fe
from server.fhir.outcome import SPINE_ERROR_SYSTEM, nhs_details
from server.nhs.error_codes import CodeMeaning
from server.nhs.errors import (
    CallerInputError,
    UpstreamBadResponse,
    UpstreamCredentialsRejected,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)


def caller_error(err: CallerInputError) -> fe.FHIRError:
    """The caller's own 4xx, with the issue code and headers the NHS layer chose."""
    mapped = fe.FHIRError(err.message, headers=dict(err.headers), status=err.status)
    mapped.issue_code = err.issue_code
    return mapped


def _retry_headers(err: UpstreamError, default: float) -> dict[str, str]:
    seconds = err.retry_after if err.retry_after is not None else default
    return {"Retry-After": str(max(1, int(round(seconds))))}


# Codes NHS uses for header problems (nhs-apis.md 1.4: "400 MISSING_VALUE / INVALID_VALUE:
# header problems; see diagnostics").
_HEADER_CODES = {"MISSING_VALUE", "INVALID_VALUE"}
# Headers the façade forwards from the caller's own request (server/nhs/session_headers.py,
# server/sources/referrals/ers_client.py): NHS refusing one of these is still the client's 400. Every other
# header (X-Request-ID, X-Correlation-ID, NHSD-End-User-Organisation-ODS defaults,
# Authorization, ...) is the façade's own doing.
_CALLER_HEADERS = (
    "nhsd-session-urid",
    "nhsd-organization-uuid",
    "nhsd-session-jobrole",
    "nhsd-ers-business-function",
    "nhsd-ers-on-behalf-of-user-id",
    "nhsd-end-user-organisation-ods",
)


def blames_our_headers(err: UpstreamError) -> bool:
    """True when a 400 is NHS refusing a header the façade itself set, not the client's input."""
    if err.status != 400 or err.nhs_code not in _HEADER_CODES or not err.diagnostics:
        return False
    said = err.diagnostics.lower()
    return "header" in said and not any(name in said for name in _CALLER_HEADERS)


def to_fhir_error(err: UpstreamError) -> fe.FHIRError:
    """The one place an upstream failure becomes a status code for our client."""
    details = None
    if err.nhs_code:
        details = nhs_details(err.nhs_code, err.nhs_display, err.nhs_system or SPINE_ERROR_SYSTEM)
    said = f" ({err.diagnostics})" if err.diagnostics else ""
    if isinstance(err, UpstreamTimeout):
        return fe.GatewayTimeout(f"{err.api} did not answer in time", headers=_retry_headers(err, 5))
    if isinstance(err, UpstreamRateLimited):
        # status None: our own client-side limit refused before asking NHS.
        why = f"{err.api} is rate limiting this service" if err.status else f"{err.api}: {err.message}"
        return fe.ServiceUnavailable(f"{why}; try again later", details=details, headers=_retry_headers(err, 5))
    if isinstance(err, UpstreamUnavailable) and err.status in (500, 501):
        return fe.BadGateway(f"{err.api} failed with HTTP {err.status}{said}", details=details)
    if isinstance(err, UpstreamUnavailable):
        return fe.ServiceUnavailable(
            f"{err.api} is unavailable: {err.message}", details=details, headers=_retry_headers(err, 5)
        )
    if isinstance(err, UpstreamBadResponse):
        return fe.BadGateway(f"{err.api} sent an answer the façade cannot read: {err.message}")
    if err.meaning is CodeMeaning.TOO_MANY_MATCHES:
        # PDS sends this as HTTP 200 (live) or 400 (sandbox): either way the client must narrow the search.
        return fe.TooManyMatches(
            f"{err.api} found too many matches to list; add given name, gender, postcode or an exact "
            "birth date to narrow the search",
            details=details,
        )
    if isinstance(err, UpstreamCredentialsRejected):
        if err.user_token_used:
            return fe.Unauthorized(
                f"{err.api} did not accept the user's token for exchange{said}",
                headers={"WWW-Authenticate": 'Bearer realm="nhs-fhir-facade"'},
            )
        # Our API key, key id or signing key is wrong: an operator problem, not the client's.
        return fe.BadGateway(f"{err.api} refused the façade's credentials{said}")
    status = err.status or 502
    if status == 404:
        if err.meaning is CodeMeaning.GONE:
            return fe.Gone(f"{err.api}: the record has been invalidated{said}", details=details)
        return fe.NotFound(f"{err.api}: {err.nhs_display or 'resource not found'}{said}", details=details)
    if status in (401, 403):
        if err.meaning is CodeMeaning.NO_CONSENT:
            return fe.Forbidden(
                f"{err.api}: the patient has not consented to sharing this record{said}", details=details
            )
        if err.user_token_used and status == 403:
            return fe.Forbidden(f"{err.api} refused the user's access{said}", details=details)
        if err.user_token_used:
            return fe.Unauthorized(
                f"{err.api} did not accept the user's token{said}",
                details=details,
                headers={"WWW-Authenticate": 'Bearer realm="nhs-fhir-facade"'},
            )
        return fe.BadGateway(f"{err.api} refused the façade's credentials{said}", details=details)
    if status == 408:
        return fe.GatewayTimeout(
            f"{err.api}: a downstream NHS service timed out{said}", details=details, headers=_retry_headers(err, 5)
        )
    if status in (409, 412):
        return fe.PreconditionFailed(f"{err.api}: version conflict{said}", details=details)
    if status == 410:
        return fe.Gone(f"{err.api}: {err.nhs_display or 'the resource is gone'}{said}", details=details)
    if status == 422:
        return fe.Unprocessable(
            f"{err.api} could not process the request: {err.nhs_display or err.message}{said}", details=details
        )
    if blames_our_headers(err):
        # Our request was malformed (e.g. a bad X-Request-ID): nothing the client can fix.
        return fe.BadGateway(f"{err.api} refused a header the façade sent{said}", details=details)
    if 400 <= status < 500:
        return fe.BadRequest(f"{err.api} rejected the request: {err.nhs_display or err.message}{said}", details=details)
    return fe.BadGateway(f"{err.api} failed: {err.message}{said}", details=details)
