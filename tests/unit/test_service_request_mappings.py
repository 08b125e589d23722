"""Property tests for the ServiceRequest ids and mappings: generated inputs give valid
R4 that keeps the NHS identifiers."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from fhir.resources.R4B.servicerequest import ServiceRequest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.fhir.ids import is_fhir_id
from server.nhs.entry_validation import r4_problems
from server.nhs.nhs_number import NHS_NUMBER_SYSTEM, check_digit, is_valid_nhs_number
from server.sources.referrals.ers_mapping import STATUS_MAP, referral_request_to_service_request
from server.sources.referrals.ids import (
    UPSTREAM_ID_RE,
    BarsId,
    ErsR4Id,
    ErsStu3Id,
    issue_id,
    parse_id,
)
from server.sources.referrals.service_request_r4 import (
    LEGACY_NHS_NUMBER_SYSTEM,
    UBRN_SYSTEM,
    normalise_service_request,
    repair_shape,
    ubrns_of,
)

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

fhir_ids = st.from_regex(r"\A[A-Za-z0-9\-.]{1,64}\Z")
target_keys = st.from_regex(r"\A[A-Za-z0-9]{1,16}\Z")
ubrns = st.from_regex(r"\A[0-9]{12}\Z")


@st.composite
def nhs_numbers(draw: st.DrawFn) -> str:
    nine = draw(st.from_regex(r"\A[0-9]{9}\Z"))
    digit = check_digit(nine)
    if digit is None:
        nine = "900000000"
        digit = check_digit(nine)
    return f"{nine}{digit}"


sources = st.one_of(
    st.builds(BarsId, target_keys, fhir_ids),
    st.builds(ErsR4Id, ubrns, fhir_ids),
    st.builds(ErsStu3Id, ubrns),
)


@SETTINGS
@given(sources)
def test_issued_ids_are_fhir_ids_that_parse_back(source: Any) -> None:
    issued = issue_id(source)
    if issued is None:  # only for an upstream id that is no plain path segment, or too long an encoding
        assert not isinstance(source, ErsStu3Id)
        head = f"bars.{source.target}" if isinstance(source, BarsId) else f"ers.{source.ubrn}"
        assert not UPSTREAM_ID_RE.match(source.upstream_id) or len(f"{head}.{source.upstream_id}") > 64
        return
    assert is_fhir_id(issued)
    assert parse_id(issued) == source


# Random text almost never parses, which would leave the `parsed is not None` branch unexercised:
# issued ids, and issued ids with a character cut or added, make sure it runs.
_issued = sources.map(issue_id).filter(lambda i: i is not None)
_id_like_text = st.one_of(
    st.text(max_size=80), _issued, _issued.map(lambda i: i[:-1]), st.tuples(_issued, st.text(max_size=3)).map("".join)
)


@SETTINGS
@given(_id_like_text)
def test_parse_id_never_raises_and_only_accepts_what_it_could_issue(text: str) -> None:
    parsed = parse_id(text)
    if parsed is not None:
        assert issue_id(parsed) == text


def test_ids_the_facade_never_issued_are_not_parsed() -> None:
    for text in ("9000000009", "bars", "bars.sandbox", "ers.123.r.x", "ers3.12345", "xyz.a.b", "bars.bad_key.x"):
        assert parse_id(text) is None


@pytest.mark.parametrize(
    "text",
    [
        "bars.sandbox..",
        "bars.sandbox...",
        "bars.sandbox.a..b",
        "bars.sandbox..a",
        "bars.sandbox.a.",
        "ers.000000070000..",
        "ers.000000070000...",
        "bars.sandbox.abc\n",
        "ers3.000000070000\n",
    ],
)
def test_ids_whose_upstream_part_is_a_dot_segment_or_has_empty_parts_are_not_parsed(text: str) -> None:
    """`bars.sandbox...` used to read BaRS `ServiceRequest/..`: the API's base, another path."""
    assert parse_id(text) is None


@pytest.mark.parametrize("upstream_id", [".", "..", "a..b", ".a", "a.", ""])
def test_such_upstream_ids_are_never_issued(upstream_id: str) -> None:
    assert issue_id(BarsId("sandbox", upstream_id)) is None
    assert issue_id(ErsR4Id("000000070000", upstream_id)) is None


codings = st.builds(
    lambda s, c: {"system": s, "code": c},
    st.sampled_from(["http://snomed.info/sct", "https://fhir.nhs.uk/CodeSystem/x"]),
    st.from_regex(r"\A[a-z0-9-]{1,12}\Z"),
)
concepts = st.builds(lambda cs: {"coding": cs}, st.lists(codings, min_size=1, max_size=2))
references = st.builds(lambda i: {"reference": f"urn:uuid:{i}"}, st.uuids())


@st.composite
def subjects(draw: st.DrawFn) -> tuple[dict[str, Any], str | None]:
    """(subject, the NHS number it names or None)."""
    nhs = draw(nhs_numbers())
    kind = draw(st.sampled_from(["identifier", "legacy", "literal", "urn"]))
    if kind == "identifier":
        return {"identifier": {"system": NHS_NUMBER_SYSTEM, "value": nhs}}, nhs
    if kind == "legacy":
        return {"identifier": {"system": LEGACY_NHS_NUMBER_SYSTEM, "value": nhs}}, nhs
    if kind == "literal":
        return {"reference": f"Patient/{nhs}"}, nhs
    return draw(references), None


@st.composite
def upstream_service_requests(draw: st.DrawFn) -> tuple[dict[str, Any], str | None]:
    subject, nhs = draw(subjects())
    resource: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "id": draw(fhir_ids),
        "status": draw(st.sampled_from(["draft", "active", "on-hold", "revoked", "completed"])),
        "intent": draw(st.sampled_from(["proposal", "plan", "order"])),
        "subject": subject,
    }
    if draw(st.booleans()):
        resource["identifier"] = [{"system": UBRN_SYSTEM, "value": draw(ubrns)}]
    if draw(st.booleans()):
        resource["category"] = draw(st.lists(concepts, min_size=1, max_size=2))
    if draw(st.booleans()):  # BaRS slip: a repeating element sent as one object
        resource["basedOn"] = draw(references)
    if draw(st.booleans()):  # BaRS slip: element name in the wrong case
        resource["PatientInstruction"] = draw(st.text(min_size=1, max_size=30).filter(str.strip))
    if draw(st.booleans()):
        resource["authoredOn"] = draw(st.dates()).isoformat()
    return resource, nhs


@SETTINGS
@given(upstream_service_requests(), st.one_of(st.none(), nhs_numbers()))
def test_normalised_service_requests_validate_and_keep_nhs_identifiers(
    generated: tuple[dict[str, Any], str | None], asked: str | None
) -> None:
    upstream, own_nhs = generated
    original = copy.deepcopy(upstream)
    resource, _ = normalise_service_request(upstream, facade_id="bars.t1.x", nhs_number=asked)
    assert upstream == original  # pure: the input is not modified
    assert resource["id"] == "bars.t1.x"
    assert ubrns_of(resource) == ubrns_of(original)
    assert "urn:" not in json.dumps(resource)  # nothing dangles (issue 10)
    expected = own_nhs or asked
    if expected:
        ServiceRequest.model_validate(resource)
        assert resource["subject"] == {
            "reference": f"Patient/{expected}",
            "identifier": {"system": NHS_NUMBER_SYSTEM, "value": expected},
        }
    else:  # no NHS number anywhere: no subject rather than a dangling one, and not valid R4
        assert "subject" not in resource
        assert r4_problems(resource) != []
    assert LEGACY_NHS_NUMBER_SYSTEM not in json.dumps(resource)


@SETTINGS
@given(upstream_service_requests(), ubrns)
def test_a_missing_ubrn_is_added_and_an_existing_one_kept(
    generated: tuple[dict[str, Any], str | None], ubrn: str
) -> None:
    upstream, own_nhs = generated
    resource, _ = normalise_service_request(upstream, facade_id="ers.x", ubrn=ubrn, upstream_request_id="r.1")
    assert ubrn in ubrns_of(resource)
    assert set(ubrns_of(upstream)) <= set(ubrns_of(resource))
    assert {"system": "https://fhir.nhs.uk/Id/ers-request-id", "value": "r.1"} in resource["identifier"]
    if own_nhs:
        ServiceRequest.model_validate(resource)


def test_repair_shape_leaves_valid_shapes_alone_and_does_not_rename_over_an_existing_element() -> None:
    valid = {"resourceType": "ServiceRequest", "basedOn": [{"reference": "x"}], "patientInstruction": "a"}
    assert repair_shape(valid) == (valid, [])
    both = {"patientInstruction": "a", "PatientInstruction": "b"}
    repaired, repairs = repair_shape(both)
    assert repaired == both and repairs == []


@st.composite
def stu3_referral_requests(draw: st.DrawFn) -> dict[str, Any]:
    ubrn = draw(ubrns)
    nhs = draw(nhs_numbers())
    stu3: dict[str, Any] = {
        "resourceType": "ReferralRequest",
        "id": ubrn,
        "meta": {"versionId": str(draw(st.integers(1, 99)))},
        "status": draw(st.sampled_from(sorted(STATUS_MAP))),
        "intent": draw(st.sampled_from(["proposal", "plan", "order"])),
        "subject": {
            "identifier": {"system": draw(st.sampled_from([LEGACY_NHS_NUMBER_SYSTEM, NHS_NUMBER_SYSTEM])), "value": nhs}
        },
        "contained": [{"resourceType": "List", "id": "shortlist", "status": "current", "mode": "snapshot"}],
        "extension": [
            {
                "url": "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-eRS-ReferralShortlist-1",
                "valueReference": {"reference": "#shortlist"},
            },
            {
                "url": "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-eRS-ReferralPriority-1",
                "valueCodeableConcept": draw(concepts),
            },
        ],
        "supportingInfo": [{"reference": "#shortlist"}],
    }
    if draw(st.booleans()):
        stu3["specialty"] = draw(concepts)
    if draw(st.booleans()):
        stu3["serviceRequested"] = draw(st.lists(concepts, min_size=1, max_size=3))
    if draw(st.booleans()):
        stu3["description"] = draw(st.text(min_size=1, max_size=40).filter(str.strip))
    if draw(st.booleans()):
        stu3["requester"] = {"agent": {"reference": "Practitioner/1"}, "onBehalfOf": {"reference": "Organization/2"}}
    if draw(st.booleans()):
        stu3["priority"] = draw(st.sampled_from(["routine", "urgent", "asap", "stat"]))
    if draw(st.booleans()):
        stu3["recipient"] = [{"reference": "Organization/3"}]
    return stu3


@SETTINGS
@given(stu3_referral_requests())
def test_stu3_referral_requests_map_to_valid_r4_service_requests(stu3: dict[str, Any]) -> None:
    resource = referral_request_to_service_request(stu3, f"ers3.{stu3['id']}")
    assert r4_problems(resource) == []
    ServiceRequest.model_validate(resource)
    assert ubrns_of(resource) == [stu3["id"]]
    nhs = stu3["subject"]["identifier"]["value"]
    assert resource["subject"]["reference"] == f"Patient/{nhs}" and is_valid_nhs_number(nhs)
    assert resource["status"] == STATUS_MAP[stu3["status"]]
    assert "contained" not in resource and "#shortlist" not in json.dumps(resource)
    if stu3.get("serviceRequested"):
        assert resource["code"] == stu3["serviceRequested"][0]
        assert resource.get("orderDetail", []) == stu3["serviceRequested"][1:]
    if stu3.get("description"):
        assert {"text": stu3["description"]} in resource["note"]
    # e-RS's literal Practitioner/Organization references would resolve against the
    # façade's base, which serves neither: without identifier or display they go (issue 10).
    assert "requester" not in resource and "performer" not in resource


def test_r4_problems_name_paths_but_never_values() -> None:
    marker = "SECRET-PATIENT-NAME"
    problems = r4_problems(
        {
            "resourceType": "ServiceRequest",
            "status": "active",
            "intent": "order",
            "subject": {"reference": "Patient/9000000009"},
            "note": marker,
        }
    )
    assert problems and all(marker not in p for p in problems)
    assert problems[0].startswith("note")
    dated = r4_problems(
        {
            "resourceType": "ServiceRequest",
            "status": "active",
            "intent": "order",
            "subject": {"reference": "Patient/9000000009"},
            "authoredOn": f"2020-{marker}",
        }
    )
    assert dated and dated[0].startswith("authoredOn") and all(marker not in p for p in dated)
    assert r4_problems({"resourceType": "NotAType"}) == ["resourceType: NotAType is not an R4 resource type"]
    assert r4_problems({}) == ["resourceType: missing or not a resource type"]


@pytest.mark.parametrize("contained", [[{"resourceType": "NotAType"}], [{"resourceType": None}]])
def test_r4_problems_report_contained_resources_of_no_known_type(contained: list[object]) -> None:
    # fhir.resources raises KeyError for an unknown contained type: it escaped as a 500.
    problems = r4_problems(
        {
            "resourceType": "ServiceRequest",
            "status": "active",
            "intent": "order",
            "subject": {"reference": "Patient/9000000009"},
            "contained": contained,
        }
    )
    assert problems and problems[0].startswith("ServiceRequest")
