"""Synthetic BaRS referrals held by the emulator's target services (no real patient data).

Keyed by (target system, target value) then NHS number. 9000000009 has two referrals at
the BaRS sandbox test target (`tests|NHS0001`, the NHS sandbox's own test target) and
one at a second target (`tests|NHS0002`) for multi-target tests. The shapes vary on
purpose as real receivers do: one subject is a `urn:uuid:` reference into the booking
message (no NHS number), one carries the NHS number, one cross-references an e-RS UBRN.
"""

from __future__ import annotations

from typing import Any

from server.nhs.identifiers import NHS_NUMBER_SYSTEM
from server.sources.upstream import Scenario

NHS = NHS_NUMBER_SYSTEM
UBRN = "https://fhir.nhs.uk/Id/UBRN"
CATEGORY = "https://fhir.nhs.uk/CodeSystem/message-category-servicerequest"
SNOMED = "http://snomed.info/sct"
PROFILE = "https://fhir.nhs.uk/StructureDefinition/BARSServiceRequest-request-validation"

SANDBOX_TARGET = ("tests", "NHS0001")
SECOND_TARGET = ("tests", "NHS0002")


def _referral(
    rid: str,
    nhs: str | None,
    *,
    status: str,
    authored: str,
    code: tuple[str, str],
    category: str = "referral",
    occurrence: dict[str, str] | None = None,
    ubrn: str | None = None,
    priority: str = "routine",
) -> dict[str, Any]:
    subject: dict[str, Any] = (
        {"identifier": {"system": NHS, "value": nhs}}
        if nhs
        else {"reference": "urn:uuid:1b8f2a4e-6c3d-4e59-9a1f-0c2d3e4f5a6b"}
    )
    resource: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "id": rid,
        "meta": {"versionId": "1", "lastUpdated": authored, "profile": [PROFILE]},
        "status": status,
        "intent": "plan",
        "priority": priority,
        "category": [{"coding": [{"system": CATEGORY, "code": category}]}],
        "code": {"coding": [{"system": SNOMED, "code": code[0], "display": code[1]}]},
        "subject": subject,
        "authoredOn": authored,
        "requester": {"reference": "urn:uuid:7d948662-bade-450e-b6c5-9bb6ee39cb56"},
        "patientInstruction": "Synthetic referral for emulator tests",
    }
    if ubrn:
        resource["identifier"] = [{"system": UBRN, "value": ubrn}]
    if occurrence:
        resource["occurrencePeriod"] = occurrence
    return resource


REFERRALS: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = {
    SANDBOX_TARGET: {
        "9000000009": [
            _referral(
                "0b6f6a70-3c51-4c1e-9d51-7c0e8a8f1001",
                None,
                status="active",
                authored="2024-03-04T09:30:00+00:00",
                code=("306206005", "Referral to service"),
                occurrence={"start": "2024-03-05T10:00:00+00:00", "end": "2024-03-05T10:20:00+00:00"},
            ),
            _referral(
                "0b6f6a70-3c51-4c1e-9d51-7c0e8a8f1002",
                "9000000009",
                status="completed",
                authored="2023-11-20T14:00:00+00:00",
                code=("183524004", "Referral to psychiatry service"),
                ubrn="000000070000",
                priority="urgent",
            ),
        ],
        "9000000017": [
            _referral(
                "0b6f6a70-3c51-4c1e-9d51-7c0e8a8f1003",
                "9000000017",
                status="active",
                authored="2024-01-10T08:00:00+00:00",
                code=("306206005", "Referral to service"),
            ),
        ],
    },
    SECOND_TARGET: {
        "9000000009": [
            _referral(
                "0b6f6a70-3c51-4c1e-9d51-7c0e8a8f2001",
                "9000000009",
                status="revoked",
                authored="2022-06-01T12:00:00+00:00",
                code=("306206005", "Referral to service"),
            ),
        ],
    },
}


def scenarios() -> list[Scenario]:
    """One BaRS search per patient, described from the referrals every target holds."""
    by_patient: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for target, patients in REFERRALS.items():
        for nhs, referrals in patients.items():
            by_patient.setdefault(nhs, []).extend((target[1], r) for r in referrals)
    found = []
    for nhs, held in by_patient.items():
        targets = sorted({target for target, _ in held})
        statuses = sorted({r["status"] for _, r in held})
        unnamed = sum(1 for _, r in held if "identifier" not in r["subject"])
        found.append(
            Scenario(
                f"bars-referrals-{nhs}",
                "Referrals from BaRS" + (f" ({len(targets)} targets)" if len(targets) > 1 else ""),
                f"{len(held)} referral(s) ({', '.join(statuses)}) from {', '.join(targets)}"
                + (f"; {unnamed} name no NHS number (the searched patient travels in the id)" if unnamed else "")
                + ".",
                "ServiceRequest",
                "ServiceRequest",
                query={"patient": nhs},
                scope="user/ServiceRequest.rs user/Patient.rs",
                patient=nhs,
            )
        )
    return found
