"""OperationOutcome constructors: every error body the façade writes comes from here.

Keeping them in one module means every error has the same shape (severity, IssueType
code, details and diagnostics), whatever layer raised it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

Issue = dict[str, Any]

SPINE_ERROR_SYSTEM = "https://fhir.nhs.uk/R4/CodeSystem/Spine-ErrorOrWarningCode"


def issue(
    code: str,
    diagnostics: str | None = None,
    *,
    severity: str = "error",
    details: dict[str, Any] | None = None,
    expression: Iterable[str] | None = None,
) -> Issue:
    """One OperationOutcome.issue; `code` is a FHIR IssueType code."""
    out: Issue = {"severity": severity, "code": code}
    if details:
        out["details"] = details
    if diagnostics:
        out["diagnostics"] = diagnostics
    if expression:
        out["expression"] = list(expression)
    return out


def operation_outcome(*issues: Issue) -> dict[str, Any]:
    """Wrap issues in an OperationOutcome resource (at least one issue is required)."""
    return {"resourceType": "OperationOutcome", "issue": list(issues) or [issue("unknown")]}


def nhs_details(code: str, display: str | None = None, system: str = SPINE_ERROR_SYSTEM) -> dict[str, Any]:
    """details.coding that keeps an NHS error code visible to the client, under the code
    system it belongs to: Spine's by default, but CPT, e-RS and BaRS send
    https://fhir.nhs.uk/CodeSystem/http-error-codes and GP Connect its own."""
    coding: dict[str, Any] = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return {"coding": [coding]}


def information(diagnostics: str, code: str = "informational") -> dict[str, Any]:
    """An informational outcome (used inside searchsets, search.mode=outcome)."""
    return operation_outcome(issue(code, diagnostics, severity="information"))
