"""The PAS store contract, run against both implementations over their real I/O: the
in-memory store, and the MongoDB store through AsyncMongoClient over a socket
(SecantusDB, or FACADE_TEST_MONGODB_URI). Then what only the MongoDB store has:
indexes, no TTL, atomic version checks under concurrency, outages, interrupted merges."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.errors import AutoReconnect

from server.mongodb import create_client
from server.pas.mongo_store import COLLECTION, MongoPASStore
from server.pas.store import (
    AlreadyExists,
    InMemoryPASStore,
    PASStore,
    PatientData,
    StoreUnavailable,
    UnknownPatient,
    VersionConflict,
)
from tests.support.mongo import MongoTarget
from tests.support.servers import free_port

pytestmark = pytest.mark.mongo


def data(hn: str, nhs: str | None = None, allergies: tuple = (), surname: str = "Smith") -> PatientData:
    record: dict[str, Any] = {"hospitalNumber": hn, "surname": surname}
    if nhs:
        record["nhsNumber"] = nhs
    return PatientData(record, allergies)


@pytest.fixture(params=["memory", "mongodb"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[PASStore]:
    if request.param == "memory":
        yield InMemoryPASStore()
        return
    target: MongoTarget = request.getfixturevalue("mongo_db")
    client = create_client(target.uri, 2000)
    try:
        mongo = MongoPASStore(client[target.database][COLLECTION])
        await mongo.start()
        yield mongo
    finally:
        await client.close()


@pytest.fixture
async def mongo_collection(mongo_db: MongoTarget) -> AsyncIterator[Any]:
    client: AsyncMongoClient = create_client(mongo_db.uri, 2000)
    try:
        yield client[mongo_db.database][COLLECTION]
    finally:
        await client.close()


# --- the contract, both stores -----------------------------------------------------------


async def test_versions_and_conflicts(store: PASStore) -> None:
    first = await store.create(data("H1"))
    assert (first.version, first.etag) == (1, 'W/"1"')
    with pytest.raises(AlreadyExists):
        await store.create(data("H1"))
    second = await store.replace("H1", data("H1", "9000000009"), expected_version=1)
    assert second.version == 2 and second.nhs_number == "9000000009"
    with pytest.raises(VersionConflict) as conflict:
        await store.replace("H1", data("H1"), expected_version=1)
    assert conflict.value.current == 2
    assert (await store.replace("H1", data("H1"), expected_version=None)).version == 3
    with pytest.raises(UnknownPatient):
        await store.replace("H9", data("H9"), expected_version=None)
    got = await store.get("H1")
    assert got is not None and got.version == 3 and got.record == {"hospitalNumber": "H1", "surname": "Smith"}


async def test_lists_round_trip(store: PASStore) -> None:
    allergies = ({"allergyId": "A1", "substanceText": "Peanut", "status": "A"},)
    medications = ({"prescriptionId": "P1", "drugText": "Aspirin", "status": "A"},)
    await store.create(PatientData({"hospitalNumber": "H1", "surname": "Smith"}, allergies, medications))
    got = await store.get("H1")
    assert got is not None and got.allergies == allergies and got.medications == medications
    assert got.updated  # an ISO timestamp of the last write


async def test_records_are_copied_in_and_out(store: PASStore) -> None:
    record = data("H1")
    await store.create(record)
    record.record["surname"] = "Changed"
    assert (await store.get("H1")).record["surname"] == "Smith"


async def test_unknown_number_is_none(store: PASStore) -> None:
    assert await store.get("H404") is None


async def test_find_by_nhs_number(store: PASStore) -> None:
    await store.create(data("H1", "9000000009"))
    await store.create(data("H2", "9000000017"))
    await store.create(data("H3", "9000000009"))
    assert sorted(p.hospital_number for p in await store.find_by_nhs_number("9000000009")) == ["H1", "H3"]
    assert await store.find_by_nhs_number("9000000025") == []


async def test_merge_keeps_survivor_joins_lists_and_aliases_the_old_number(store: PASStore) -> None:
    await store.create(data("H1", allergies=({"allergyId": "A1"},)))
    await store.create(data("H2", "9000000009", allergies=({"allergyId": "A1"}, {"allergyId": "A2"})))
    merged = await store.merge("H2", "H1")
    assert merged.hospital_number == "H1" and merged.version == 2
    assert [a["allergyId"] for a in merged.allergies] == ["A1", "A2"]
    assert (await store.get("H2")).hospital_number == "H1"
    assert await store.find_by_nhs_number("9000000009") == []  # the merged-away record is gone
    with pytest.raises(AlreadyExists):
        await store.create(data("H2"))  # a merged-away number stays taken
    with pytest.raises(ValueError):
        await store.merge("H2", "H1")
    with pytest.raises(UnknownPatient):
        await store.merge("H9", "H1")
    with pytest.raises(UnknownPatient):
        await store.merge("H1", "H9")


async def test_updates_through_an_alias_reach_the_survivor(store: PASStore) -> None:
    await store.create(data("H1"))
    await store.create(data("H2"))
    await store.merge("H2", "H1")
    updated = await store.replace("H2", data("H2", surname="Jones"), expected_version=2)
    assert updated.hospital_number == "H1" and updated.record["hospitalNumber"] == "H1"
    assert (await store.get("H1")).record["surname"] == "Jones"


async def test_merge_chains_are_followed(store: PASStore) -> None:
    for hn in ("H1", "H2", "H3"):
        await store.create(data(hn, allergies=({"allergyId": f"A{hn}"},)))
    await store.merge("H1", "H2")
    await store.merge("H2", "H3")
    survivor = await store.get("H1")
    assert survivor is not None and survivor.hospital_number == "H3"
    assert sorted(a["allergyId"] for a in survivor.allergies) == ["AH1", "AH2", "AH3"]


async def test_concurrent_writes_with_the_same_version_exactly_one_wins(store: PASStore) -> None:
    await store.create(data("H1"))
    results = await asyncio.gather(
        *(store.replace("H1", data("H1", surname=f"Name{'x' * i}"), expected_version=1) for i in range(6)),
        return_exceptions=True,
    )
    winners = [r for r in results if not isinstance(r, BaseException)]
    assert len(winners) == 1 and winners[0].version == 2
    assert all(isinstance(r, VersionConflict) and r.current == 2 for r in results if r not in winners)
    assert (await store.get("H1")).record["surname"] == winners[0].record["surname"]


async def test_concurrent_unconditional_writes_all_count(store: PASStore) -> None:
    await store.create(data("H1"))
    await asyncio.gather(*(store.replace("H1", data("H1"), expected_version=None) for _ in range(5)))
    assert (await store.get("H1")).version == 6


# --- MongoDB only ------------------------------------------------------------------------


async def test_mongo_indexes_and_no_ttl(mongo_collection: Any) -> None:
    store = MongoPASStore(mongo_collection)
    await store.start()
    await store.create(data("H1", "9000000009"))
    info = await mongo_collection.index_information()
    assert [f for f, _ in info["nhs_number"]["key"]] == ["record.nhsNumber"]
    assert [f for f, _ in info["alias_of"]["key"]] == ["aliasOf"]
    assert not any("expireAfterSeconds" in index for index in info.values()), "a store of record never expires"
    doc = await mongo_collection.find_one({"_id": "H1"})
    assert doc["version"] == 1 and doc["record"]["nhsNumber"] == "9000000009" and "expiresAt" not in doc


async def test_mongo_store_with_no_server_raises_and_never_pretends() -> None:
    client: AsyncMongoClient = create_client(f"mongodb://127.0.0.1:{free_port()}/?directConnection=true", 100)
    try:
        store = MongoPASStore(client["x"][COLLECTION])
        await store.start()  # a dead MongoDB at start-up does not stop the app
        for call in (
            lambda: store.create(data("H1")),
            lambda: store.get("H1"),
            lambda: store.replace("H1", data("H1"), expected_version=1),
            lambda: store.find_by_nhs_number("9000000009"),
            lambda: store.merge("H1", "H2"),
        ):
            with pytest.raises(StoreUnavailable) as raised:
                await call()
            assert raised.value.confirmed_not_written is True
            assert raised.value.cause == "ServerSelectionTimeoutError"
    finally:
        await client.close()


class FailingSecondStep:
    """The real collection, except that the next `replace_one` fails as a dropped
    connection would (a fault-injecting wrapper: this tests the store's ordering)."""

    def __init__(self, collection: Any) -> None:
        self.collection = collection
        self.fail_next_replace = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self.collection, name)

    async def replace_one(self, *args: Any, **kwargs: Any) -> Any:
        if self.fail_next_replace:
            self.fail_next_replace = False
            raise AutoReconnect("connection closed")
        return await self.collection.replace_one(*args, **kwargs)


async def test_interrupted_merge_loses_nothing_and_a_resend_completes_it(mongo_collection: Any) -> None:
    store = MongoPASStore(FailingSecondStep(mongo_collection))  # type: ignore[arg-type]
    await store.create(data("H1", allergies=({"allergyId": "A1"},)))
    await store.create(data("H2", allergies=({"allergyId": "A2"},)))
    with pytest.raises(StoreUnavailable) as raised:
        await store.merge("H2", "H1")
    assert raised.value.confirmed_not_written is False
    # Half-way: the survivor already holds both lists, the old record is still there.
    assert [a["allergyId"] for a in (await store.get("H1")).allergies] == ["A1", "A2"]
    assert (await store.get("H2")).hospital_number == "H2"
    merged = await store.merge("H2", "H1")  # the A40 resent
    assert [a["allergyId"] for a in merged.allergies] == ["A1", "A2"]  # joined once, not twice
    assert (await store.get("H2")).hospital_number == "H1"


async def test_merge_racing_an_update_of_the_old_record_keeps_the_update(mongo_collection: Any) -> None:
    """A PUT on the old record lands between the merge's read and its second step: the
    merge re-reads and carries the new list item over instead of dropping it."""
    store = MongoPASStore(mongo_collection)
    await store.create(data("H1"))
    await store.create(data("H2", allergies=({"allergyId": "A2"},)))
    real_replace = mongo_collection.replace_one
    raced = False

    class Racing(FailingSecondStep):
        async def replace_one(self, *args: Any, **kwargs: Any) -> Any:
            nonlocal raced
            if not raced:
                raced = True
                await store.replace(
                    "H2", data("H2", allergies=({"allergyId": "A2"}, {"allergyId": "A3"})), expected_version=None
                )
            return await real_replace(*args, **kwargs)

    racing = MongoPASStore(Racing(mongo_collection))  # type: ignore[arg-type]
    merged = await racing.merge("H2", "H1")
    assert sorted(a["allergyId"] for a in merged.allergies) == ["A2", "A3"]
    assert (await store.get("H2")).hospital_number == "H1"
