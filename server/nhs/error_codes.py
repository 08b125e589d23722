"""What an NHS error code can mean beyond its HTTP status.

Each NHS API declares its own codes (server/sources/*/source.py, `Upstream.error_codes`);
its client writes the meaning onto the UpstreamError it raises (UpstreamError.meaning), and
server.providers.upstream_errors.to_fhir_error reads that, so a new NHS API brings its codes with it
instead of editing a shared table.
"""

from __future__ import annotations

from enum import Enum


class CodeMeaning(Enum):
    GONE = "gone"  # the record was invalidated: 410, not 404
    TOO_MANY_MATCHES = "too-many-matches"  # the client must narrow the search (PDS, 200 or 400)
    NO_CONSENT = "no-consent"  # the patient, not our credentials, is why the API refused (403)
