"""Odd but possible requests get a clear 4xx, never a 500 or a redirect: modifiers on
parameters that cannot take them, trailing slashes (the inputs came from fuzzing
/openapi.json and the /pas/v1 endpoints)."""

from __future__ import annotations

import pytest

from tests.support.checked_client import CheckedClient
from tests.support.fhir_validation import validate_r4
from tests.support.servers import FHIRClient


@pytest.mark.parametrize(
    "query",
    [
        "AllergyIntolerance?patient:missing=true",
        "AllergyIntolerance?patient:missing=false",
        "MedicationRequest?patient:missing=true",
    ],
)
async def test_patient_missing_on_clinical_types_is_400_not_500(facade: FHIRClient, query: str) -> None:
    """Was a 500: the PAS-aware composite read the :missing value as a patient reference."""
    status, headers, body = await facade.get(f"/{query}")
    assert status == 400
    assert headers["Content-Type"].startswith("application/fhir+json")
    assert body["resourceType"] == "OperationOutcome"
    assert "patient:missing" in body["issue"][0]["diagnostics"]
    validate_r4(body)


@pytest.mark.parametrize(
    "path", ["/Patient/", "/AllergyIntolerance/%2F?_id=abc", "/MedicationRequest/?patient=9000000009"]
)
async def test_trailing_slash_is_a_fhir_404_not_a_redirect(facade: FHIRClient, path: str) -> None:
    """Was a 307 with an empty body to the slash-less path (Starlette's redirect_slashes),
    which turned a read of id "/" into a search."""
    status, headers, body = await facade.get(path, allow_redirects=False)
    assert status == 404
    assert headers["Content-Type"].startswith("application/fhir+json")
    assert body["resourceType"] == "OperationOutcome"
    validate_r4(body)


async def test_pas_trailing_slash_is_a_pas_404_not_a_redirect(facade: FHIRClient) -> None:
    status, headers, body = await facade.get("/pas/v1/patients/", allow_redirects=False)
    assert status == 404
    assert headers["Content-Type"].startswith("application/json")
    assert body is not None


async def test_missing_modifier_on_a_pds_flag_is_a_400_not_a_500(fhir: CheckedClient) -> None:
    """Found by the query fuzzer: `_fuzzy-match:missing=true` reached an assertion (500)."""
    for query in ("family=Smith&_fuzzy-match:missing=true", "family=Smith&birthdate=2010&gender:missing=true"):
        answer = await fhir.get(f"/Patient?{query}")
        assert answer.status == 400 and ":missing' is not supported" in answer.issue["diagnostics"], query
