"""Property: an NHS answer of the right outline with wrong value types (null, a number, a
list where an object belongs...) is either converted to valid R4 or refused as the
upstream's fault (UpstreamBadResponse -> 502), or, for one referral of a ServiceRequest
search, left out with a warning. Never another exception (a 500).

Each test runs the connector's conversion boundary (the parse/convert functions its
client or provider calls on the upstream body) on a real NHS example with one or two
nodes replaced (tests/support/json_mutation.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.nhs.errors import UpstreamBadResponse
from server.sources.cpt.client import parse_prescription_search
from server.sources.cpt.mapping import PrescriptionRef
from server.sources.cpt.provider import convert_prescription
from server.sources.gpconnect.client import parse_structured_record
from server.sources.gpconnect.provider import convert_record
from server.sources.pds.client import parse_patient, parse_search_bundle
from server.sources.referrals.bars_client import parse_searchset
from server.sources.referrals.ers_client import parse_r4_searchset, parse_referral_request
from server.sources.referrals.provider import Found, bars_found, ers_r4_found, ers_stu3_found
from tests.support.fhir_validation import validate_r4
from tests.support.json_mutation import mutated
from tests.support.shared import example_files

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _example(pattern: str) -> Any:
    return json.loads(example_files(pattern)[0].read_text())


def _converts_or_refuses(convert: Callable[[Any], list[dict[str, Any]]], body: Any) -> None:
    """The property: valid R4 out, or UpstreamBadResponse; anything else fails the test."""
    try:
        resources = convert(body)
    except UpstreamBadResponse as err:
        assert err.message and err.api
        return
    for resource in resources:
        validate_r4(resource)


def _found(found: Found) -> list[dict[str, Any]]:
    for warning in found.issues:
        assert warning["severity"] in ("warning", "information")
    return found.resources


# ---- PDS ---------------------------------------------------------------------------

PDS_SEARCH = _example("captured/pds_search_wildcard_two_matches.json")
PDS_SEARCHSET = _example("pds/PatientSearch_searchset.json")
PDS_PATIENT = _example("pds/Patient_9000000009.json")


@FUZZ
@given(st.one_of(mutated(PDS_SEARCH), mutated(PDS_SEARCHSET)))
def test_pds_search_answer(body: Any) -> None:
    _converts_or_refuses(lambda b: [m.patient for m in parse_search_bundle(b)], body)


@FUZZ
@given(mutated(PDS_PATIENT))
def test_pds_read_answer(body: Any) -> None:
    _converts_or_refuses(lambda b: [parse_patient(b)], body)


# ---- CPT ---------------------------------------------------------------------------

CPT_SEARCH = _example("eps-tracker/RequestGroup_search_200_WithSingleRepeat.json")
CPT_SEARCH_ACUTE = _example("eps-tracker/RequestGroup_search_by_nhsNumber_200_WithSingleAcute.json")
CPT_DETAILS = _example("eps-tracker/RequestGroup_prescriptionId_200_AcuteWithMultipleItems_PartiallyDispensed.json")


@FUZZ
@given(st.one_of(mutated(CPT_SEARCH), mutated(CPT_SEARCH_ACUTE)))
def test_cpt_search_answer(body: Any) -> None:
    try:
        refs = parse_prescription_search(body)
    except UpstreamBadResponse:
        return
    assert all(isinstance(r, PrescriptionRef) and isinstance(r.prescription_id, str) for r in refs)


@FUZZ
@given(mutated(CPT_DETAILS))
def test_cpt_details_answer(body: Any) -> None:
    _converts_or_refuses(convert_prescription, body)


# ---- BaRS and e-RS (ServiceRequest) -------------------------------------------------

BARS_SEARCH = _example("bars/ServiceRequest_search_GET-success.json")
ERS_R4_SEARCH = _example("ers/ServiceRequest_search_ResponseExampleReferralAndAdvice.json")
ERS_STU3 = _example("ers/stu3_retrieveReferralRequest_responses_BookedDBS.json")


@FUZZ
@given(mutated(BARS_SEARCH))
def test_bars_search_answer(body: Any) -> None:
    _converts_or_refuses(lambda b: _found(bars_found(parse_searchset(b), "t1", "9000000009")), body)


@FUZZ
@given(mutated(ERS_R4_SEARCH))
def test_ers_r4_search_answer(body: Any) -> None:
    ubrn = "000000070002"
    _converts_or_refuses(lambda b: _found(ers_r4_found(parse_r4_searchset(b), ubrn)), body)


@FUZZ
@given(mutated(ERS_STU3))
def test_ers_stu3_answer(body: Any) -> None:
    ubrn = ERS_STU3["id"]
    _converts_or_refuses(lambda b: _found(ers_stu3_found(parse_referral_request(b), ubrn)), body)


# ---- GP Connect (AllergyIntolerance) ------------------------------------------------

GPC_RECORD = _example("gpconnect/allergies_response1_STU3.json")
GPC_NHS = next(
    i["value"]
    for e in GPC_RECORD["entry"]
    if e["resource"]["resourceType"] == "Patient"
    for i in e["resource"]["identifier"]
    if i["system"] == "https://fhir.nhs.uk/Id/nhs-number"
)


@FUZZ
@given(mutated(GPC_RECORD), st.booleans())
def test_gpconnect_structured_record_answer(body: Any, include_resolved: bool) -> None:
    _converts_or_refuses(
        lambda b: (
            convert_record(parse_structured_record(b, GPC_NHS), GPC_NHS, include_resolved=include_resolved).allergies
        ),
        body,
    )


@pytest.mark.parametrize(
    "convert, body",
    [
        (lambda b: [m.patient for m in parse_search_bundle(b)], PDS_SEARCH),
        (convert_prescription, CPT_DETAILS),
        (lambda b: _found(bars_found(parse_searchset(b), "t1", "9000000009")), BARS_SEARCH),
        (lambda b: _found(ers_r4_found(parse_r4_searchset(b), "000000070002")), ERS_R4_SEARCH),
        (lambda b: _found(ers_stu3_found(parse_referral_request(b), ERS_STU3["id"])), ERS_STU3),
        (
            lambda b: convert_record(parse_structured_record(b, GPC_NHS), GPC_NHS, include_resolved=True).allergies,
            GPC_RECORD,
        ),
    ],
)
def test_unmutated_examples_convert(convert: Callable[[Any], list[dict[str, Any]]], body: Any) -> None:
    """The properties above are not vacuous: each example converts as it is."""
    resources = convert(body)
    assert resources
    for resource in resources:
        validate_r4(resource)
