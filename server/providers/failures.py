"""What a provider's read or search may raise, and the one FHIR meaning of each.

A provider fails with a FHIRError (a decision the façade made) or lets an UpstreamError
(an NHS API failed) escape; the registered exception handlers render either
(server/fhir/error_handlers.py, server/providers/error_handler.py). Code that handles a
provider failure itself instead of letting it reach them (the cache's stale-if-error,
_include and _revinclude warnings, the PAS service) catches PROVIDER_FAILURES and reads
status and text through `as_fhir_error`, so both kinds behave alike there too.
"""

from __future__ import annotations

from server.fhir.errors import FHIRError
from server.nhs.errors import CallerInputError, UpstreamError
from server.providers.upstream_errors import caller_error, to_fhir_error

PROVIDER_FAILURES = (FHIRError, UpstreamError, CallerInputError)


def as_fhir_error(exc: FHIRError | UpstreamError | CallerInputError) -> FHIRError:
    """The FHIR error a provider failure answers as (the NHS layer's mapped by
    server.providers.upstream_errors)."""
    if isinstance(exc, FHIRError):
        return exc
    return caller_error(exc) if isinstance(exc, CallerInputError) else to_fhir_error(exc)
