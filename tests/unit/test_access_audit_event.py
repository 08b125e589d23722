"""The BALP-shaped AuditEvent (server/access/audit_event.py): validity, codes, agents, entities, interactions."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import pytest

from server.access.audit_event import (
    BREAK_GLASS,
    CLIENT_SYSTEM,
    JOB_ROLE_SYSTEM,
    MAX_RESOURCE_ENTITIES,
    ODS,
    ROLE_SYSTEM,
    AuditNote,
    audit_event,
    interaction_of,
    outcome_code,
)
from server.access.principal import Principal
from server.access.scopes import ScopeSet
from tests.support.fhir_validation import validate_r4

OBSERVER = "https://facade.example.nhs.uk"
WHEN = dt.datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=dt.timezone.utc)


def note(interaction: str = "read", **changes: Any) -> AuditNote:
    values: dict[str, Any] = {
        "request_id": "req-123",
        "method": "GET",
        "target": "/Patient/9000000009",
        "client_address": "10.0.0.7",
        "interaction": interaction,
    }
    values.update(changes)
    return AuditNote(**values)


def who(**changes: Any) -> Principal:
    values: dict[str, Any] = {
        "subject": "user-1",
        "issuer": "https://idp.example",
        "scopes": ScopeSet.parse("user/*.rs"),
        "roles": frozenset({"clinician", "clerk"}),
        "purpose": "TREAT",
    }
    values.update(changes)
    return Principal(**values)


def event(n: AuditNote | None = None, p: Principal | None = None, status: int = 200, **kw: Any) -> dict[str, Any]:
    body = audit_event(n or note(), p, status, observer=OBSERVER, now=WHEN, **kw)
    validate_r4(body)
    return body


def codes(entity: dict[str, Any]) -> tuple[str, str]:
    return entity.get("type", {}).get("code"), entity.get("role", {}).get("code")


def test_a_full_event_validates_as_r4_audit_event() -> None:
    n = note("search-type", method="GET", target="/MedicationRequest?patient=9000000009")
    n.saw(["Patient/9000000009"], ["MedicationRequest/m1", "MedicationRequest/m2"])
    p = who(
        client_id="ward-app",
        organisation_ods="RX1",
        sds_user_id="555021935106",
        role_codes=("S0030:G0100:R8000",),
        purpose="ETREAT",
    )
    body = event(n, p, 200, break_glass=True)
    parsed = validate_r4(body)
    assert parsed.recorded.isoformat().startswith("2024-05-01T12:30:15.123")
    assert body["type"] == {
        "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
        "code": "rest",
        "display": "Restful Operation",
    }
    assert body["subtype"] == [{"system": "http://hl7.org/fhir/restful-interaction", "code": "search-type"}]
    assert body["source"]["site"] == OBSERVER
    assert body["purposeOfEvent"][0]["coding"][0]["code"] == "ETREAT"


def test_each_event_has_its_own_id() -> None:
    assert event()["id"] != event()["id"]


@pytest.mark.parametrize(
    "status, code",
    [
        (200, "0"),
        (201, "0"),
        (304, "0"),
        (399, "0"),
        (400, "4"),
        (401, "4"),
        (403, "4"),
        (404, "4"),
        (499, "4"),
        (500, "8"),
        (502, "8"),
        (503, "8"),
    ],
)
def test_outcome_code_by_status(status: int, code: str) -> None:
    assert outcome_code(status) == code
    body = event(status=status)
    assert body["outcome"] == code
    assert body["outcomeDesc"].startswith(f"HTTP {status}")


def test_outcome_description_carries_the_reason_bounded_and_the_withheld_count() -> None:
    n = note(reason="x" * 1000, withheld=3)
    desc = event(n, who(), 403)["outcomeDesc"]
    assert desc.startswith("HTTP 403: " + "x" * 300)
    assert "x" * 301 not in desc
    assert desc.endswith("; 3 resource(s) withheld by access checks")
    assert event(note(), who(), 200)["outcomeDesc"] == "HTTP 200"


@pytest.mark.parametrize(
    "interaction, action",
    [
        ("read", "R"),
        ("vread", "R"),
        ("search-type", "E"),
        ("search-system", "E"),
        ("create", "C"),
        ("update", "U"),
        ("patch", "U"),
        ("delete", "D"),
        ("operation", "E"),
        ("something-else", "E"),
    ],
)
def test_action_by_interaction(interaction: str, action: str) -> None:
    assert event(note(interaction))["action"] == action


def test_break_glass_extension_only_when_flagged() -> None:
    flagged = event(note(), who(purpose="ETREAT"), break_glass=True)
    assert flagged["extension"] == [{"url": BREAK_GLASS, "valueBoolean": True}]
    assert "extension" not in event(note(), who(purpose="ETREAT"), break_glass=False)
    assert "extension" not in event(note(), who(purpose="TREAT"))


def test_unauthenticated_agent() -> None:
    body = event(note(reason="no bearer token"), None, 401)
    (user, server) = body["agent"]
    assert user["who"] == {"display": "unauthenticated caller"}
    assert user["requestor"] is True
    assert user["network"] == {"address": "10.0.0.7", "type": "2"}
    assert "role" not in user and "purposeOfUse" not in user
    assert "purposeOfEvent" not in body
    assert server["who"] == {"display": "nhs-fhir-facade"} and server["requestor"] is False
    assert body["outcome"] == "4"


def test_user_agent_names_the_user_roles_job_roles_and_purpose() -> None:
    p = who(sds_user_id="555021935106", role_codes=("S0030:G0100:R8000", "R0001", "X123", "S0030:G0100"))
    user = event(note(), p)["agent"][0]
    assert user["who"] == {"identifier": {"system": "https://idp.example", "value": "user-1"}}
    assert user["altId"] == "555021935106"
    assert user["role"] == [
        {"coding": [{"system": ROLE_SYSTEM, "code": "clerk"}]},
        {"coding": [{"system": ROLE_SYSTEM, "code": "clinician"}]},
        {"coding": [{"system": JOB_ROLE_SYSTEM, "code": "R8000"}], "text": "S0030:G0100:R8000"},
        {"coding": [{"system": JOB_ROLE_SYSTEM, "code": "R0001"}], "text": "R0001"},
    ]
    assert user["purposeOfUse"][0]["coding"][0] == {
        "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
        "code": "TREAT",
    }


def test_no_network_element_without_a_client_address() -> None:
    assert "network" not in event(note(client_address=None), who())["agent"][0]


def test_client_and_ods_agents() -> None:
    agents = event(note(), who(client_id="ward-app", organisation_ods="RX1"))["agent"]
    assert len(agents) == 4
    client = agents[1]
    assert client["who"] == {"identifier": {"system": CLIENT_SYSTEM, "value": "ward-app"}}
    assert client["type"]["coding"][0]["code"] == "110153" and client["requestor"] is False
    org = agents[2]
    assert org["who"] == {"identifier": {"system": ODS, "value": "RX1"}} and org["requestor"] is False
    assert agents[3]["type"]["coding"][0]["code"] == "110152"


def test_no_client_or_ods_agent_when_unknown() -> None:
    agents = event(note(), who())["agent"]
    assert [a["requestor"] for a in agents] == [True, False]


def test_query_entity_is_base64_of_the_request_for_searches() -> None:
    n = note("search-type", method="GET", target="/Patient?family=Smith&birthdate=1980")
    (query,) = [e for e in event(n, who())["entity"] if codes(e)[1] == "24"]
    assert base64.b64decode(query["query"]) == b"GET /Patient?family=Smith&birthdate=1980"
    assert codes(query) == ("2", "24")


def test_query_entity_uses_the_noted_query_when_given() -> None:
    n = note("search-type", method="POST", target="/Patient/_search", query=b"family=Smith&given=Jo")
    (query,) = [e for e in event(n, who())["entity"] if codes(e)[1] == "24"]
    assert base64.b64decode(query["query"]) == b"family=Smith&given=Jo"


def test_query_entity_is_bounded() -> None:
    n = note("search-type", query=b"q" * 20_000)
    (query,) = [e for e in event(n, who())["entity"] if codes(e)[1] == "24"]
    assert base64.b64decode(query["query"]) == b"q" * 8192


def test_reads_have_no_query_entity() -> None:
    assert not [e for e in event(note("read"), who())["entity"] if "query" in e]


def test_request_id_entity_is_always_last() -> None:
    for n in (note("read"), note("search-type")):
        last = event(n, who())["entity"][-1]
        assert last["what"] == {"identifier": {"value": "req-123"}}
        assert last["type"]["code"] == "XrequestId"


def test_patients_are_listed_once_each_as_person_patient() -> None:
    n = note("search-type")
    n.saw(["Patient/1", "Patient/2"], ["MedicationRequest/a"])
    n.saw(["Patient/2", "Patient/1", "Patient/3"], ["MedicationRequest/a", "MedicationRequest/b"])
    entities = event(n, who())["entity"]
    patients = [e["what"]["reference"] for e in entities if codes(e) == ("1", "1")]
    assert patients == ["Patient/1", "Patient/2", "Patient/3"]
    resources = [e["what"]["reference"] for e in entities if codes(e) == ("2", "4")]
    assert resources == ["MedicationRequest/a", "MedicationRequest/b"]


def test_a_patient_returned_as_a_resource_is_listed_once_as_the_patient() -> None:
    n = note("read")
    n.saw(["Patient/9000000009"], ["Patient/9000000009"])
    entities = event(n, who())["entity"]
    assert [e["what"].get("reference") for e in entities if "what" in e and "reference" in e["what"]] == [
        "Patient/9000000009"
    ]


def test_resource_entities_are_capped() -> None:
    n = note("search-type")
    n.saw([], [f"MedicationRequest/m{i}" for i in range(MAX_RESOURCE_ENTITIES + 50)])
    resources = [e for e in event(n, who())["entity"] if codes(e) == ("2", "4")]
    assert len(resources) == MAX_RESOURCE_ENTITIES
    assert resources[-1]["what"]["reference"] == f"MedicationRequest/m{MAX_RESOURCE_ENTITIES - 1}"


def test_recorded_defaults_to_now_in_utc() -> None:
    before = dt.datetime.now(dt.timezone.utc)
    recorded = dt.datetime.fromisoformat(audit_event(note(), None, 401, observer=OBSERVER)["recorded"])
    after = dt.datetime.now(dt.timezone.utc)
    assert recorded.utcoffset() == dt.timedelta(0)
    assert before - dt.timedelta(milliseconds=1) <= recorded <= after


@pytest.mark.parametrize(
    "method, path, interaction",
    [
        ("GET", "/Patient/9000000009", "read"),
        ("GET", "/Patient/9000000009/_history/2", "vread"),
        ("GET", "/Patient", "search-type"),
        ("GET", "/Patient/", "search-type"),
        ("POST", "/Patient/_search", "search-type"),
        ("GET", "/Patient/_search", "search-type"),
        ("POST", "/Patient", "create"),
        ("PUT", "/Patient/9000000009", "update"),
        ("PATCH", "/Patient/9000000009", "patch"),
        ("DELETE", "/Patient/9000000009", "delete"),
        ("POST", "/pas/v1/patients", "create"),
        ("POST", "/pas/v1/hl7", "update"),
        ("PUT", "/pas/v1/patients/H123", "update"),
        ("GET", "/pas/v1/patients/H123", "read"),
        ("GET", "/pas/v1/patients/H123/allergies", "read"),
        ("GET", "/Patient/9000000009/$everything", "operation"),
        ("POST", "/", "batch"),
    ],
)
def test_interaction_of_route_shapes(method: str, path: str, interaction: str) -> None:
    assert interaction_of(method, path) == interaction


def test_saw_keeps_first_seen_order_without_duplicates() -> None:
    n = note()
    n.saw(["Patient/b", "Patient/a"], ["X/1"])
    n.saw(["Patient/a", "Patient/c"], ["X/1", "X/2"])
    assert n.patients == ["Patient/b", "Patient/a", "Patient/c"]
    assert n.resources == ["X/1", "X/2"]
