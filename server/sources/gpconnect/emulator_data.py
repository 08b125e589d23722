"""Synthetic GP Connect structured records (STU3) for the emulator, written for this
project (not NHS copies). Patients match the PDS emulator's where they overlap.

- 9000000009 Jane Smith: active Amoxicillin (reaction: urticaria, mild), peanut
  (anaphylaxis, severe, high criticality), a GP2GP transfer-degraded drug allergy;
  resolved: aspirin intolerance (ended, with reason), in the newer "Ended allergies"
  List shape (bundle-level resources, not contained).
- 9000000017 Jayne Smyth: "No known allergies" positively recorded (emptyReason nilknown).
- 9000000033: nothing recorded and no NKA (empty list with the GP's note).
- 9000000092 Robert Smithson: one environmental allergy; a confidential item withheld
  (List warningCode confidential-items).
- 9000000025 (sensitive) and unknown numbers: PATIENT_NOT_FOUND; 9000000068: NO_PATIENT_CONSENT.
"""

from __future__ import annotations

from typing import Any

from server.nhs.identifiers import NHS_NUMBER_SYSTEM, ODS_SYSTEM
from server.sources.upstream import Scenario

SCT = "http://snomed.info/sct"
NHS = NHS_NUMBER_SYSTEM
ODS = ODS_SYSTEM
DATA_ID = "https://provider.nhs.uk/data-identifier"
PROFILE = "https://fhir.nhs.uk/STU3/StructureDefinition/"
END_EXT = PROFILE + "Extension-CareConnect-GPC-AllergyIntoleranceEnd-1"
WARNING_EXT = PROFILE + "Extension-CareConnect-GPC-ListWarningCode-1"
SCT_DESC = "https://fhir.hl7.org.uk/STU3/StructureDefinition/Extension-coding-sctdescid"
PRACTICE_ID = "b5d6c8f2-0c39-4d53-9d1e-2b8f0c7d1a11"
GP_ID = "0f2d7e4c-6a57-4b4e-9c0e-3c5b8f9a2d22"
ROLE_ID = "7a1c2e3d-4b5f-4a6e-8d7c-9e0f1a2b3c33"

NO_CONSENT = {"9000000068"}


def _concept(code: str, display: str, text: str | None = None, desc_id: str | None = None) -> dict[str, Any]:
    coding: dict[str, Any] = {"system": SCT, "code": code, "display": display}
    if desc_id:
        coding["extension"] = [{"url": SCT_DESC, "extension": [{"url": "descriptionId", "valueId": desc_id}]}]
    concept: dict[str, Any] = {"coding": [coding]}
    if text:
        concept["text"] = text
    return concept


def _allergy(
    key: str,
    nhs: str,
    code: dict[str, Any],
    *,
    status: str = "active",
    verification: str = "confirmed",
    category: str = "medication",
    asserted: str,
    reaction: dict[str, Any] | None = None,
    criticality: str | None = None,
    note: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    allergy: dict[str, Any] = {
        "resourceType": "AllergyIntolerance",
        "id": f"{key}-{nhs}",
        "meta": {"profile": [PROFILE + "CareConnect-GPC-AllergyIntolerance-1"]},
        "identifier": [{"system": DATA_ID, "value": f"{key}-{nhs}"}],
        "clinicalStatus": status,
        "verificationStatus": verification,
        "type": "allergy",
        "category": [category],
        "code": code,
        "patient": {"reference": f"Patient/gp-{nhs}"},
        "assertedDate": asserted,
        "recorder": {"reference": f"PractitionerRole/{ROLE_ID}"},
        **extra,
    }
    if criticality:
        allergy["criticality"] = criticality
    if reaction:
        allergy["reaction"] = [reaction]
    if note:
        allergy["note"] = [{"text": note}]
    return allergy


def _list(
    title: str,
    code: str,
    nhs: str,
    items: list[dict[str, Any]],
    *,
    empty_reason: dict[str, Any] | None = None,
    note: str | None = None,
    warning: str | None = None,
) -> dict[str, Any]:
    lst: dict[str, Any] = {
        "resourceType": "List",
        "id": f"{code}-{nhs}",
        "meta": {"profile": [PROFILE + "CareConnect-GPC-List-1"]},
        "status": "current",
        "mode": "snapshot",
        "title": title,
        "code": {"coding": [{"system": SCT, "code": code, "display": title}]},
        "subject": {"reference": f"Patient/gp-{nhs}"},
        "date": "2026-03-01T09:30:00+00:00",
        "entry": [{"item": {"reference": f"AllergyIntolerance/{a['id']}"}} for a in items],
    }
    if not items:
        del lst["entry"]
    if empty_reason:
        lst["emptyReason"] = empty_reason
    if note:
        lst["note"] = [{"text": note}]
    if warning:
        lst["extension"] = [{"url": WARNING_EXT, "valueCode": warning}]
    return lst


def _patient(nhs: str, family: str, given: str, gender: str, birth: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": f"gp-{nhs}",
        "meta": {"profile": [PROFILE + "CareConnect-GPC-Patient-1"]},
        "identifier": [{"system": NHS, "value": nhs}],
        "name": [{"use": "official", "family": family, "given": [given]}],
        "gender": gender,
        "birthDate": birth,
        "managingOrganization": {"reference": f"Organization/{PRACTICE_ID}"},
    }


PRACTICE = [
    {
        "resourceType": "Organization",
        "id": PRACTICE_ID,
        "identifier": [{"system": ODS, "value": "Y12345"}],
        "name": "Trevelyan Square Surgery",
    },
    {
        "resourceType": "Practitioner",
        "id": GP_ID,
        "identifier": [{"system": "https://fhir.nhs.uk/Id/sds-user-id", "value": "G9876543"}],
        "name": [{"family": "Okafor", "given": ["Adaeze"], "prefix": ["Dr"]}],
    },
    {
        "resourceType": "PractitionerRole",
        "id": ROLE_ID,
        "practitioner": {"reference": f"Practitioner/{GP_ID}"},
        "organization": {"reference": f"Organization/{PRACTICE_ID}"},
    },
]

NO_ALLERGIES_NOTE = (
    "There are no allergies in the patient record but it has not been confirmed with the patient "
    "that they have no allergies (that is, a 'no known allergies' code has not been recorded)."
)
ENDED = ("1103671000000101", "Ended allergies")
ACTIVE = ("886921000000105", "Active Allergies")


def _jane() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    nhs = "9000000009"
    amoxicillin = _allergy(
        "amox",
        nhs,
        _concept("372687004", "Amoxicillin", desc_id="2154741011"),
        asserted="2019-12-10T13:00:00+00:00",
        criticality="low",
        note="Certainty: Certain, NOTES: rash within hours of first dose",
        reaction={
            "manifestation": [_concept("247472004", "Urticarial rash")],
            "severity": "mild",
            "exposureRoute": _concept("26643006", "Oral route"),
            "description": "Itchy wheals on arms",
        },
        onsetDateTime="2019-12-09",
    )
    peanut = _allergy(
        "peanut",
        nhs,
        _concept("91935009", "Allergy to peanut", text="Peanut allergy"),
        category="food",
        asserted="2015-06-01",
        criticality="high",
        reaction={"manifestation": [_concept("39579001", "Anaphylaxis")], "severity": "severe"},
    )
    degraded = _allergy(
        "degraded",
        nhs,
        _concept("196461000000101", "Transfer-degraded drug allergy", text="Allergy to co-codamol"),
        verification="unconfirmed",
        asserted="2012-03-04T10:00:00+00:00",
        note="NOTES: received by GP2GP as a degraded record",
    )
    aspirin = _allergy(
        "aspirin",
        nhs,
        _concept("293586001", "Aspirin adverse reaction"),
        status="resolved",
        asserted="2010-01-05",
        extension=[
            {
                "url": END_EXT,
                "extension": [
                    {"url": "endDate", "valueDateTime": "2018-03-01"},
                    {"url": "reasonEnded", "valueString": "No recurrence on rechallenge"},
                ],
            }
        ],
        reaction={"manifestation": [_concept("422400008", "Vomiting")], "severity": "moderate"},
    )
    active = [amoxicillin, peanut, degraded]
    return active, [aspirin]


def structured_record(nhs: str, include_resolved: bool) -> dict[str, Any] | None:
    """The emulated GP's answer for one patient, or None when the GP has no such patient."""
    if nhs == "9000000009":
        patient = _patient(nhs, "Smith", "Jane", "female", "2010-10-22")
        active, resolved = _jane()
        lists = [_list(ACTIVE[1], ACTIVE[0], nhs, active)]
        if include_resolved:
            lists.append(_list(ENDED[1], ENDED[0], nhs, resolved))
        allergies = active + (resolved if include_resolved else [])
    elif nhs == "9000000017":
        patient = _patient(nhs, "Smyth", "Jayne", "female", "2010-10-22")
        nil_known = {
            "coding": [{"system": "http://hl7.org/fhir/list-empty-reason", "code": "nilknown", "display": "Nil Known"}],
            "text": "No known allergies",
        }
        lists = [_list(ACTIVE[1], ACTIVE[0], nhs, [], empty_reason=nil_known)]
        if include_resolved:
            lists.append(_list(ENDED[1], ENDED[0], nhs, [], empty_reason=nil_known))
        allergies = []
    elif nhs == "9000000033":
        patient = _patient(nhs, "Doe", "Sam", "unknown", "1990-01-01")
        lists = [_list(ACTIVE[1], ACTIVE[0], nhs, [], note=NO_ALLERGIES_NOTE)]
        if include_resolved:
            lists.append(_list(ENDED[1], ENDED[0], nhs, [], note="Information not available"))
        allergies = []
    elif nhs == "9000000092":
        patient = _patient(nhs, "Smithson", "Robert", "male", "2010-10-23")
        mite = _allergy(
            "mite", nhs, _concept("260147004", "House dust mite"), category="environment", asserted="2021-09-14"
        )
        lists = [
            _list(
                ACTIVE[1],
                ACTIVE[0],
                nhs,
                [mite],
                warning="confidential-items",
                note="Items excluded due to confidentiality and/or patient preferences.",
            )
        ]
        allergies = [mite]
    else:
        return None
    return {
        "resourceType": "Bundle",
        "meta": {"profile": [PROFILE + "GPConnect-StructuredRecord-Bundle-1"]},
        "type": "collection",
        "entry": [{"resource": r} for r in [patient, *PRACTICE, *lists, *allergies]],
    }


# The patients this GP holds records for (structured_record answers each), then the ones
# it refuses: the index the console's scenarios are derived from.
RECORDED = ("9000000009", "9000000017", "9000000033", "9000000092")


def _allergies_scenario(
    scenario_id: str, title: str, description: str, nhs: str, query: dict[str, str] | None = None
) -> Scenario:
    """An allergy search as a clinician in direct care of the patient (the token's launch context)."""
    return Scenario(
        scenario_id,
        title,
        description,
        "AllergyIntolerance",
        "AllergyIntolerance",
        query={"patient": nhs, **(query or {})},
        scope="user/AllergyIntolerance.rs user/Patient.rs",
        patient=nhs,
    )


def scenarios() -> list[Scenario]:
    """What the GP records demonstrate, read from each record's lists and allergies."""
    found: list[Scenario] = []
    for nhs in RECORDED:
        record = structured_record(nhs, True)
        assert record is not None, nhs
        resources = [entry["resource"] for entry in record["entry"]]
        allergies = [r for r in resources if r["resourceType"] == "AllergyIntolerance"]
        lists = [r for r in resources if r["resourceType"] == "List"]
        resolved = [a for a in allergies if a.get("clinicalStatus") == "resolved"]
        degraded = [a for a in allergies if "degraded" in str(a.get("note", "")).lower()]
        withheld = any(
            ext.get("valueCode") == "confidential-items" for lst in lists for ext in lst.get("extension", [])
        )
        nil_known = any(
            (lst.get("emptyReason") or {}).get("coding", [{}])[0].get("code") == "nilknown" for lst in lists
        )
        if allergies and not withheld:
            found.append(
                _allergies_scenario(
                    f"gpc-allergies-{nhs}",
                    "Allergies converted from STU3",
                    f"{len(allergies) - len(resolved)} active allergies"
                    + (f", {len(degraded)} transfer-degraded" if degraded else "")
                    + ": GP Connect STU3 converted to UK Core R4 by declared rules.",
                    nhs,
                )
            )
        if resolved:
            found.append(
                _allergies_scenario(
                    f"gpc-resolved-{nhs}",
                    "Ended allergies",
                    f"{len(resolved)} resolved allergy with its end date and reason, asked for by clinical-status.",
                    nhs,
                    {"clinical-status": "resolved"},
                )
            )
        if nil_known:
            found.append(
                _allergies_scenario(
                    f"gpc-nil-known-{nhs}",
                    "No known allergies",
                    "The GP recorded 'no known allergies': one AllergyIntolerance coded 716186003.",
                    nhs,
                )
            )
        elif not allergies:
            found.append(
                _allergies_scenario(
                    f"gpc-nothing-recorded-{nhs}",
                    "Nothing recorded",
                    "No allergies in the record and none confirmed absent: an empty searchset with the GP's note.",
                    nhs,
                )
            )
        if withheld:
            found.append(
                _allergies_scenario(
                    f"gpc-confidential-{nhs}",
                    "Confidential items withheld",
                    "The GP left items out for confidentiality: the answer carries the list's warning.",
                    nhs,
                )
            )
    for nhs in sorted(NO_CONSENT):
        found.append(
            _allergies_scenario(
                f"gpc-no-consent-{nhs}",
                "No consent to share",
                f"The patient {nhs} has not consented to share the GP record: GP Connect NO_PATIENT_CONSENT.",
                nhs,
            )
        )
    return found
