"""Restricted patients never leak from the PAS copy, over real sockets (issue 8).

A PAS record whose restriction PDS has not confirmed for its current NHS number (PDS down
at registration, a failed trace, no NHS number) is shown without what an R record
withholds, on every path: PAS POST/PUT/GET answers, FHIR Patient read and search by
hospital number. Whatever PDS says (U, R, V) is kept in the store, so a later PDS outage
still knows it: in memory and in MongoDB (and across a façade restart there). Both stores
keep PDS's answer by the same rules (the store-level contract at the end).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from server.mongodb import create_client
from server.pas.mongo_store import COLLECTION, MongoPASStore, pas_collection
from server.pas.store import InMemoryPASStore, PASStore, PatientData, PDSSecurity
from server.sources.pds.emulator_data import PATIENTS
from tests.support.checked_client import CheckedClient
from tests.support.emulator_control import PDS_PREFIX, inject, reset_emulator
from tests.support.mongo import MongoTarget, target_collection
from tests.support.pas_people import HN_SYSTEM, JANE, JANET, pas_record
from tests.support.servers import Emulator, FHIRClient, running_facade
from tests.support.tokens import with_default_auth

CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
# One attempt per PDS call and a breaker that never opens: "PDS down" and "PDS back" are
# exactly what the emulator is told, request by request.
PDS_SWITCHABLE = {"upstream_retry_attempts": 1, "upstream_breaker_threshold": 1000}
SECRET_ADDRESS = {"lines": ["1 Secret Lane", "Leeds"], "postcode": "LS2 7AB"}
PAS_WITHHELD = ("address", "phone", "email", "gpPracticeCode")
FHIR_WITHHELD = ("address", "telecom", "generalPractitioner", "contact")


def janet(hn: str, **extra: Any) -> dict[str, Any]:
    """9000000025 is restricted (R) in PDS."""
    held = {
        "nhsNumber": "9000000025",
        "address": SECRET_ADDRESS,
        "phone": "07700900123",
        "email": "janet@example.org",
        "gpPracticeCode": "Y12345",
    }
    return pas_record(hn, {**JANET, **held}, **extra)


def jane(hn: str, **extra: Any) -> dict[str, Any]:
    """9000000009 is unrestricted (U) in PDS; the PAS holds an address PDS does not."""
    held = {
        "nhsNumber": "9000000009",
        "address": {"lines": ["9 Old Road"], "postcode": "LS1 6AE"},
        "phone": "07700900555",
    }
    return pas_record(hn, {**JANE, **held}, **extra)


@contextlib.asynccontextmanager
async def facade_on(
    emulator: Emulator, http: aiohttp.ClientSession, **overrides: Any
) -> AsyncIterator[tuple[FHIRClient, CheckedClient]]:
    async with running_facade(emulator, **PDS_SWITCHABLE, **overrides) as url:
        yield FHIRClient(url, http), CheckedClient(url, http)


async def send_hl7(facade: FHIRClient, message: str) -> str:
    """The ACK text for an ER7 message (segments joined by CR)."""
    async with facade.session.post(
        facade.base_url + "/pas/v1/hl7",
        **with_default_auth({"data": message.encode(), "headers": {"Content-Type": "application/hl7-v2"}}),
    ) as resp:
        return await resp.text()


async def pds_down(http: aiohttp.ClientSession, emulator: Emulator) -> None:
    await inject(http, emulator, status=503, times=-1)


async def pds_back(http: aiohttp.ClientSession, emulator: Emulator) -> None:
    await reset_emulator(http, emulator)


def assert_pas_withheld(record: dict[str, Any]) -> None:
    for field in PAS_WITHHELD:
        assert field not in record, (field, record)


async def assert_fhir_withheld(fhir: CheckedClient, hn: str, label: str | None) -> None:
    """Patient read and search by hospital number show nothing R withholds, with `label`."""
    read = await fhir.get(f"/Patient/pas-{hn}")
    search = await fhir.get(f"/Patient?identifier={HN_SYSTEM}|{hn}")
    assert read.status == 200 and search.status == 200, (read.body, search.body)
    found = [e["resource"] for e in search.body["entry"] if e["search"]["mode"] == "match"]
    assert [p["id"] for p in found] == [f"pas-{hn}"]
    for patient in (read.body, found[0]):
        for element in FHIR_WITHHELD:
            assert element not in patient, (element, patient)
        codes = [s["code"] for s in patient.get("meta", {}).get("security", []) if s["system"] == CONFIDENTIALITY]
        assert codes == ([label] if label else []), patient.get("meta")
        assert patient["name"][0]["family"]  # R withholds location, not identity


async def test_registered_while_pds_down_is_withheld_then_pds_restriction_is_kept(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    async with facade_on(emulator, http) as (facade, fhir):
        await pds_down(http, emulator)
        status, _, record = await facade.post("/pas/v1/patients", json=janet("H1"))
        assert status == 201 and record["nhsNumber"] == "9000000025"
        assert_pas_withheld(record)
        assert "confidentiality" not in record  # not confirmed: the façade does not claim R for PDS
        status, headers, record = await facade.get("/pas/v1/patients/H1")
        assert status == 200 and headers["X-PDS-Refresh"] == "unavailable"
        assert_pas_withheld(record)
        await assert_fhir_withheld(fhir, "H1", None)

        await pds_back(http, emulator)
        status, headers, record = await facade.get("/pas/v1/patients/H1")
        assert status == 200 and headers["X-PDS-Refresh"] == "refreshed" and record["confidentiality"] == "R"
        assert_pas_withheld(record)

        await pds_down(http, emulator)
        status, headers, record = await facade.get("/pas/v1/patients/H1")
        assert status == 200 and headers["X-PDS-Refresh"] == "unavailable"
        assert record["confidentiality"] == "R"  # PDS's answer was kept
        assert_pas_withheld(record)
        await assert_fhir_withheld(fhir, "H1", "R")
        # A whole-record PUT while PDS is down keeps PDS's answer, and its answer withholds.
        status, _, record = await facade.request(
            "PUT", "/pas/v1/patients/H1", json=janet("H1", phone="07700900999"), headers={"If-Match": 'W/"1"'}
        )
        assert status == 200 and record["confidentiality"] == "R"
        assert_pas_withheld(record)
        await assert_fhir_withheld(fhir, "H1", "R")


async def test_unrestricted_once_confirmed_shows_the_pas_copy_during_an_outage(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    async with facade_on(emulator, http) as (facade, fhir):
        await pds_down(http, emulator)
        status, _, record = await facade.post("/pas/v1/patients", json=jane("H2"))
        assert status == 201
        assert_pas_withheld(record)
        _, _, record = await facade.get("/pas/v1/patients/H2")
        assert_pas_withheld(record)
        await assert_fhir_withheld(fhir, "H2", None)

        await pds_back(http, emulator)
        status, headers, record = await facade.get("/pas/v1/patients/H2")
        assert headers["X-PDS-Refresh"] == "refreshed" and record["confidentiality"] == "U"

        await pds_down(http, emulator)
        status, headers, record = await facade.get("/pas/v1/patients/H2")
        assert status == 200 and headers["X-PDS-Refresh"] == "unavailable"
        assert record["confidentiality"] == "U"
        assert record["address"] == {"lines": ["9 Old Road"], "postcode": "LS1 6AE"}  # the PAS copy, confirmed U
        assert record["phone"] == "07700900555"
        read = await fhir.get("/Patient/pas-H2")
        assert read.status == 200 and read.body["address"][0]["line"] == ["9 Old Road"]


async def test_a_restriction_pds_adds_later_is_kept(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    async with facade_on(emulator, http) as (facade, fhir):
        status, _, record = await facade.post("/pas/v1/patients", json=jane("H3"))
        assert status == 201 and record["confidentiality"] == "U" and record["phone"] == "07700900555"
        # PDS now says R for 9000000009 (and withholds location itself, as PDS does).
        restricted = copy.deepcopy(PATIENTS["9000000009"])
        restricted["meta"]["security"] = [{"system": CONFIDENTIALITY, "code": "R", "display": "restricted"}]
        for element in FHIR_WITHHELD:
            restricted.pop(element, None)
        await inject(http, emulator, path_prefix=f"{PDS_PREFIX}/Patient/9000000009", status=200, body=restricted)
        status, headers, record = await facade.get("/pas/v1/patients/H3")
        assert headers["X-PDS-Refresh"] == "refreshed" and record["confidentiality"] == "R"
        assert_pas_withheld(record)
        await pds_down(http, emulator)
        status, headers, record = await facade.get("/pas/v1/patients/H3")
        assert headers["X-PDS-Refresh"] == "unavailable" and record["confidentiality"] == "R"
        assert_pas_withheld(record)
        await assert_fhir_withheld(fhir, "H3", "R")


async def test_untraced_and_renumbered_records_are_unconfirmed(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    async with facade_on(emulator, http) as (facade, fhir):
        # No NHS number found (PDS hides restricted patients from postcode searches, so a
        # failed trace says nothing about restriction): withheld, on every answer.
        body = {
            "hospitalNumber": "H4",
            "surname": "Nobody",
            "forenames": "Known",
            "dateOfBirth": "01/01/1970",
            "sex": "U",
            "address": {"postcode": "LS1 1AA"},
            "phone": "07700900123",
        }
        status, headers, record = await facade.post("/pas/v1/patients", json=body)
        assert status == 201 and record["nhsNumberStatus"] == "04" and "result=no-match" in headers["X-NHS-Trace"]
        assert_pas_withheld(record)
        status, headers, record = await facade.get("/pas/v1/patients/H4")
        assert headers["X-PDS-Refresh"] == "not-traced"
        assert_pas_withheld(record)
        await assert_fhir_withheld(fhir, "H4", None)
        # Confirmed U for one NHS number, then renumbered while PDS is down: unconfirmed again.
        status, _, record = await facade.post("/pas/v1/patients", json=jane("H5"))
        assert record["confidentiality"] == "U" and "address" in record
        await pds_down(http, emulator)
        status, _, record = await facade.request(
            "PUT", "/pas/v1/patients/H5", json=jane("H5", nhsNumber="9000000025"), headers={"If-Match": 'W/"1"'}
        )
        assert status == 200 and record["nhsNumber"] == "9000000025"
        assert_pas_withheld(record)
        _, _, record = await facade.get("/pas/v1/patients/H5")
        assert_pas_withheld(record)
        await assert_fhir_withheld(fhir, "H5", None)


async def test_hl7_registration_while_pds_down_is_withheld(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    async with facade_on(emulator, http) as (facade, fhir):
        await pds_down(http, emulator)
        ack = await send_hl7(
            facade,
            "MSH|^~\\&|PAS|RX1|FACADE|NHS|20260101120000||ADT^A04^ADT_A01|MSG1|P|2.4\r"
            "EVN|A04|20260101120000\r"
            "PID|1||H6^^^RX1^MR~9000000025^^^NHS^NH||SMYTHE^JANET||20050616|F|||"
            "1 Secret Lane^^Leeds^^LS2 7AB||07700900123\rPD1|||GP^^Y12345\r",
        )
        assert "MSA|AA|" in ack, ack
        _, _, record = await facade.get("/pas/v1/patients/H6")
        assert record["nhsNumber"] == "9000000025"
        assert_pas_withheld(record)
        await assert_fhir_withheld(fhir, "H6", None)


# --- MongoDB store of record -------------------------------------------------------------


@pytest.mark.mongo
async def test_mongodb_keeps_pds_restriction_across_outages_and_restarts(
    emulator: Emulator, http: aiohttp.ClientSession, mongo_db: MongoTarget
) -> None:
    mongo = {"mongodb_uri": mongo_db.uri, "mongodb_database": mongo_db.database}
    async with facade_on(emulator, http, **mongo) as (facade, fhir):
        await pds_down(http, emulator)
        status, _, record = await facade.post("/pas/v1/patients", json=janet("H7"))
        assert status == 201
        assert_pas_withheld(record)
        status, _, record = await facade.post("/pas/v1/patients", json=jane("H8"))
        assert status == 201
        assert_pas_withheld(record)
        for hn in ("H7", "H8"):
            await assert_fhir_withheld(fhir, hn, None)
        async with target_collection(mongo_db, COLLECTION) as documents:
            assert "pdsSecurity" not in await documents.find_one({"_id": "H7"})

        await pds_back(http, emulator)
        for hn, code in (("H7", "R"), ("H8", "U")):
            status, headers, record = await facade.get(f"/pas/v1/patients/{hn}")
            assert headers["X-PDS-Refresh"] == "refreshed" and record["confidentiality"] == code
        async with target_collection(mongo_db, COLLECTION) as documents:
            doc = await documents.find_one({"_id": "H7"})
            assert doc["pdsSecurity"]["code"] == "R" and doc["pdsSecurity"]["nhsNumber"] == "9000000025"
            assert doc["pdsSecurity"]["confirmed"] and doc["version"] == 1  # the record itself is unchanged
            assert (await documents.find_one({"_id": "H8"}))["pdsSecurity"]["code"] == "U"

    await pds_down(http, emulator)
    async with facade_on(emulator, http, **mongo) as (facade, fhir):  # a new process, the same database
        status, headers, record = await facade.get("/pas/v1/patients/H7")
        assert status == 200 and headers["X-PDS-Refresh"] == "unavailable" and record["confidentiality"] == "R"
        assert_pas_withheld(record)
        await assert_fhir_withheld(fhir, "H7", "R")
        _, _, record = await facade.get("/pas/v1/patients/H8")
        assert record["confidentiality"] == "U" and record["address"]["lines"] == ["9 Old Road"]
        # An HL7 update (no version, whole-record merge) keeps PDS's answer too.
        ack = await send_hl7(
            facade,
            "MSH|^~\\&|PAS|RX1|FACADE|NHS|20260101120000||ADT^A08^ADT_A01|MSG2|P|2.4\r"
            "EVN|A08|20260101120000\rPID|1||H7^^^RX1^MR||SMYTHE^JANET||20050616|F|||"
            "2 Hidden Road^^York^^YO1 7HH\r",
        )
        assert "MSA|AA|" in ack, ack
        _, _, record = await facade.get("/pas/v1/patients/H7")
        assert record["confidentiality"] == "R"
        assert_pas_withheld(record)


# --- the store-level contract, both stores ----------------------------------------------


def said(code: str, nhs: str = "9000000025") -> PDSSecurity:
    return PDSSecurity(code, nhs, "2026-01-01T00:00:00+00:00")


@pytest.fixture(params=["memory", pytest.param("mongodb", marks=pytest.mark.mongo)])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[PASStore]:
    if request.param == "memory":
        yield InMemoryPASStore()
        return
    target: MongoTarget = request.getfixturevalue("mongo_db")
    client = create_client(target.uri, 2000)
    try:
        mongo = MongoPASStore(pas_collection(client[target.database]))
        await mongo.start()
        yield mongo
    finally:
        await client.close()


async def test_stores_keep_pds_answer_apart_from_the_record(store: PASStore) -> None:
    def record(hn: str, nhs: str | None = "9000000025") -> dict[str, Any]:
        return {"hospitalNumber": hn, "surname": "Smythe", **({"nhsNumber": nhs} if nhs else {})}

    created = await store.create(PatientData(record("H1")))
    assert created.pds_security is None  # never confirmed
    assert await store.record_pds_security("H1", said("R"))
    kept = await store.get("H1")
    assert kept is not None and kept.pds_security == said("R")
    assert kept.version == 1 and kept.record == created.record  # neither the record nor its version changed
    assert not await store.record_pds_security("H1", said("U", "9000000009"))  # not this record's NHS number
    assert not await store.record_pds_security("H9", said("R"))  # unknown
    assert (await store.get("H1")).pds_security == said("R")  # type: ignore[union-attr]
    # A write that learnt nothing from PDS keeps the answer; one that learnt something replaces it.
    replaced = await store.replace("H1", PatientData(record("H1")), expected_version=1)
    assert replaced.pds_security == said("R") and replaced.version == 2
    replaced = await store.replace("H1", PatientData(record("H1"), pds_security=said("V")), expected_version=None)
    assert replaced.pds_security == said("V")
    # A record created with PDS's answer (a trace at registration) has it at once.
    assert (
        await store.create(PatientData(record("H2", None), pds_security=said("U", "9000000009")))
    ).pds_security == said("U", "9000000009")
    # A40: the survivor keeps its own answer; through the alias too.
    merged = await store.merge("H2", "H1")
    assert merged.pds_security == said("V")
    assert await store.record_pds_security("H2", said("R"))  # the alias leads to H1
    assert (await store.get("H1")).pds_security == said("R")  # type: ignore[union-attr]
