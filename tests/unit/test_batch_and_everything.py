"""The pure parts of batch and $everything: parsing a batch Bundle, the batch-response
entry of an answer, and which types $everything gathers (issue 10)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from capability.operations import resource_operations, system_interactions
from server.fhir.batch import EntryAnswer, TransactionNotSupported, parse_batch, response_entry
from server.fhir.errors import BadRequest
from server.fhir.operations import everything_types
from server.fhir.search_params import SearchParamSpec
from server.providers.base import ResourceProvider
from server.providers.registry import ProviderRegistry

BASE = "https://facade.example/fhir"


def batch(*urls: str, method: str = "GET", kind: str = "batch") -> bytes:
    return orjson.dumps(
        {"resourceType": "Bundle", "type": kind, "entry": [{"request": {"method": method, "url": u}} for u in urls]}
    )


def test_entries_keep_their_order_path_and_query() -> None:
    entries = parse_batch(batch("Patient/9000000009", f"{BASE}/MedicationRequest?patient=1&_format=xml"), BASE, 20)
    assert [(e.path, e.query) for e in entries] == [
        ("/Patient/9000000009", ""),
        ("/MedicationRequest", "patient=1"),  # an entry is always answered as JSON, inside the Bundle
    ]


def test_a_non_get_entry_is_kept_to_be_answered_405() -> None:
    (entry,) = parse_batch(batch("Patient", method="POST"), BASE, 20)
    assert entry.method == "POST"


@pytest.mark.parametrize(
    "body",
    [
        batch("http://other.example/Patient/1"),
        batch("Patient/../pas/v1/patients"),
        batch("_health"),
        batch("Patient/1", "Patient/2", "Patient/3"),  # over the limit of 2 below
    ],
)
def test_malformed_or_oversized_batches_are_400(body: bytes) -> None:
    with pytest.raises(BadRequest):
        parse_batch(body, BASE, 2)


def test_a_transaction_is_422() -> None:
    with pytest.raises(TransactionNotSupported) as refused:
        parse_batch(batch("Patient/1", kind="transaction"), BASE, 20)
    assert refused.value.status == 422 and refused.value.issue_code == "not-supported"


def test_response_entry_of_a_read_and_of_a_failure() -> None:
    patient: dict[str, Any] = {"resourceType": "Patient", "id": "9000000009"}
    ok = response_entry(
        EntryAnswer(200, {"etag": 'W/"2"', "last-modified": "Tue, 01 Jul 2025 10:00:00 GMT"}, patient), BASE
    )
    assert ok == {
        "fullUrl": f"{BASE}/Patient/9000000009",
        "resource": patient,
        "response": {"status": "200 OK", "etag": 'W/"2"', "lastModified": "2025-07-01T10:00:00Z"},
    }
    failed = response_entry(EntryAnswer(502, {}, None), BASE)
    assert failed["response"]["status"] == "502 Bad Gateway" and "resource" not in failed
    assert failed["response"]["outcome"]["resourceType"] == "OperationOutcome"


def _provider(resource_type: str, *params: SearchParamSpec) -> ResourceProvider:
    async def read(self: ResourceProvider, resource_id: str, ctx: Any) -> Any:
        raise AssertionError("not called")

    cls = type(
        f"{resource_type}Provider",
        (ResourceProvider,),
        {
            "resource_type": resource_type,
            "interactions": ("read", "search-type"),
            "search_params": params,
            "read": read,
        },
    )
    provider: ResourceProvider = cls()
    return provider


PATIENT_REF = SearchParamSpec("patient", "reference", "The patient", target_types=("Patient",))


def test_everything_types_come_from_the_registry_without_the_audit_trail() -> None:
    registry = ProviderRegistry()
    for provider in (
        _provider("Observation", PATIENT_REF),
        _provider("AuditEvent", PATIENT_REF),
        _provider("Device"),
    ):
        registry.register(provider)
    assert everything_types(registry) == ()  # no Patient served: no $everything
    registry.register(_provider("Patient"))
    assert everything_types(registry) == ("Observation",)


def test_everything_is_declared_only_where_patient_is_served() -> None:
    registry = ProviderRegistry()
    registry.register(_provider("Observation", PATIENT_REF))
    assert resource_operations("Patient", registry, terse=True) == []
    registry.register(_provider("Patient"))
    assert resource_operations("Patient", registry, terse=True) == [
        {"name": "everything", "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything"}
    ]
    assert resource_operations("Observation", registry, terse=True) == []
    assert system_interactions(terse=True) == [{"code": "batch"}]
