"""ServiceRequest end to end over real sockets: test -> façade -> emulator (BaRS, e-RS, PDS)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from server.app import create_app
from server.serving import serving
from server.settings import Settings
from server.sources.config import SourceConfig
from server.sources.registry import SOURCES
from tests.support.emulator_control import inject, upstream_counts
from tests.support.fhir_validation import validate_r4
from tests.support.servers import Emulator, FHIRClient, free_port, running_facade
from tests.support.shared import example_files
from tests.support.tokens import facade_access_settings

NHS = "https://fhir.nhs.uk/Id/nhs-number"
UBRN = "https://fhir.nhs.uk/Id/UBRN"
ERS_USER = {
    "NHSD-eRS-Business-Function": "REFERRING_CLINICIAN",
    "NHSD-End-User-Organisation-ODS": "R69",
    "X-NHS-User-Token": "caller-cis2-token",
}
SANDBOX_IDS = {
    "barsp.sandbox.9000000009.0b6f6a70-3c51-4c1e-9d51-7c0e8a8f1001",
    "bars.sandbox.0b6f6a70-3c51-4c1e-9d51-7c0e8a8f1002",
}


def matches(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]


def outcomes(bundle: dict[str, Any]) -> list[str]:
    return [
        i["diagnostics"]
        for e in bundle.get("entry", [])
        if e["search"]["mode"] == "outcome"
        for i in e["resource"]["issue"]
    ]


@pytest.fixture
async def ers_stu3(emulator: Emulator, http: aiohttp.ClientSession) -> AsyncIterator[FHIRClient]:
    async with running_facade(emulator, ers_access_mode="application-restricted") as url:
        yield FHIRClient(url, http)


# ---- search by patient (BaRS) -----------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "patient=9000000009",
        "patient=Patient/9000000009",
        f"patient:identifier={NHS}|9000000009",
        f"patient.identifier={NHS}|9000000009",
        "subject=9000000009",
        "subject:Patient=9000000009",
    ],
)
async def test_search_by_patient_in_each_form_asks_bars(facade: FHIRClient, query: str) -> None:
    status, headers, body = await facade.get(f"/ServiceRequest?{query}")
    assert status == 200, body
    validate_r4(body)
    found = matches(body)
    assert {r["id"] for r in found} == SANDBOX_IDS
    assert body["total"] == 2
    for resource in found:
        assert resource["subject"] == {
            "reference": "Patient/9000000009",
            "identifier": {"system": NHS, "value": "9000000009"},
        }
    crossref = next(r for r in found if r["id"].endswith("1002"))
    assert {"system": UBRN, "value": "000000070000"} in crossref["identifier"]


async def test_every_configured_bars_target_is_asked(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    targets = [
        {"key": "sandbox", "system": "tests", "value": "NHS0001"},
        {"key": "second", "system": "tests", "value": "NHS0002"},
    ]
    async with running_facade(emulator, bars_targets=targets) as url:
        status, _, body = await FHIRClient(url, http).get("/ServiceRequest?patient=9000000009")
    assert status == 200
    validate_r4(body)
    assert {r["id"] for r in matches(body)} == SANDBOX_IDS | {"bars.second.0b6f6a70-3c51-4c1e-9d51-7c0e8a8f2001"}


async def test_local_filters_apply_to_what_bars_returns(facade: FHIRClient) -> None:
    status, _, body = await facade.get("/ServiceRequest?patient=9000000009&status=active&authored=ge2024")
    assert status == 200
    validate_r4(body)
    assert [r["id"] for r in matches(body)] == ["barsp.sandbox.9000000009.0b6f6a70-3c51-4c1e-9d51-7c0e8a8f1001"]
    assert body["total"] == 1
    status, _, body = await facade.get("/ServiceRequest?patient=9000000009&_sort=-authored")
    assert [r["authoredOn"][:4] for r in matches(body)] == ["2024", "2023"]
    # :text (a 400 before the one local matcher) searches the codings' displays.
    status, _, body = await facade.get("/ServiceRequest?patient=9000000009&code:text=referral%20to%20psych")
    assert status == 200, body
    assert [r["id"] for r in matches(body)] == ["bars.sandbox.0b6f6a70-3c51-4c1e-9d51-7c0e8a8f1002"]


async def test_patient_without_referrals_is_an_empty_searchset(facade: FHIRClient) -> None:
    status, _, body = await facade.get("/ServiceRequest?patient=9000000033")
    assert status == 200 and body["total"] == 0 and "entry" not in body
    validate_r4(body)


async def test_include_patient_adds_the_pds_patient_once_and_total_counts_matches_only(facade: FHIRClient) -> None:
    status, _, body = await facade.get("/ServiceRequest?patient=9000000009&_include=ServiceRequest:patient")
    assert status == 200
    validate_r4(body)
    assert body["total"] == 2
    included = [e for e in body["entry"] if e["search"]["mode"] == "include"]
    assert [(e["resource"]["resourceType"], e["resource"]["id"]) for e in included] == [("Patient", "9000000009")]
    assert included[0]["fullUrl"].endswith("/Patient/9000000009")


# ---- invalid input: 400 and no upstream call --------------------------------------------


@pytest.mark.parametrize(
    "query, says",
    [
        ("patient=9000000000", "Modulus-11"),
        (f"patient:identifier={NHS}|9000000001", "Modulus-11"),
        ("patient:identifier=https://example.org/mrn|9000000009", "NHS number"),
        ("status=active", "needs a patient"),
        ("", "needs a patient"),
        (f"identifier={UBRN}|123", "twelve digits"),
        # A modifier nothing here evaluates (code:text was one, before the one local matcher).
        ("patient=9000000009&code:below=cardio", "not supported"),
    ],
)
async def test_bad_searches_are_400_with_zero_upstream_calls(
    facade: FHIRClient, emulator: Emulator, http: aiohttp.ClientSession, query: str, says: str
) -> None:
    status, _, body = await facade.get(f"/ServiceRequest?{query}")
    assert status == 400, body
    validate_r4(body)
    assert body["resourceType"] == "OperationOutcome" and says in body["issue"][0]["diagnostics"]
    assert await upstream_counts(http, emulator) == {}


async def test_ubrn_search_without_user_context_is_400_before_calling_ers(
    facade: FHIRClient, emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    status, _, body = await facade.get(f"/ServiceRequest?identifier={UBRN}|000000070000")
    assert status == 400
    validate_r4(body)
    assert "NHSD-eRS-Business-Function" in body["issue"][0]["diagnostics"]
    assert await upstream_counts(http, emulator) == {}


# ---- search by UBRN (e-RS) ---------------------------------------------------------------


async def test_search_by_ubrn_uses_ers_r4_with_the_callers_context(facade: FHIRClient) -> None:
    status, _, body = await facade.get(f"/ServiceRequest?identifier={UBRN}|000000070002", headers=ERS_USER)
    assert status == 200, body
    validate_r4(body)
    found = matches(body)
    assert sorted(r["id"] for r in found) == [
        "ers.000000070002.a.5c0e2f7a-1d34-4a8b-9b6e-3f2a1c0d7002",
        "ers.000000070002.r.5c0e2f7a-1d34-4a8b-9b6e-3f2a1c0d7002",
    ]
    for resource in found:
        assert {"system": UBRN, "value": "000000070002"} in resource["identifier"]
        assert resource["subject"]["reference"] == "Patient/9000000009"
    status, _, body = await facade.get(
        f"/ServiceRequest?identifier={UBRN}|000000070002&status=completed", headers=ERS_USER
    )
    assert [r["id"][:20] for r in matches(body)] == ["ers.000000070002.a.5"]


async def test_search_by_unknown_ubrn_is_empty(facade: FHIRClient) -> None:
    status, _, body = await facade.get("/ServiceRequest?identifier=000000070003", headers=ERS_USER)
    assert status == 200 and body["total"] == 0
    validate_r4(body)


async def test_ers_refuses_a_business_function_a041_does_not_allow(facade: FHIRClient) -> None:
    headers = {**ERS_USER, "NHSD-eRS-Business-Function": "ADDITIONAL_REQUIREMENTS_MANAGER"}
    status, _, body = await facade.get(f"/ServiceRequest?identifier={UBRN}|000000070000", headers=headers)
    assert status == 403  # the caller's token and role were used: the caller's problem
    validate_r4(body)


async def test_app_restricted_ubrn_search_uses_stu3_mapped_to_r4(ers_stu3: FHIRClient) -> None:
    status, _, body = await ers_stu3.get(
        f"/ServiceRequest?identifier={UBRN}|000000070000&_include=ServiceRequest:patient"
    )
    assert status == 200, body
    validate_r4(body)
    (resource,) = matches(body)
    assert resource["id"] == "ers3.000000070000"
    assert resource["identifier"][0] == {"system": UBRN, "value": "000000070000"}
    assert resource["subject"]["identifier"] == {"system": NHS, "value": "9000000009"}
    assert "contained" not in resource
    assert [e["resource"]["id"] for e in body["entry"] if e["search"]["mode"] == "include"] == ["9000000009"]
    status, _, body = await ers_stu3.get(f"/ServiceRequest?identifier={UBRN}|000000070003")
    assert status == 200 and body["total"] == 0  # A005 404 for an unknown UBRN: no match


# ---- read by issued id -----------------------------------------------------------------------


@pytest.mark.parametrize("query", ["patient=9000000009", f"identifier={UBRN}|000000070002"])
async def test_every_issued_id_reads_back(facade: FHIRClient, query: str) -> None:
    _, _, body = await facade.get(f"/ServiceRequest?{query}", headers=ERS_USER)
    found = matches(body)
    assert found
    for resource in found:
        status, headers, read = await facade.get(f"/ServiceRequest/{resource['id']}", headers=ERS_USER)
        assert status == 200, read
        validate_r4(read)
        assert read["id"] == resource["id"]
        assert read.get("identifier") == resource.get("identifier")
        assert headers["ETag"]


async def test_stu3_issued_id_reads_back(ers_stu3: FHIRClient) -> None:
    status, _, body = await ers_stu3.get("/ServiceRequest/ers3.000000070002")
    assert status == 200
    validate_r4(body)
    assert body["identifier"][0]["value"] == "000000070002"


@pytest.mark.parametrize(
    "rid",
    [
        "bars.sandbox.00000000-0000-4000-8000-000000000000",  # BaRS 404
        "bars.gone.0b6f6a70-3c51-4c1e-9d51-7c0e8a8f1001",  # target no longer configured
        "ers.000000070002.r.00000000-0000-4000-8000-000000000000",  # not in e-RS's answer
        "ers3.000000079999",  # A005 404
        "9000000009",  # never issued by the façade
    ],
)
async def test_unknown_ids_are_404(facade: FHIRClient, rid: str) -> None:
    status, _, body = await facade.get(f"/ServiceRequest/{rid}", headers=ERS_USER)
    assert status == 404, body
    validate_r4(body)


# ---- upstream trouble -> honest statuses ----------------------------------------------------

ERS_EXPECTED = {400: 400, 401: 401, 403: 403, 404: 502, 429: 503, 500: 502, 503: 503}


@pytest.mark.parametrize("status", sorted(ERS_EXPECTED))
async def test_ers_error_bodies_map_to_honest_statuses(
    facade: FHIRClient, emulator: Emulator, http: aiohttp.ClientSession, status: int
) -> None:
    body = json.loads(example_files(f"ers/OperationOutcome-{status}.json")[0].read_text())
    await inject(http, emulator, path_prefix="/referrals/FHIR/R4", status=status, body=body, times=-1)
    got, headers, outcome = await facade.get(f"/ServiceRequest?identifier={UBRN}|000000070000", headers=ERS_USER)
    assert got == ERS_EXPECTED[status], outcome  # a 404 to a search is the façade's problem: 502
    validate_r4(outcome)
    assert outcome["resourceType"] == "OperationOutcome"
    if got == 503:
        assert int(headers["Retry-After"]) >= 1


async def test_ers_404_on_a_read_is_404(facade: FHIRClient, emulator: Emulator, http: aiohttp.ClientSession) -> None:
    body = json.loads(example_files("ers/OperationOutcome-404.json")[0].read_text())
    await inject(http, emulator, path_prefix="/referrals/FHIR/R4", status=404, body=body)
    status, _, outcome = await facade.get(
        "/ServiceRequest/ers.000000070000.r.5c0e2f7a-1d34-4a8b-9b6e-3f2a1c0d7000", headers=ERS_USER
    )
    assert status == 404
    assert outcome["issue"][0]["details"]["coding"][0]["code"] == "REC_NOT_FOUND"


async def test_the_published_malformed_bars_searchset_is_read_with_a_warning(
    facade: FHIRClient, emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    body = json.loads(example_files("bars/ServiceRequest_search_GET-success.json")[0].read_text())
    await inject(http, emulator, path_prefix="/booking-and-referral", status=200, body=body)
    status, _, bundle = await facade.get("/ServiceRequest?patient=9000000009")
    assert status == 200
    validate_r4(bundle)
    (resource,) = matches(bundle)
    assert resource["id"] == "barsp.sandbox.9000000009.71d2b38e-b81c-4894-a522-6a65265b1d58"
    assert resource["subject"]["reference"] == "Patient/9000000009"
    assert any("without the 'resource' wrapper" in d for d in outcomes(bundle))


async def test_invalid_r4_from_bars_is_left_out_with_a_warning_naming_paths_not_values(
    facade: FHIRClient, emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    bad = {
        "resourceType": "ServiceRequest",
        "id": "bad-1",
        "status": "active",
        "intent": "plan",
        "subject": {"identifier": {"system": NHS, "value": "9000000009"}},
        "note": "MARKER-TEXT",
    }
    good = {**bad, "id": "good-1", "note": [{"text": "fine"}]}
    searchset = {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": bad}, {"resource": good}]}
    await inject(http, emulator, path_prefix="/booking-and-referral", status=200, body=searchset)
    status, _, bundle = await facade.get("/ServiceRequest?patient=9000000009")
    assert status == 200
    validate_r4(bundle)
    assert [r["id"] for r in matches(bundle)] == ["bars.sandbox.good-1"]
    (warning,) = outcomes(bundle)
    assert "note" in warning and "MARKER-TEXT" not in warning


@pytest.mark.parametrize(
    "fault, expected",
    [
        ({"malformed": True}, 502),
        ({"status": 500}, 502),
        ({"status": 503}, 503),
        ({"status": 429}, 503),
        ({"delay": 0.3}, 504),
    ],
)
async def test_bars_failures_map_to_honest_statuses(
    emulator: Emulator, http: aiohttp.ClientSession, fault: dict[str, Any], expected: int
) -> None:
    await inject(http, emulator, path_prefix="/booking-and-referral", times=-1, **fault)
    async with running_facade(emulator, upstream_read_timeout=0.1) as url:
        status, _, body = await FHIRClient(url, http).get("/ServiceRequest?patient=9000000009")
    assert status == expected, body
    validate_r4(body)


async def test_unknown_bars_target_is_a_502_not_a_404(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    async with running_facade(emulator, bars_targets=[{"key": "nope", "system": "tests", "value": "NHS9999"}]) as url:
        status, _, body = await FHIRClient(url, http).get("/ServiceRequest?patient=9000000009")
    assert status == 502
    validate_r4(body)


# ---- the emulator enforces BaRS's headers ----------------------------------------------------


@pytest.mark.parametrize(
    "change, status, code",
    [
        ({"NHSD-Target-Identifier": None}, 400, "PROXY_BAD_REQUEST"),
        ({"NHSD-Target-Identifier": "AA"}, 400, "PROXY_BAD_REQUEST"),
        ({"NHSD-Target-Identifier": "eyJ2YWx1ZSI6ICJOSFMwMDAxIn0="}, 400, "PROXY_BAD_REQUEST"),  # no system
        ({"X-Request-ID": "not-a-uuid"}, 400, "SEND_BAD_REQUEST"),
        ({"X-Correlation-ID": None}, 400, "SEND_BAD_REQUEST"),
        ({"NHSD-Requesting-Software": None}, 400, "SEND_BAD_REQUEST"),
    ],
)
async def test_bars_emulator_rejects_bad_headers(
    emulator: Emulator, http: aiohttp.ClientSession, change: dict[str, str | None], status: int, code: str
) -> None:
    good = {
        "X-Request-ID": "6f1c1e4e-4a7e-4b0e-9a53-6f0c2a1d9b10",
        "X-Correlation-ID": "6f1c1e4e-4a7e-4b0e-9a53-6f0c2a1d9b11",
        "Accept": "application/fhir+json; version=1.0.0",
        "NHSD-Target-Identifier": "eyJ2YWx1ZSI6ICJOSFMwMDAxIiwgInN5c3RlbSI6ICJ0ZXN0cyJ9",
        "NHSD-End-User-Organisation": "eyJyZXNvdXJjZVR5cGUiOiAiT3JnYW5pemF0aW9uIn0=",
        "NHSD-Requesting-Software": "eyJyZXNvdXJjZVR5cGUiOiAiRGV2aWNlIn0=",
    }
    url = f"{emulator.bars_url}/ServiceRequest?patient:identifier={NHS}|9000000009"
    async with http.get(url, headers=good) as resp:
        assert resp.status == 200
    headers = {k: v for k, v in {**good, **change}.items() if v is not None}
    async with http.get(url, headers=headers) as resp:
        assert resp.status == status
        assert (await resp.json(content_type=None))["issue"][0]["details"]["coding"][0]["code"] == code


# ---- capability and sandbox mode -------------------------------------------------------------


async def test_metadata_lists_service_request_with_params_and_include(facade: FHIRClient) -> None:
    status, _, body = await facade.get("/metadata")
    assert status == 200
    validate_r4(body)
    (entry,) = [r for r in body["rest"][0]["resource"] if r["type"] == "ServiceRequest"]
    names = {p["name"] for p in entry["searchParam"]}
    assert {"patient", "subject", "identifier", "status", "category", "authored", "occurrence"} <= names
    assert entry["searchInclude"] == ["ServiceRequest:patient", "ServiceRequest:subject"]
    assert {i["code"] for i in entry["interaction"]} >= {"read", "search-type"}


async def test_sandbox_mode_answers_9000000009_from_the_embedded_emulator(http: aiohttp.ClientSession) -> None:
    """No upstream URL set at all: the façade starts its own emulator (the README's make run)."""
    port = free_port()
    settings = Settings(
        base_url=f"http://127.0.0.1:{port}", port=port, **facade_access_settings(f"http://127.0.0.1:{port}")
    )
    config = SourceConfig.resolve(settings, SOURCES)
    assert config.configured_urls() == [None] * 5 and config.emulator_needed(settings)
    async with serving(create_app(settings), port=port, ready_path="/metadata") as url:
        client = FHIRClient(url, http)
        status, _, body = await client.get("/ServiceRequest?patient=9000000009&_include=ServiceRequest:patient")
        assert status == 200
        validate_r4(body)
        assert len(matches(body)) >= 2
        status, _, body = await client.get("/ServiceRequest?identifier=000000070000", headers=ERS_USER)
        assert status == 200
        validate_r4(body)
        assert len(matches(body)) == 1
