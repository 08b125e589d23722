"""What a provider's read or search may raise, and the one FHIR meaning of each.

A provider fails with a FHIRError (a decision the façade made) or lets an UpstreamError
(an NHS API failed) escape; the registered exception handlers render either
(server/fhir/error_handlers.py, server/nhs/error_handler.py). Code that handles a
provider failure itself instead of letting it reach them (the cache's stale-if-error,
_include and _revinclude warnings, the PAS service) catches PROVIDER_FAILURES and reads
status and text through `as_fhir_error`, so both kinds behave alike there too.
"""

from __future__ import annotations

from server.fhir.errors import FHIRError
from server.nhs.errors import UpstreamError, to_fhir_error

PROVIDER_FAILURES = (FHIRError, UpstreamError)


def as_fhir_error(exc: FHIRError | UpstreamError) -> FHIRError:
    """The FHIR error a provider failure answers as (upstream ones mapped by to_fhir_error)."""
    return exc if isinstance(exc, FHIRError) else to_fhir_error(exc)
