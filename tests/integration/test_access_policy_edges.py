"""Access decisions at their edges: the purpose header cannot override the token's purpose,
a patient token never makes PDS look up another patient, _revinclude needs the search
permission, compartments cannot be widened, and cached answers are checked per caller."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.support.access import CLINICIAN, CPT, JANE, JANE_APP, JAYNE, auth, included, matches
from tests.support.checked_client import CheckedClient
from tests.support.emulator_control import upstream_total
from tests.support.servers import Emulator, running_facade
from tests.support.tokens import token


@pytest.fixture
async def cached(emulator: Emulator, http: aiohttp.ClientSession) -> AsyncIterator[CheckedClient]:
    async with running_facade(emulator, cache_enabled=True, relationship_required=True) as url:
        yield CheckedClient(url, http)


# ---- purpose of use ---------------------------------------------------------------------------


async def test_the_purpose_header_cannot_override_the_purpose_the_token_was_issued_for(fhir: CheckedClient) -> None:
    operations = token("user/*.rs", roles=["clinician"], purpose="HOPERAT", subject="ops-analyst")
    assert (await fhir.get(f"/AllergyIntolerance?patient={JANE}", headers=auth(operations))).status == 403
    upgraded = await fhir.get(
        f"/AllergyIntolerance?patient={JANE}", headers=auth(operations, **{"X-Purpose-Of-Use": "TREAT"})
    )
    assert upgraded.status == 403, matches(upgraded.body)


# ---- patient compartment ------------------------------------------------------------------------


async def test_a_patient_token_reading_another_patient_is_refused_before_nhs_is_asked(
    fhir: CheckedClient, emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    before = await upstream_total(http, emulator)
    other = await fhir.get(f"/Patient/{JAYNE}", headers=auth(JANE_APP))
    assert other.status == 403
    assert await upstream_total(http, emulator) == before


async def test_revinclude_needs_the_search_permission_of_its_source_type(fhir: CheckedClient) -> None:
    read_only = token("user/Patient.rs user/AllergyIntolerance.r", roles=["clinician"])
    assert (await fhir.get(f"/AllergyIntolerance?patient={JANE}", headers=auth(read_only))).status == 403
    answer = await fhir.get(
        f"/Patient?identifier={JANE}&_revinclude=AllergyIntolerance:patient", headers=auth(read_only)
    )
    assert answer.status == 200
    assert included(answer.body) == []


# ---- the cache sits before the access checks ----------------------------------------


async def test_a_cached_answer_is_checked_for_every_caller(cached: CheckedClient, http: aiohttp.ClientSession) -> None:
    first = await cached.get(f"/Patient/{JANE}", headers=auth(CLINICIAN))
    assert first.status == 200
    hit = await cached.get(f"/Patient/{JANE}", headers=auth(CLINICIAN))
    assert hit.headers["X-Cache"] == "HIT"
    jayne_app = token("patient/*.rs", roles=["clinician"], patient=JAYNE, subject="jayne-app")
    for headers in ({}, {"If-None-Match": first.headers["ETag"]}):
        refused = await cached.get(f"/Patient/{JANE}", headers=auth(jayne_app, **headers))
        assert refused.status == 403 and "X-Cache" not in refused.headers and "ETag" not in refused.headers
    glass = await cached.get(
        f"/AllergyIntolerance?patient={JANE}", headers=auth(CLINICIAN, **{"X-Purpose-Of-Use": "ETREAT"})
    )
    assert glass.status == 200 and matches(glass.body)
    again = await cached.get(f"/AllergyIntolerance?patient={JANE}", headers=auth(CLINICIAN))
    assert again.status == 403  # the break-glass answer in the cache does not lift the relationship check


async def test_a_patient_token_cannot_widen_its_compartment_with_includes(fhir: CheckedClient) -> None:
    own = await fhir.get(
        f"/Patient?identifier={JANE}&_revinclude=MedicationRequest:patient&_revinclude=AllergyIntolerance:patient",
        headers=auth(JANE_APP, **CPT),
    )
    assert own.status == 200
    for resource in matches(own.body) + included(own.body):
        text = str(resource)
        assert JAYNE not in text
    for query in (
        f"_id={JANE},{JAYNE}",
        f"identifier={JAYNE}",
        f"_id:not={JAYNE}",
        "_id:missing=false",
        f"identifier=urn:other|{JANE}",
    ):
        assert (await fhir.get(f"/Patient?{query}", headers=auth(JANE_APP))).status in (400, 403), query
    for query in (f"patient={JANE}&patient={JAYNE}", f"subject={JAYNE}", "patient:missing=false"):
        answer = await fhir.get(f"/MedicationRequest?{query}", headers=auth(JANE_APP, **CPT))
        assert answer.status in (400, 403), (query, answer.status)
