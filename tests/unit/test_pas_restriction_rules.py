"""What a PAS patient shows without a fresh PDS answer (server.pas.restriction), and the
MongoDB store's write concern."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from server.pas.mongo_store import MongoPASStore, pas_collection
from server.pas.restriction import confirmed_code, pds_said, restriction, restriction_of, shown, stricter
from server.pas.store import PDSSecurity, StoredPatient
from server.pas.wiring import open_pas_store
from server.settings import Settings
from tests.support.servers import free_port

CONF = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "id": "pas-H1",
    "name": [{"family": "Smith"}],
    "birthDate": "2010-10-22",
    "address": [{"postalCode": "LS2 7AB"}],
    "telecom": [{"system": "phone", "value": "0111"}],
    "generalPractitioner": [{"identifier": {"value": "Y12345"}}],
    "extension": [{"url": "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NominatedPharmacy"}],
    "meta": {"source": "urn:nhs-fhir-facade:pas:reference-pas"},
}
LOCATION = ("address", "telecom", "generalPractitioner", "extension")


def stored(
    nhs: str | None = "9000000025", pas_code: str | None = None, pds: PDSSecurity | None = None
) -> StoredPatient:
    record: dict[str, Any] = {"hospitalNumber": "H1", "surname": "Smith"}
    if nhs:
        record["nhsNumber"] = nhs
    if pas_code:
        record["confidentiality"] = pas_code
    return StoredPatient("H1", record, 1, "2026-01-01T00:00:00+00:00", pds_security=pds)


def said(code: str, nhs: str = "9000000025") -> PDSSecurity:
    return PDSSecurity(code, nhs, "2026-01-01T00:00:00+00:00")


def test_stricter() -> None:
    assert stricter("U", "R") == "R" and stricter("V", "R") == "V" and stricter(None, "U") == "U"
    assert stricter(None, None) is None and stricter("REDACTED", "x") is None


@pytest.mark.parametrize(
    ("pds", "pas", "label", "withheld_as"),
    [
        (None, None, None, "R"),  # never confirmed: fail closed, no claim on PDS's behalf
        (None, "U", "U", "R"),  # the PAS saying U is not PDS confirming it
        (None, "V", "V", "V"),  # a PAS V still withholds name and birth date
        ("U", None, "U", "U"),  # confirmed unrestricted: shown
        ("R", None, "R", "R"),
        ("V", "U", "V", "V"),  # a PAS cannot lift PDS's restriction
        ("U", "R", "R", "R"),  # but may restrict locally
    ],
)
def test_restriction_rule(pds: str | None, pas: str | None, label: str | None, withheld_as: str) -> None:
    rule = restriction(pds, pas)
    assert (rule.label, rule.withheld_as, rule.pds) == (label, withheld_as, pds)


def test_a_confirmation_holds_only_for_the_nhs_number_pds_was_asked_about() -> None:
    assert confirmed_code(stored(pds=said("U"))) == "U"
    assert confirmed_code(stored(nhs="9000000009", pds=said("U"))) is None  # renumbered since
    assert confirmed_code(stored(nhs=None, pds=said("U"))) is None
    assert restriction_of(stored(nhs="9000000009", pds=said("U"))).withheld_as == "R"
    assert pds_said("R", "9000000025").code == "R"  # type: ignore[union-attr]
    assert pds_said(None, "9000000025") is None and pds_said("REDACTED", "9000000025") is None
    assert pds_said("U", None) is None


def test_shown_withholds_location_and_labels_as_the_rule_says() -> None:
    before = copy.deepcopy(PATIENT)
    unconfirmed = shown(PATIENT, restriction(None, None))
    assert PATIENT == before  # pure
    assert not any(k in unconfirmed for k in LOCATION) and unconfirmed["name"] and unconfirmed["birthDate"]
    assert "security" not in unconfirmed["meta"] and unconfirmed["meta"]["source"] == PATIENT["meta"]["source"]
    confirmed_r = shown(PATIENT, restriction("R", None))
    assert not any(k in confirmed_r for k in LOCATION)
    assert confirmed_r["meta"]["security"] == [{"system": CONF, "code": "R", "display": "restricted"}]
    very = shown(PATIENT, restriction("V", None))
    assert "name" not in very and "birthDate" not in very
    unrestricted = shown(PATIENT, restriction("U", None))
    assert all(k in unrestricted for k in LOCATION) and unrestricted["meta"]["security"][0]["code"] == "U"
    # A PDS label already right is kept exactly as PDS sent it.
    pds_labelled = {**PATIENT, "meta": {"security": [{"system": CONF, "code": "U", "display": "PDS's own"}]}}
    assert shown(pds_labelled, restriction("U", None))["meta"] == pds_labelled["meta"]


def test_pas_collection_writes_majority_journaled() -> None:
    client: AsyncMongoClient = AsyncMongoClient(f"mongodb://127.0.0.1:{free_port()}", connect=False)
    collection = pas_collection(client["db"])
    assert collection.name == "pas_patients"
    assert collection.write_concern.document == {"w": "majority", "j": True, "wtimeout": 5000}
    assert collection.write_concern.acknowledged


async def test_the_store_the_app_opens_uses_that_collection() -> None:
    uri = f"mongodb://127.0.0.1:{free_port()}/?directConnection=true"
    client: AsyncMongoClient = AsyncMongoClient(uri, serverSelectionTimeoutMS=100)
    try:
        async with open_pas_store(Settings(mongodb_uri=uri), client) as store:  # MongoDB down: still opens
            assert isinstance(store, MongoPASStore)
            assert store.collection.write_concern.document == {"w": "majority", "j": True, "wtimeout": 5000}
    finally:
        await client.close()
