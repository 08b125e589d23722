"""Smoke: the façade reads a Patient through the emulator over real sockets."""

from __future__ import annotations

from tests.support.fhir_validation import validate_r4
from tests.support.servers import FHIRClient


async def test_read_patient_through_emulator(facade: FHIRClient) -> None:
    status, headers, body = await facade.get("/Patient/9000000009")
    assert status == 200
    assert headers["ETag"] == 'W/"2"'
    assert headers["Content-Type"] == "application/fhir+json; charset=utf-8"
    assert body["id"] == "9000000009"
    validate_r4(body)
