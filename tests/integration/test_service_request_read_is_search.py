"""One version, one content (issue 10, defect 1): a ServiceRequest read answers exactly
what the patient search answered for the same id, with the same ETag, over real sockets.

BaRS referral 0b6f...1001 names no NHS number (its subject is a `urn:uuid:` into a booking
message): the search serves it for the patient asked about, and the id it issues carries
that patient (`barsp.`), so the read serves the same subject. A made-up `barsp.` id cannot
put one patient's referral under another's NHS number: BaRS must list it for that patient.
"""

from __future__ import annotations

import aiohttp

from tests.support.checked_client import CheckedClient
from tests.support.emulator_control import upstream_counts
from tests.support.servers import Emulator

NHS = "https://fhir.nhs.uk/Id/nhs-number"
NO_NHS_NUMBER = "0b6f6a70-3c51-4c1e-9d51-7c0e8a8f1001"  # BaRS subject is a urn:uuid: only
NAMES_NHS_NUMBER = "0b6f6a70-3c51-4c1e-9d51-7c0e8a8f1002"
NO_CACHE = {"Cache-Control": "no-cache"}


async def test_every_read_equals_the_search_entry_and_its_etag(fhir: CheckedClient) -> None:
    search = await fhir.get("/ServiceRequest?patient=9000000009")
    assert search.status == 200
    entries = [e for e in search.body["entry"] if e["search"]["mode"] == "match"]
    assert {e["resource"]["id"] for e in entries} == {
        f"barsp.sandbox.9000000009.{NO_NHS_NUMBER}",
        f"bars.sandbox.{NAMES_NHS_NUMBER}",
    }
    for entry in entries:
        resource = entry["resource"]
        read = await fhir.get(f"/ServiceRequest/{resource['id']}", headers=NO_CACHE)
        assert read.status == 200, read.body
        assert read.body == resource
        assert read.headers["ETag"] == f'W/"{resource["meta"]["versionId"]}"'
        assert read.body["subject"] == {
            "reference": "Patient/9000000009",
            "identifier": {"system": NHS, "value": "9000000009"},
        }


async def test_a_referral_naming_no_nhs_number_is_read_through_that_patients_search(
    fhir: CheckedClient, http: aiohttp.ClientSession, emulator: Emulator
) -> None:
    read = await fhir.get(f"/ServiceRequest/barsp.sandbox.9000000009.{NO_NHS_NUMBER}", headers=NO_CACHE)
    assert read.status == 200
    counts = await upstream_counts(http, emulator)
    assert [k for k in counts if "/ServiceRequest" in k] == [
        "GET /booking-and-referral/FHIR/R4/ServiceRequest?patient:identifier=https://fhir.nhs.uk/Id/nhs-number%7C9000000009"
    ]


async def test_an_id_naming_another_patient_is_404_never_that_patients_referral(fhir: CheckedClient) -> None:
    for rid in (
        f"barsp.sandbox.9000000017.{NO_NHS_NUMBER}",  # BaRS lists it for 9000000009 only
        f"barsp.sandbox.9000000017.{NAMES_NHS_NUMBER}",  # names 9000000009 itself
    ):
        read = await fhir.get(f"/ServiceRequest/{rid}", headers=NO_CACHE)
        assert read.status == 404, (rid, read.body)
    bad = await fhir.get(f"/ServiceRequest/barsp.sandbox.9000000000.{NO_NHS_NUMBER}", headers=NO_CACHE)
    assert bad.status == 404  # not a valid NHS number: never issued


async def test_an_old_style_id_for_a_referral_naming_no_patient_is_502_not_a_dangling_subject(
    fhir: CheckedClient,
) -> None:
    read = await fhir.get(f"/ServiceRequest/bars.sandbox.{NO_NHS_NUMBER}", headers=NO_CACHE)
    assert read.status == 502
    assert "names no patient" in read.issue["diagnostics"]
