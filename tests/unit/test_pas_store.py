"""The in-memory PAS store: versions, conflicts, NHS-number lookup, merges and aliases."""
from __future__ import annotations

import pytest

from server.pas.store import AlreadyExists, InMemoryPASStore, PatientData, UnknownPatient, VersionConflict


def data(hn: str, nhs: str | None = None, allergies: tuple = ()) -> PatientData:
    record = {"hospitalNumber": hn, "surname": "Smith"}
    if nhs:
        record["nhsNumber"] = nhs
    return PatientData(record, allergies)


async def test_versions_and_conflicts() -> None:
    store = InMemoryPASStore()
    first = await store.create(data("H1"))
    assert (first.version, first.etag) == (1, 'W/"1"')
    with pytest.raises(AlreadyExists):
        await store.create(data("H1"))
    second = await store.replace("H1", data("H1", "9000000009"), expected_version=1)
    assert second.version == 2
    with pytest.raises(VersionConflict) as conflict:
        await store.replace("H1", data("H1"), expected_version=1)
    assert conflict.value.current == 2
    assert (await store.replace("H1", data("H1"), expected_version=None)).version == 3
    with pytest.raises(UnknownPatient):
        await store.replace("H9", data("H9"), expected_version=None)


async def test_records_are_copied_in_and_out() -> None:
    store = InMemoryPASStore()
    record = data("H1")
    await store.create(record)
    record.record["surname"] = "Changed"
    assert (await store.get("H1")).record["surname"] == "Smith"


async def test_find_by_nhs_number() -> None:
    store = InMemoryPASStore()
    await store.create(data("H1", "9000000009"))
    await store.create(data("H2", "9000000017"))
    assert [p.hospital_number for p in await store.find_by_nhs_number("9000000009")] == ["H1"]


async def test_merge_keeps_survivor_joins_lists_and_aliases_the_old_number() -> None:
    store = InMemoryPASStore()
    await store.create(data("H1", allergies=({"allergyId": "A1"},)))
    await store.create(data("H2", allergies=({"allergyId": "A1"}, {"allergyId": "A2"})))
    merged = await store.merge("H2", "H1")
    assert merged.hospital_number == "H1" and merged.version == 2
    assert [a["allergyId"] for a in merged.allergies] == ["A1", "A2"]
    assert (await store.get("H2")).hospital_number == "H1"
    with pytest.raises(AlreadyExists):
        await store.create(data("H2"))
    with pytest.raises(ValueError):
        await store.merge("H2", "H1")
    with pytest.raises(UnknownPatient):
        await store.merge("H9", "H1")
