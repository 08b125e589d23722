"""Synthetic Prescription Tracker data (no real person): prescriptions per NHS number.

9000000009 (Jane Smith in the PDS emulator) has an acute prescription with three items
partially dispensed and an eRD repeat (reflex-order) with two issues, whose id ends in
'+' (a valid EPS check character that is not a FHIR id character). 9000000017 has one
acute single-item prescription, fully dispensed. Other valid NHS numbers have none.
"""

from __future__ import annotations

from dataclasses import dataclass

from server.sources.upstream import Scenario


@dataclass(frozen=True)
class Item:
    number: str  # prescription-order-item-number (GUID)
    medication: str
    dosage: str
    quantity: float
    unit: str


@dataclass(frozen=True)
class ItemState:
    status: str  # MedicationRequest.status
    dispense_code: str  # https://fhir.nhs.uk/CodeSystem/medicationdispense-type
    dispense_display: str


@dataclass(frozen=True)
class Issue:
    number: int | None  # None for an acute prescription
    status_code: str  # https://fhir.nhs.uk/CodeSystem/EPS-task-business-status
    status_display: str
    items: tuple[ItemState, ...]


@dataclass(frozen=True)
class Prescription:
    id: str
    nhs_number: str
    prefix: str
    given: str
    family: str
    authored_on: str
    intent: str
    course: tuple[str, str]  # medicationrequest-course-of-therapy code, display
    prescriber_ods: str
    dispenser_ods: str
    items: tuple[Item, ...]
    issues: tuple[Issue, ...]
    repeats_allowed: int | None = None


FULLY = ItemState("completed", "0001", "Item fully dispensed")
PARTIAL = ItemState("active", "0003", "Item dispensed - partial")
OWING = ItemState("active", "0004", "Item not dispensed - owing")
TO_BE = ItemState("active", "0007", "Item to be dispensed")

PRESCRIPTIONS: tuple[Prescription, ...] = (
    Prescription(
        id="A1F3C2-A83008-4B7E1K",
        nhs_number="9000000009",
        prefix="MRS",
        given="JANE",
        family="SMITH",
        authored_on="2026-03-10T09:30:00.000Z",
        intent="order",
        course=("acute", "Short course (acute) therapy"),
        prescriber_ods="A83008",
        dispenser_ods="FA123",
        items=(
            Item(
                "6F2D1A44-0B5E-4C1B-9E3A-1D2C3B4A5F60",
                "Amoxicillin 500mg capsules",
                "1 capsule 3 times a day",
                21,
                "capsule",
            ),
            Item(
                "0C9E8B7A-6D5C-4B3A-8F1E-2D3C4B5A6978",
                "Paracetamol 500mg tablets",
                "2 tablets up to 4 times a day",
                100,
                "tablet",
            ),
            Item(
                "D4C3B2A1-9F8E-4D7C-A6B5-4A3B2C1D0E9F",
                "Salbutamol 100micrograms/dose inhaler",
                "2 puffs when required",
                1,
                "inhaler",
            ),
        ),
        issues=(Issue(None, "0003", "With Dispenser - Active", (FULLY, PARTIAL, OWING)),),
    ),
    Prescription(
        id="B7C21D-A83008-9D44E+",
        nhs_number="9000000009",
        prefix="MRS",
        given="JANE",
        family="SMITH",
        authored_on="2026-01-05T14:00:00.000Z",
        intent="reflex-order",
        course=("continuous-repeat-dispensing", "Continuous long term (repeat dispensing)"),
        prescriber_ods="A83008",
        dispenser_ods="FA123",
        items=(
            Item(
                "7A6B5C4D-3E2F-4A1B-8C9D-0E1F2A3B4C5D", "Atorvastatin 20mg tablets", "1 tablet at night", 28, "tablet"
            ),
        ),
        issues=(
            Issue(1, "0006", "Dispensed", (FULLY,)),
            Issue(2, "0001", "To be Dispensed", (TO_BE,)),
        ),
        repeats_allowed=3,
    ),
    Prescription(
        id="C0FFEE-A83008-12345X",
        nhs_number="9000000017",
        prefix="MS",
        given="JAYNE",
        family="SMYTH",
        authored_on="2025-11-20T11:15:00.000Z",
        intent="order",
        course=("acute", "Short course (acute) therapy"),
        prescriber_ods="A83008",
        dispenser_ods="FA565",
        items=(
            Item(
                "11111111-2222-4333-8444-555555555555",
                "Ibuprofen 200mg tablets",
                "1 tablet 3 times a day",
                24,
                "tablet",
            ),
        ),
        issues=(Issue(None, "0006", "Dispensed", (FULLY,)),),
    ),
)


# The CIS2 session a user-restricted CPT call carries (README "MedicationRequest").
SESSION_HEADERS = {
    "nhsd-session-urid": "555254240100",
    "nhsd-organization-uuid": "A83008",
    "nhsd-session-jobrole": "S0030:G0100:R0570",
    "X-NHS-User-Token": "sandbox-cis2-token",
}


def scenarios() -> list[Scenario]:
    """One search per patient with prescriptions, described from the prescriptions' shape."""
    found: list[Scenario] = []
    by_patient: dict[str, list[Prescription]] = {}
    for prescription in PRESCRIPTIONS:
        by_patient.setdefault(prescription.nhs_number, []).append(prescription)
    for nhs, held in by_patient.items():
        items = sum(len(p.items) * len(p.issues) for p in held)
        repeats = [p for p in held if p.repeats_allowed]
        states = sorted({state.dispense_display for p in held for issue in p.issues for state in issue.items})
        found.append(
            Scenario(
                f"cpt-prescriptions-{nhs}",
                "Prescriptions (user-restricted)" + (", with an eRD repeat" if repeats else ""),
                f"{len(held)} prescription(s) of {held[0].given} {held[0].family}, {items} line item(s) as "
                f"MedicationRequests ({'; '.join(states)}). Needs the CIS2 session headers.",
                "MedicationRequest",
                "MedicationRequest",
                query={"patient": nhs},
                headers=SESSION_HEADERS,
                scope="user/MedicationRequest.rs user/Patient.rs",
                patient=nhs,
            )
        )
    return found
