"""FHIR XML round trips as properties: resource → XML → R4B model → dict is the resource.

Generated Patients and OperationOutcomes (text from the whole of what XML 1.0 carries,
markup characters included) come back exactly; the emulator's PDS patients come back as
the R4B model writes them (it spells a `+00:00` offset `Z`)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from fhir.resources.R4B.patient import Patient
from hypothesis import given, settings
from hypothesis import strategies as st

from server.fhir.xml_format import json_body_to_xml, resource_from_xml, resource_to_xml
from server.sources.pds.emulator_data import PATIENTS

# FHIR string: no control characters but tab, CR, LF; not empty, not only whitespace (R4
# datatypes: `[ \r\n\t\S]+`). Surrogates and U+FFFE/U+FFFF are outside XML 1.0 too.
CHARS = st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\ufffe\uffff") | st.sampled_from(
    "\t\n<>&\"'"
)
TEXT = st.text(CHARS, min_size=1, max_size=40).filter(lambda s: s.strip() != "" and s == s.strip())
CODE = st.from_regex(r"[a-z][a-z0-9\-]{0,15}", fullmatch=True)
URI = st.builds(lambda path: f"https://example.org/{path}", st.from_regex(r"[a-z0-9]{1,12}", fullmatch=True))
DATE = st.dates().map(lambda d: d.isoformat()).filter(lambda s: len(s) == 10)
NHS_ID = st.from_regex(r"[0-9]{10}", fullmatch=True)


def drop_none(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v not in (None, [], {})}


NAMES = st.builds(
    lambda family, given, use: drop_none(family=family, given=given, use=use),
    TEXT,
    st.lists(TEXT, max_size=3),
    st.none() | st.sampled_from(["official", "usual", "nickname", "old"]),
)
IDENTIFIERS = st.builds(lambda system, value: {"system": system, "value": value}, URI, TEXT)
TELECOM = st.builds(
    lambda system, value: {"system": system, "value": value}, st.sampled_from(["phone", "email", "url"]), TEXT
)
EXTENSIONS = st.one_of(
    st.builds(lambda url, v: {"url": url, "valueString": v}, URI, TEXT),
    st.builds(lambda url, v: {"url": url, "valueBoolean": v}, URI, st.booleans()),
    st.builds(lambda url, v: {"url": url, "valueInteger": v}, URI, st.integers(-(2**31), 2**31 - 1)),
    st.builds(lambda url, v: {"url": url, "valueCode": v}, URI, CODE),
)
PATIENTS_GENERATED = st.builds(
    lambda pid, names, ids, telecom, gender, birth, active, ext: {
        "resourceType": "Patient",
        **drop_none(
            id=pid,
            identifier=ids,
            active=active,
            name=names,
            telecom=telecom,
            gender=gender,
            birthDate=birth,
            extension=ext,
        ),
    },
    NHS_ID,
    st.lists(NAMES, max_size=3),
    st.lists(IDENTIFIERS, max_size=2),
    st.lists(TELECOM, max_size=2),
    st.none() | st.sampled_from(["male", "female", "other", "unknown"]),
    st.none() | DATE,
    st.none() | st.booleans(),
    st.lists(EXTENSIONS, max_size=3),
)
OUTCOMES = st.builds(
    lambda issues: {"resourceType": "OperationOutcome", "issue": issues},
    st.lists(
        st.builds(
            lambda severity, code, diagnostics: drop_none(severity=severity, code=code, diagnostics=diagnostics),
            st.sampled_from(["fatal", "error", "warning", "information"]),
            st.sampled_from(["invalid", "value", "not-found", "not-supported", "too-costly", "login", "exception"]),
            st.none() | TEXT,
        ),
        min_size=1,
        max_size=3,
    ),
)


@settings(max_examples=60, deadline=None)
@given(PATIENTS_GENERATED)
def test_a_patient_comes_back_from_xml(patient: dict[str, Any]) -> None:
    assert resource_from_xml(resource_to_xml(patient)) == patient


@settings(max_examples=60, deadline=None)
@given(OUTCOMES, st.booleans())
def test_an_outcome_comes_back_from_xml(outcome: dict[str, Any], pretty: bool) -> None:
    assert resource_from_xml(resource_to_xml(outcome, pretty=pretty)) == outcome


@settings(max_examples=20, deadline=None)
@given(st.lists(PATIENTS_GENERATED, min_size=1, max_size=4), OUTCOMES)
def test_a_searchset_comes_back_from_xml(patients: list[dict[str, Any]], outcome: dict[str, Any]) -> None:
    entries = [
        {"fullUrl": f"https://facade.example/Patient/{n}", "resource": p, "search": {"mode": "match"}}
        for n, p in enumerate(patients)
    ]
    entries.append(
        {"fullUrl": "urn:uuid:0b5c1e0e-1c1e-4c1e-8c1e-0b5c1e0e1c1e", "resource": outcome, "search": {"mode": "outcome"}}
    )
    bundle = {"resourceType": "Bundle", "type": "searchset", "total": len(patients), "entry": entries}
    assert resource_from_xml(resource_to_xml(bundle)) == bundle


@pytest.mark.parametrize("nhs", sorted(PATIENTS))
def test_every_emulator_patient_comes_back_from_xml(nhs: str) -> None:
    patient = PATIENTS[nhs]
    as_model_writes_it = Patient.model_validate(patient).model_dump(mode="json")
    assert resource_from_xml(json_body_to_xml(orjson.dumps(patient))) == as_model_writes_it
