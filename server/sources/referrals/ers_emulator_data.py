"""Synthetic e-RS referrals by UBRN, in both shapes e-RS serves (no real patient data).

The UBRNs follow the e-RS sandbox's scenario table (nhs-apis.md s.2.4): 000000070000 a
referral, 000000070001 advice & guidance, 000000070002 both, 000000070003 none. Unlike
the NHS sandbox (9912003888) the patient is 9000000009, the emulator's PDS test patient,
so `_include=ServiceRequest:patient` resolves. R4 ids are `r.<uuid>` (referral) or
`a.<uuid>` (advice & guidance) as e-RS issues them; the STU3 ReferralRequest of a
referral carries the R4 id as its ers-request-id identifier, as e-RS's own examples do.
"""

from __future__ import annotations

from typing import Any

from server.nhs.identifiers import NHS_NUMBER_SYSTEM
from server.sources.upstream import Scenario

UBRN = "https://fhir.nhs.uk/Id/UBRN"
NHS = NHS_NUMBER_SYSTEM
LEGACY_NHS = "http://fhir.nhs.net/Id/nhs-number"
CATEGORY = "https://fhir.nhs.uk/CodeSystem/message-category-servicerequest"
STU3 = "https://fhir.nhs.uk/STU3"
PATIENT = "9000000009"

R4_PROFILE = "https://fhir.nhs.uk/StructureDefinition/NHSDigital-ServiceRequest"


def _r4(rid: str, ubrn: str, *, advice: bool, status: str = "active") -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "id": rid,
        "meta": {"versionId": "5", "profile": [R4_PROFILE]},
        "identifier": [{"system": UBRN, "value": ubrn}],
        "status": status,
        "intent": "order",
        "category": [{"coding": [{"system": CATEGORY, "code": "request" if advice else "referral"}]}],
        "subject": {"identifier": {"system": NHS, "value": PATIENT}},
        "authoredOn": "2024-05-08T09:54:23+00:00",
    }
    if advice:
        resource["code"] = {
            "coding": [{"system": "https://fhir.nhs.uk/CodeSystem/servicerequest-code", "code": "advice-and-guidance"}]
        }
    return resource


def _stu3(ubrn: str, request_id: str, state: str) -> dict[str, Any]:
    return {
        "resourceType": "ReferralRequest",
        "id": ubrn,
        "meta": {"versionId": "5", "profile": [f"{STU3}/StructureDefinition/eRS-ReferralRequest-1"]},
        "extension": [
            {
                "url": f"{STU3}/StructureDefinition/Extension-eRS-ReferralPriority-1",
                "valueCodeableConcept": {
                    "coding": [{"system": f"{STU3}/CodeSystem/eRS-Priority-1", "code": "ROUTINE", "display": "Routine"}]
                },
            },
            {
                "url": f"{STU3}/StructureDefinition/Extension-eRS-ReferralShortlist-1",
                "valueReference": {"reference": "#shortlist"},
            },
            {
                "url": f"{STU3}/StructureDefinition/Extension-eRS-ReferralState-1",
                "extension": [
                    {"url": "state", "valueCoding": {"system": f"{STU3}/CodeSystem/eRS-ReferralState-1", "code": state}}
                ],
            },
        ],
        "contained": [
            {
                "resourceType": "List",
                "id": "shortlist",
                "status": "current",
                "mode": "snapshot",
                "entry": [
                    {
                        "item": {
                            "identifier": {"system": "http://fhir.nhs.net/Id/ers-service", "value": "11002"},
                            "display": "Synthetic Cardiology Service",
                        }
                    }
                ],
            }
        ],
        "status": "active",
        "intent": "plan",
        "specialty": {
            "coding": [{"system": f"{STU3}/CodeSystem/SPECIALTY", "code": "CARDIOLOGY", "display": "Cardiology"}]
        },
        "subject": {"identifier": {"system": LEGACY_NHS, "value": PATIENT}},
        "supportingInfo": [{"reference": "#shortlist"}],
        "description": "Synthetic referral for emulator tests",
        "identifier": [{"system": "https://fhir.nhs.uk/Id/ers-request-id", "value": request_id}],
    }


R4_BY_UBRN: dict[str, list[dict[str, Any]]] = {
    "000000070000": [_r4("r.5c0e2f7a-1d34-4a8b-9b6e-3f2a1c0d7000", "000000070000", advice=False)],
    "000000070001": [_r4("a.5c0e2f7a-1d34-4a8b-9b6e-3f2a1c0d7001", "000000070001", advice=True)],
    "000000070002": [
        _r4("r.5c0e2f7a-1d34-4a8b-9b6e-3f2a1c0d7002", "000000070002", advice=False),
        _r4("a.5c0e2f7a-1d34-4a8b-9b6e-3f2a1c0d7002", "000000070002", advice=True, status="completed"),
    ],
    "000000070003": [],
}

STU3_BY_UBRN: dict[str, dict[str, Any]] = {
    "000000070000": _stu3("000000070000", "r.5c0e2f7a-1d34-4a8b-9b6e-3f2a1c0d7000", "NOT_BOOKED"),
    "000000070002": _stu3("000000070002", "r.5c0e2f7a-1d34-4a8b-9b6e-3f2a1c0d7002", "BOOKED"),
}

# e-RS R4 is user-restricted: the business function and the user's organisation travel as headers.
ERS_HEADERS = {"NHSD-eRS-Business-Function": "REFERRING_CLINICIAN", "NHSD-End-User-Organisation-ODS": "R69"}


def scenarios() -> list[Scenario]:
    """One e-RS search per UBRN, described from what e-RS holds for it."""
    found = []
    for ubrn, resources in R4_BY_UBRN.items():
        advice = sum(1 for r in resources if r["id"].startswith("a."))
        referrals = len(resources) - advice
        kinds = [f"{referrals} referral(s)"] * bool(referrals) + [f"{advice} advice & guidance"] * bool(advice)
        found.append(
            Scenario(
                f"ers-ubrn-{ubrn}",
                "e-RS referral by UBRN" if resources else "Nothing recorded for a UBRN (e-RS)",
                (f"UBRN {ubrn}: {' and '.join(kinds)}" if resources else f"e-RS holds nothing for UBRN {ubrn}")
                + (f"; its STU3 ReferralRequest is {STU3_BY_UBRN[ubrn]['status']}" if ubrn in STU3_BY_UBRN else "")
                + ".",
                "ServiceRequest",
                "ServiceRequest",
                query={"identifier": f"{UBRN}|{ubrn}"},
                headers={**ERS_HEADERS, "X-NHS-User-Token": "sandbox-cis2-token"},
                scope="user/ServiceRequest.rs user/Patient.rs",
                patient=PATIENT,
            )
        )
    return found
