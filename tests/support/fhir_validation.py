"""Validate bodies the façade emits against the R4B models (tests only: it is slow)."""

from __future__ import annotations

import importlib
from typing import Any

R4B_TYPES = {
    "Patient",
    "Bundle",
    "OperationOutcome",
    "CapabilityStatement",
    "MedicationRequest",
    "ServiceRequest",
    "AllergyIntolerance",
}


def validate_r4(body: dict[str, Any]) -> Any:
    """Parse `body` with the fhir.resources R4B model of its resourceType; raises on invalid."""
    rtype = body["resourceType"]
    module = importlib.import_module(f"fhir.resources.R4B.{rtype.lower()}")
    model = getattr(module, rtype)
    parsed = model.model_validate(body)
    if rtype == "Bundle":
        for entry in body.get("entry", []):
            # A batch-response entry may carry no resource, only response.outcome (a failure).
            if body.get("type") != "batch-response" or "resource" in entry:
                validate_r4(entry["resource"])
            if "outcome" in entry.get("response", {}):
                validate_r4(entry["response"]["outcome"])
    return parsed
