"""What the access-control tests share: test patients, tokens for each role, and readers
of searchsets and of the audit trail (tests/integration/test_access_*.py)."""

from __future__ import annotations

from typing import Any

from tests.support.checked_client import CheckedClient
from tests.support.tokens import token

JANE = "9000000009"  # PDS, CPT and GP Connect all know her
JAYNE = "9000000017"  # another patient with prescriptions in CPT
CPT = {
    "nhsd-session-urid": "555254240100",
    "nhsd-organization-uuid": "A83008",
    "nhsd-session-jobrole": "S0030:G0100:R0570",
}
# Another CIS2 session CPT accepts: user 555254242106, a clinical practitioner (R8000) at A83008.
CPT_PRACTITIONER = {
    "nhsd-session-urid": "555254242106",
    "nhsd-organization-uuid": "A83008",
    "nhsd-session-jobrole": "R8000",
}

CLINICIAN = token("user/*.rs", roles=["clinician"])
AUDITOR = token("user/AuditEvent.rs", roles=["auditor"], purpose=None)
PAS_SYSTEM = token(
    "system/Patient.cru system/AllergyIntolerance.rs system/MedicationRequest.rs",
    roles=["pas-system"],
    purpose=None,
    subject="pas-interface",
)
JANE_APP = token("patient/*.rs", roles=["clinician"], patient=JANE, subject="jane-app")


def auth(value: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}", **extra}


def entries(bundle: dict[str, Any], mode: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle.get("entry", []) if e["search"]["mode"] == mode]


def matches(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return entries(bundle, "match")


def included(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return entries(bundle, "include")


def warnings(bundle: dict[str, Any]) -> list[str]:
    return [i.get("diagnostics", "") for outcome in entries(bundle, "outcome") for i in outcome["issue"]]


async def audit_events(fhir: CheckedClient, **query: str) -> list[dict[str, Any]]:
    """The newest hundred AuditEvents matching `query`, read as the auditor."""
    params = "&".join(f"{k}={v}" for k, v in query.items())
    answer = await fhir.get(f"/AuditEvent?_count=100&{params}", headers=auth(AUDITOR))
    assert answer.status == 200, answer.body
    return matches(answer.body)


def by_request_id(events: list[dict[str, Any]], request_id: str) -> list[dict[str, Any]]:
    return [
        e for e in events for ent in e["entity"] if ent.get("what", {}).get("identifier", {}).get("value") == request_id
    ]
