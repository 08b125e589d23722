"""Property tests: any valid STU3 GP Connect allergy converts to a valid R4 one.

Generated allergies are first checked to be valid STU3 (fhir.resources.STU3), so the
property is about the conversion, not about the generator.
"""

from __future__ import annotations

from datetime import timezone
from typing import Any

from fhir.resources.STU3.allergyintolerance import AllergyIntolerance as STU3Allergy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mappings.stu3_to_r4.transforms import STU3_SCT_DESC_ID
from server.sources.gpconnect.mapping import allergies_from_structured_record
from tests.support.fhir_validation import validate_r4

NHS = "9000000009"
CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
END_URL = "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-CareConnect-GPC-AllergyIntoleranceEnd-1"

words = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789-", min_size=1, max_size=12)
phrases = st.lists(words, min_size=1, max_size=4).map(" ".join)
sct_codes = st.integers(min_value=100000, max_value=99999999999).map(str)
dates = st.one_of(
    st.dates().map(lambda d: d.isoformat()),
    st.datetimes(timezones=st.just(timezone.utc)).map(lambda d: d.replace(microsecond=0).isoformat()),
).filter(lambda s: s[:4] != "0000")


def optional(key: str, strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(st.just({}), strategy.map(lambda v: {key: v}))


@st.composite
def codings(draw: st.DrawFn) -> dict[str, Any]:
    coding: dict[str, Any] = {"system": "http://snomed.info/sct", "code": draw(sct_codes)}
    coding |= draw(optional("display", phrases))
    if draw(st.booleans()):
        parts = [{"url": "descriptionId", "valueId": draw(sct_codes)}]
        parts += [{"url": "descriptionDisplay", "valueString": t} for t in draw(st.lists(phrases, max_size=1))]
        coding["extension"] = [{"url": STU3_SCT_DESC_ID, "extension": parts}]
    return coding


@st.composite
def concepts(draw: st.DrawFn) -> dict[str, Any]:
    concept: dict[str, Any] = {"coding": draw(st.lists(codings(), min_size=1, max_size=2))}
    return concept | draw(optional("text", phrases))


@st.composite
def reactions(draw: st.DrawFn) -> dict[str, Any]:
    reaction: dict[str, Any] = {"manifestation": draw(st.lists(concepts(), min_size=1, max_size=2))}
    reaction |= draw(optional("severity", st.sampled_from(["mild", "moderate", "severe"])))
    reaction |= draw(optional("description", phrases))
    reaction |= draw(optional("onset", dates))
    reaction |= draw(optional("exposureRoute", concepts()))
    reaction |= draw(optional("substance", concepts()))
    return reaction


@st.composite
def stu3_allergies(draw: st.DrawFn) -> dict[str, Any]:
    allergy: dict[str, Any] = {
        "resourceType": "AllergyIntolerance",
        "id": draw(words),
        "verificationStatus": draw(st.sampled_from(["unconfirmed", "confirmed", "refuted", "entered-in-error"])),
        "patient": {"reference": "Patient/gp-local"},
        "code": draw(concepts()),
    }
    allergy |= draw(
        optional(
            "identifier",
            st.lists(
                st.builds(lambda v: {"system": "https://provider.nhs.uk/data-identifier", "value": v}, words),
                min_size=1,
                max_size=2,
            ),
        )
    )
    allergy |= draw(optional("clinicalStatus", st.sampled_from(["active", "inactive", "resolved"])))
    allergy |= draw(optional("type", st.sampled_from(["allergy", "intolerance"])))
    allergy |= draw(
        optional(
            "category",
            st.lists(
                st.sampled_from(["food", "medication", "environment", "biologic"]), min_size=1, max_size=2, unique=True
            ),
        )
    )
    allergy |= draw(optional("criticality", st.sampled_from(["low", "high", "unable-to-assess"])))
    allergy |= draw(optional("assertedDate", dates))
    allergy |= draw(optional("onsetDateTime", dates))
    allergy |= draw(optional("lastOccurrence", dates))
    allergy |= draw(optional("recorder", st.just({"reference": "PractitionerRole/role"})))
    allergy |= draw(optional("note", st.lists(st.builds(lambda t: {"text": t}, phrases), min_size=1, max_size=2)))
    allergy |= draw(optional("reaction", st.lists(reactions(), min_size=1, max_size=2)))
    if allergy.get("clinicalStatus") == "resolved" and draw(st.booleans()):
        allergy["extension"] = [
            {
                "url": END_URL,
                "extension": [
                    {"url": "endDate", "valueDateTime": draw(dates)},
                    {"url": "reasonEnded", "valueString": draw(phrases)},
                ],
            }
        ]
    if allergy["verificationStatus"] == "entered-in-error":
        allergy.pop("clinicalStatus", None)  # STU3 ait-2
    return allergy


def _record(allergy: dict[str, Any], resolved: bool) -> dict[str, Any]:
    code = "1103671000000101" if resolved else "886921000000105"
    lst = {
        "resourceType": "List",
        "status": "current",
        "mode": "snapshot",
        "title": "t",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": code}]},
        "entry": [{"item": {"reference": f"AllergyIntolerance/{allergy['id']}"}}],
    }
    role = {"resourceType": "PractitionerRole", "id": "role", "practitioner": {"reference": "Practitioner/gp"}}
    gp = {
        "resourceType": "Practitioner",
        "id": "gp",
        "name": [{"family": "Ng"}],
        "identifier": [{"system": "https://fhir.nhs.uk/Id/sds-user-id", "value": "G1"}],
    }
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": r} for r in (lst, allergy, role, gp)],
    }


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(allergy=stu3_allergies(), resolved=st.booleans())
def test_every_stu3_allergy_converts_to_valid_r4(allergy: dict[str, Any], resolved: bool) -> None:
    STU3Allergy.model_validate(allergy)  # the generator produces valid STU3
    out = allergies_from_structured_record(_record(allergy, resolved), NHS, include_resolved=True)
    (r4,) = out.allergies
    validate_r4(r4)
    assert out.warnings == []  # nothing valid in STU3 is lost
    assert r4["verificationStatus"]["coding"][0]["system"] == VERIFICATION
    assert r4["verificationStatus"]["coding"][0]["code"] == allergy["verificationStatus"]
    if allergy["verificationStatus"] == "entered-in-error":
        assert "clinicalStatus" not in r4
    else:
        (status,) = r4["clinicalStatus"]["coding"]
        assert status["system"] == CLINICAL
        assert status["code"] == allergy.get("clinicalStatus", "resolved" if resolved else "active")
    assert r4.get("recordedDate") == allergy.get("assertedDate")
    assert r4.get("identifier") == allergy.get("identifier")
    assert len(r4.get("reaction", [])) == len(allergy.get("reaction", []))
    assert r4["patient"]["reference"] == f"Patient/{NHS}"
    assert [c["code"] for c in r4["code"]["coding"]] == [c["code"] for c in allergy["code"]["coding"]]
    assert r4["code"].get("text") == allergy["code"].get("text")
