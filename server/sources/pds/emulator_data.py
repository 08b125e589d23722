"""Synthetic PDS patients for the emulator (written for this project, not NHS copies).

NHS test numbers follow PDS's sandbox: 9000000009 full record, 9000000025 restricted
(R), 9000000033 minimal, 9111231130 not found, 9000000000 invalid. 9000000017 is a
second "Smith" for wildcard searches; 9000000041 is superseded by 9000000068; 9000000076
is invalidated; 9000000084 is very restricted (V). 9000001005 and 9000001013 share name,
birth date and gender (tracing: multiple match).
"""

from __future__ import annotations

from typing import Any

from server.nhs.identifiers import NHS_NUMBER_SYSTEM, ODS_SYSTEM
from server.nhs.nhs_number import check_digit
from server.sources.upstream import Scenario

NHS = NHS_NUMBER_SYSTEM
ODS = ODS_SYSTEM
CONF = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
VERIFIED = {
    "url": "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus",
    "valueCodeableConcept": {
        "coding": [
            {
                "system": "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatus",
                "version": "1.0.0",
                "code": "01",
                "display": "Number present and verified",
            }
        ]
    },
}
_SECURITY = {"U": "unrestricted", "R": "restricted", "V": "very restricted"}


def _patient(nhs: str, version: str, security: str, **fields: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": nhs,
        "identifier": [{"system": NHS, "value": nhs, "extension": [VERIFIED]}],
        "meta": {
            "versionId": version,
            "lastUpdated": "2026-03-01T09:30:00+00:00",
            "security": [{"system": CONF, "code": security, "display": _SECURITY[security]}],
        },
        **fields,
    }


def _name(family: str, *given: str, prefix: str | None = None, start: str = "2010-10-22") -> dict[str, Any]:
    name: dict[str, Any] = {
        "id": f"name-{family.lower()}",
        "use": "usual",
        "period": {"start": start},
        "given": list(given),
        "family": family,
    }
    if prefix:
        name["prefix"] = [prefix]
    return name


def _address(postcode: str, *lines: str) -> dict[str, Any]:
    return {
        "id": f"addr-{postcode.replace(' ', '').lower()}",
        "use": "home",
        "period": {"start": "2020-01-01"},
        "line": list(lines),
        "postalCode": postcode,
    }


def _gp(ods: str) -> list[dict[str, Any]]:
    return [{"id": f"gp-{ods.lower()}", "type": "Organization", "identifier": {"system": ODS, "value": ods}}]


PATIENTS: dict[str, dict[str, Any]] = {
    "9000000009": _patient(
        "9000000009",
        "2",
        "U",
        name=[_name("Smith", "Jane", "Anne", prefix="Mrs")],
        gender="female",
        birthDate="2010-10-22",
        generalPractitioner=_gp("Y12345"),
        telecom=[
            {"id": "tel-1", "system": "phone", "value": "01632960587", "use": "home"},
            {"id": "tel-2", "system": "email", "value": "jane.smith@example.com", "use": "home"},
        ],
        address=[_address("LS1 6AE", "1 Trevelyan Square", "Boar Lane", "Leeds", "West Yorkshire")],
        extension=[
            {
                "url": "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NominatedPharmacy",
                "valueReference": {"identifier": {"system": ODS, "value": "FA123"}},
            }
        ],
    ),
    "9000000017": _patient(
        "9000000017",
        "1",
        "U",
        name=[_name("Smyth", "Jayne")],
        gender="female",
        birthDate="2010-10-22",
        generalPractitioner=_gp("Y12345"),
        address=[_address("LS1 6AE", "2 Trevelyan Square", "Leeds")],
    ),
    "9000000025": _patient(
        "9000000025",
        "2",
        "R",
        name=[_name("Smythe", "Janet")],
        gender="female",
        birthDate="2005-06-16",
    ),
    "9000000033": _patient("9000000033", "1", "U", name=[{"family": "Doe"}], gender="unknown"),
    "9000000068": _patient(
        "9000000068",
        "3",
        "U",
        name=[_name("Taylor", "Sam")],
        gender="male",
        birthDate="1980-02-29",
        generalPractitioner=_gp("Y23456"),
        address=[_address("M1 1AE", "10 Piccadilly", "Manchester")],
    ),
    "9000000084": _patient("9000000084", "1", "V", gender="male"),
    "9000000092": _patient(
        "9000000092",
        "1",
        "U",
        name=[_name("Smithson", "Robert")],
        gender="male",
        birthDate="2010-10-23",
        generalPractitioner=_gp("Y12345"),
        address=[_address("LS2 7AB", "5 Park Row", "Leeds")],
    ),
}
# For NHS number tracing (PAS): two patients identical in name, birth date and gender but
# living apart, so a trace without a postcode finds both (an exact multiple match).
PATIENTS.update(
    {
        "9000001005": _patient(
            "9000001005",
            "1",
            "U",
            name=[_name("Jones", "Alex")],
            gender="male",
            birthDate="1990-05-01",
            generalPractitioner=_gp("Y12345"),
            address=[_address("LS1 1AA", "3 Albion Street", "Leeds")],
        ),
        "9000001013": _patient(
            "9000001013",
            "1",
            "U",
            name=[_name("Jones", "Alex")],
            gender="male",
            birthDate="1990-05-01",
            generalPractitioner=_gp("Y23456"),
            address=[_address("M2 5DB", "7 Deansgate", "Manchester")],
        ),
    }
)
SUPERSEDED = {"9000000041": "9000000068"}
INVALIDATED = {"9000000076"}


def _display_name(patient: dict[str, Any]) -> str:
    names = patient.get("name") or [{}]
    parts = [*names[0].get("given", []), names[0].get("family", "")]
    return " ".join(p for p in parts if p) or "no name recorded"


def _unknown_number() -> str:
    """The first valid NHS number (Modulus 11) in the test range that PDS does not know."""
    known = set(PATIENTS) | set(SUPERSEDED) | INVALIDATED
    for n in range(900000000, 999999999):
        digit = check_digit(str(n))
        if digit is not None and f"{n}{digit}" not in known:
            return f"{n}{digit}"
    raise AssertionError("no free test NHS number")  # pragma: no cover


def _demographics(
    scenario_id: str, title: str, description: str, path: str, query: dict[str, str] | None = None
) -> Scenario:
    """A Patient request as a clerk would make it (demographics need no clinical purpose)."""
    return Scenario(
        scenario_id, title, description, "Patient", path, query=query or {}, scope="user/Patient.rs", role="clerk"
    )


def scenarios() -> list[Scenario]:
    """What this data demonstrates, read from the records' own flags (the console's catalogue)."""
    found: list[Scenario] = []
    seen: set[str] = set()
    for nhs, patient in PATIENTS.items():
        security = patient["meta"]["security"][0]["code"]
        full = bool(patient.get("telecom") and patient.get("address") and patient.get("generalPractitioner"))
        minimal = not patient.get("birthDate") and not patient.get("address")
        kind = (
            "restricted"
            if security == "R"
            else "very-restricted"
            if security == "V"
            else "full"
            if full
            else "minimal"
            if minimal
            else None
        )
        if kind is None or kind in seen:
            continue
        seen.add(kind)
        title, description = {
            "full": (
                "Full demographic record",
                f"{_display_name(patient)}: name, birth date, address, telecom, GP and nominated pharmacy; "
                f"the read answers an ETag from meta.versionId {patient['meta']['versionId']}.",
            ),
            "restricted": (
                "Restricted patient (S-flag R)",
                "PDS marks the record restricted: no address, telecom or GP are released, and a search "
                "that names a location never finds it.",
            ),
            "very-restricted": (
                "Very restricted patient (V)",
                "PDS releases almost nothing of a very restricted record and never returns it from a search.",
            ),
            "minimal": ("Minimal record", "A record with a family name and gender only: mapping of sparse data."),
        }[kind]
        found.append(_demographics(f"pds-{kind}", title, description, f"Patient/{nhs}"))
    for old, new in SUPERSEDED.items():
        found.append(
            _demographics(
                f"pds-superseded-{old}",
                "Superseded (merged) NHS number",
                f"{old} was merged into {new}: PDS answers the current record, whose id is {new}.",
                f"Patient/{old}",
            )
        )
    for gone in sorted(INVALIDATED):
        found.append(
            _demographics(
                f"pds-invalidated-{gone}",
                "Invalidated NHS number",
                f"PDS answers INVALIDATED_RESOURCE for {gone}: the record was marked invalid (the façade: 404/410).",
                f"Patient/{gone}",
            )
        )
    unknown = _unknown_number()
    found.append(
        _demographics(
            "pds-not-found",
            "Nothing recorded: unknown NHS number",
            f"{unknown} is a valid NHS number PDS has no record of: 404 not-found.",
            f"Patient/{unknown}",
        )
    )
    twins: dict[tuple[str, str], list[str]] = {}
    for nhs, patient in PATIENTS.items():
        if patient.get("birthDate") and patient.get("name"):
            twins.setdefault((patient["name"][0]["family"], patient["birthDate"]), []).append(nhs)
    for (family, born), numbers in twins.items():
        if len(numbers) > 1:
            found.append(
                _demographics(
                    f"pds-many-matches-{family.lower()}",
                    "Too many matches",
                    f"{len(numbers)} patients share family name {family} and birth date {born}. PDS answers "
                    "TOO_MANY_MATCHES when more match than _max-results (FACADE_PDS_MAX_RESULTS=1, as "
                    "application-restricted access must use): the façade's 422 multiple-matches; with no "
                    "limit set the search returns them all.",
                    "Patient",
                    query={"family": family, "birthdate": f"eq{born}"},
                )
            )
    return found
