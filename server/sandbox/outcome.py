"""The error answer the emulated NHS APIs share: an OperationOutcome of one error issue,
coded in the API's own error code system.

BaRS, e-RS (R4 and STU3) and CPT send this one shape; what differs is a parameter: the
code system, the `meta` each API writes (a profile, or lastUpdated), whether the coding
has a display, and the headers echoed back. PDS and GP Connect write theirs differently
(Spine codes with a version; SSP errors without details) and keep their own builders.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.responses import JSONResponse, Response


def nhs_error(
    status: int,
    *,
    system: str,
    code: str,
    issue_code: str,
    diagnostics: str,
    meta: dict[str, Any] | None = None,
    display: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """An HTTP `status` answer whose one issue is coded `system|code` (FHIR `issue_code`)."""
    coding = {"system": system, "code": code}
    if display is not None:
        coding["display"] = display
    body: dict[str, Any] = {"resourceType": "OperationOutcome"}
    if meta is not None:
        body["meta"] = meta
    body["issue"] = [
        {"severity": "error", "code": issue_code, "details": {"coding": [coding]}, "diagnostics": diagnostics}
    ]
    return JSONResponse(body, status_code=status, headers=headers, media_type="application/fhir+json")
