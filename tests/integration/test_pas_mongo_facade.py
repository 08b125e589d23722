"""The PAS with its MongoDB store of record, end to end over real sockets: the façade on a
loopback port, the emulator as PDS, MongoDB (SecantusDB or FACADE_TEST_MONGODB_URI)
through PyMongo's async client. Versioned updates, races, A40 merges, persistence across
façade restarts, and MongoDB outages (503 for REST and FHIR, AR for HL7, nothing stored)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from server.pas.mongo_store import COLLECTION
from tests.support.access import CPT_PRACTITIONER
from tests.support.fhir_validation import validate_r4
from tests.support.mongo import MongoTarget, SecantusProcess, target_collection
from tests.support.pas_people import JANE, adt, pas_record
from tests.support.servers import Emulator, FHIRClient, free_port, running_facade
from tests.support.tokens import bearer

pytestmark = pytest.mark.mongo

HL7 = {"Content-Type": "application/hl7-v2"}


def patient(hn: str, **extra: Any) -> dict[str, Any]:
    """A patient with a supplied NHS number: no PDS trace, so only the store is exercised."""
    return pas_record(hn, {**JANE, "nhsNumber": "9000000009"}, **extra)


@contextlib.asynccontextmanager
async def pas_facade(
    emulator: Emulator, http: aiohttp.ClientSession, uri: str, database: str, **overrides: Any
) -> AsyncIterator[FHIRClient]:
    async with running_facade(emulator, mongodb_uri=uri, mongodb_database=database, **overrides) as url:
        yield FHIRClient(url, http)


async def send_hl7(facade: FHIRClient, body: bytes) -> tuple[int, list[list[str]]]:
    async with facade.session.post(facade.base_url + "/pas/v1/hl7", data=body, headers={**HL7, **bearer()}) as resp:
        return resp.status, [line.split("|") for line in (await resp.text()).split("\r") if line]


async def until_not_503(facade: FHIRClient, path: str, within: float = 15.0) -> int:
    """PyMongo rediscovers a server that came back on its next monitor check (at most
    every 0.5 s while requests wait): poll until the store answers again."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        status, _, _ = await facade.get(path)
        if status != 503 or asyncio.get_running_loop().time() > deadline:
            return status
        await asyncio.sleep(0.1)


def segment(ack: list[list[str]], name: str) -> list[str]:
    return next(s for s in ack if s[0] == name)


async def test_register_read_update_and_stale_if_match(
    emulator: Emulator, http: aiohttp.ClientSession, mongo_db: MongoTarget
) -> None:
    async with pas_facade(emulator, http, mongo_db.uri, mongo_db.database) as facade:
        status, headers, record = await facade.post("/pas/v1/patients", json=patient("H1", ethnicity="A"))
        assert status == 201 and headers["ETag"] == 'W/"1"'
        status, headers, read = await facade.get("/pas/v1/patients/H1")
        assert status == 200 and headers["ETag"] == 'W/"1"' and read["ethnicity"] == "A"
        status, headers, updated = await facade.request(
            "PUT", "/pas/v1/patients/H1", json=patient("H1", ethnicity="B"), headers={"If-Match": 'W/"1"'}
        )
        assert status == 200 and headers["ETag"] == 'W/"2"' and updated["ethnicity"] == "B"
        status, headers, error = await facade.request(
            "PUT", "/pas/v1/patients/H1", json=patient("H1", ethnicity="C"), headers={"If-Match": 'W/"1"'}
        )
        assert status == 412 and headers["ETag"] == 'W/"2"' and error["requestId"] == headers["X-Request-ID"]
        status, _, fhir = await facade.get("/Patient/pas-H1")
        assert status == 200 and fhir["id"] == "pas-H1"
        validate_r4(fhir)
    async with target_collection(mongo_db, COLLECTION) as coll:
        doc = await coll.find_one({"_id": "H1"})
    assert doc["version"] == 2 and doc["record"]["ethnicity"] == "B"  # the stale PUT wrote nothing


async def test_concurrent_puts_with_the_same_if_match_exactly_one_wins(
    emulator: Emulator, http: aiohttp.ClientSession, mongo_db: MongoTarget
) -> None:
    async with pas_facade(emulator, http, mongo_db.uri, mongo_db.database) as facade:
        await facade.post("/pas/v1/patients", json=patient("H2"))
        ethnicities = "ABCDEF"
        results = await asyncio.gather(
            *(
                facade.request(
                    "PUT", "/pas/v1/patients/H2", json=patient("H2", ethnicity=e), headers={"If-Match": 'W/"1"'}
                )
                for e in ethnicities
            )
        )
        statuses = sorted(status for status, _, _ in results)
        assert statuses == [200] + [412] * (len(ethnicities) - 1)
        winner = next(body for status, _, body in results if status == 200)
        status, headers, read = await facade.get("/pas/v1/patients/H2")
        assert headers["ETag"] == 'W/"2"' and read["ethnicity"] == winner["ethnicity"]


async def test_a40_merge_alias_in_mongodb(
    emulator: Emulator, http: aiohttp.ClientSession, mongo_db: MongoTarget
) -> None:
    async with pas_facade(emulator, http, mongo_db.uri, mongo_db.database) as facade:
        await facade.post(
            "/pas/v1/patients",
            json=patient("H301", allergies=[{"allergyId": "A1", "substanceText": "Peanut", "status": "A"}]),
        )
        await facade.post(
            "/pas/v1/patients",
            json=patient("H302", allergies=[{"allergyId": "A2", "substanceText": "Latex", "status": "A"}]),
        )
        status, ack = await send_hl7(
            facade, adt("A40", "PID|1||H301^^^RX1^MR||SMITH^JANE||20101022|F", "MRG|H302^^^RX1^MR")
        )
        assert status == 200 and segment(ack, "MSA")[1] == "AA"
        status, _, record = await facade.get("/pas/v1/patients/H302")
        assert status == 200 and record["hospitalNumber"] == "H301"
        assert [a["allergyId"] for a in record["allergies"]] == ["A1", "A2"]
        status, _, error = await facade.post("/pas/v1/patients", json=patient("H302"))
        assert status == 409  # a merged-away number stays taken
    async with target_collection(mongo_db, COLLECTION) as coll:
        assert await coll.find_one({"_id": "H302"}, {"_id": 0, "merged": 0}) == {"aliasOf": "H301"}


async def test_records_survive_a_new_facade_on_the_same_database(
    emulator: Emulator, http: aiohttp.ClientSession, mongo_db: MongoTarget
) -> None:
    async with pas_facade(emulator, http, mongo_db.uri, mongo_db.database) as facade:
        await facade.post(
            "/pas/v1/patients",
            json=patient("H4", medications=[{"prescriptionId": "P1", "drugText": "Aspirin 75mg", "status": "A"}]),
        )
        await facade.request(
            "PUT",
            "/pas/v1/patients/H4",
            json=patient(
                "H4", ethnicity="A", medications=[{"prescriptionId": "P1", "drugText": "Aspirin 75mg", "status": "A"}]
            ),
            headers={"If-Match": 'W/"1"'},
        )
    async with pas_facade(emulator, http, mongo_db.uri, mongo_db.database) as facade:
        status, headers, record = await facade.get("/pas/v1/patients/H4")
        assert status == 200 and headers["ETag"] == 'W/"2"' and record["ethnicity"] == "A"
        status, _, bundle = await facade.get("/MedicationRequest?patient=pas-H4", headers=CPT_PRACTITIONER)
        assert status == 200 and "pas-H4-P1" in [e["resource"]["id"] for e in bundle["entry"]]
        validate_r4(bundle)
    async with pas_facade(emulator, http, mongo_db.uri, mongo_db.database, cache_enabled=True) as facade:
        status, _, _ = await facade.get("/pas/v1/patients/H4")  # the cache and the PAS share one client
        assert status == 200
        status, _, health = await facade.get("/_health")
        assert health["cache"]["backend"] == "mongodb" and health["cache"]["status"] == "up"


async def test_mongodb_down_is_503_and_ar_and_nothing_is_stored(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """The façade starts with its MongoDB down, answers 503/AR, recovers when MongoDB
    comes up (no restart), and fails the same way when MongoDB dies under it."""
    port = free_port()
    server = SecantusProcess(port)
    uri = f"mongodb://127.0.0.1:{port}/?directConnection=true"
    try:
        async with pas_facade(emulator, http, uri, "pas_outage", mongodb_timeout_ms=200) as facade:
            status, headers, error = await facade.post("/pas/v1/patients", json=patient("H5"))
            assert status == 503 and headers["Retry-After"] == "5"
            assert headers["Content-Type"] == "application/json; charset=utf-8"
            assert error["requestId"] == headers["X-Request-ID"]
            assert "nothing was stored" in error["errors"][0]["reason"]
            status, headers, _ = await facade.get("/pas/v1/patients/H5")
            assert status == 503 and headers["Retry-After"] == "5"
            status, ack = await send_hl7(
                facade, adt("A04", "PID|1||H6^^^RX1^MR||SMITH^JANE||20101022|F", control="CTRL9")
            )
            assert status == 200 and segment(ack, "MSA")[1:3] == ["AR", "CTRL9"]
            err = segment(ack, "ERR")
            assert err[3].startswith("207^") and err[3].endswith("^HL70357") and err[4] == "E"
            assert "resend the message later" in err[8]
            status, headers, outcome = await facade.get("/Patient/pas-H5")
            assert status == 503 and headers["Retry-After"] == "5" and outcome["issue"][0]["code"] == "transient"
            validate_r4(outcome)
            status, _, outcome = await facade.get("/AllergyIntolerance?patient=pas-H5")
            assert status == 503
            validate_r4(outcome)

            server.start()  # MongoDB comes up: the same façade recovers without a restart
            status = await until_not_503(facade, "/pas/v1/patients/H5")
            assert status == 404  # the failed POST left nothing behind
            status, _, _ = await facade.get("/pas/v1/patients/H6")
            assert status == 404  # nor did the AR'd HL7 message
            status, _, _ = await facade.post("/pas/v1/patients", json=patient("H5"))
            assert status == 201

            server.kill()  # MongoDB crashes under a running façade
            status, headers, error = await facade.request(
                "PUT", "/pas/v1/patients/H5", json=patient("H5"), headers={"If-Match": 'W/"1"'}
            )
            assert status == 503 and headers["Retry-After"] == "5"
            status, ack = await send_hl7(facade, adt("A08", "PID|1||H5^^^RX1^MR||SMITH^JANE||20101022|F"))
            assert segment(ack, "MSA")[1] == "AR" and segment(ack, "ERR")[3].startswith("207^")
    finally:
        server.stop()
