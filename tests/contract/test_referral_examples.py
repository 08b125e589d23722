"""Contract: the NHS's own BaRS and e-RS examples, read in place, through the façade's
parsers and mappings. What the façade does with each file is stated per test."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pydantic
import pytest

from server.nhs.client import ClientConfig, NHSClient
from server.nhs.entry_validation import r4_problems
from server.nhs.errors import UpstreamBadResponse
from server.nhs.nhs_number import NHS_NUMBER_SYSTEM
from server.providers.upstream_errors import to_fhir_error
from server.sources.referrals.bars_client import parse_searchset, parse_service_request
from server.sources.referrals.ers_client import parse_r4_searchset, parse_referral_request
from server.sources.referrals.ers_mapping import referral_request_to_service_request
from server.sources.referrals.ids import BarsId, ErsR4Id, ErsStu3Id, issue_id, parse_id
from server.sources.referrals.service_request_r4 import UBRN_SYSTEM, carries_ubrn, normalise_service_request, ubrns_of
from tests.support.fhir_validation import validate_r4
from tests.support.shared import example_files


def load(path: Path) -> Any:
    return json.loads(path.read_text())


def local_references(value: Any) -> list[str]:
    """Every `#id` reference anywhere in a resource (pointers into `contained`)."""
    if isinstance(value, dict):
        ref = value.get("reference")
        found = [ref] if isinstance(ref, str) and ref.startswith("#") else []
        return found + [r for v in value.values() for r in local_references(v)]
    if isinstance(value, list):
        return [r for v in value for r in local_references(v)]
    return []


def _assert_serves(resource: dict[str, Any], nhs: str) -> None:
    assert r4_problems(resource) == []
    validate_r4(resource)
    assert resource["subject"]["reference"] == f"Patient/{nhs}"
    assert resource["subject"]["identifier"] == {"system": NHS_NUMBER_SYSTEM, "value": nhs}


# ---- BaRS ---------------------------------------------------------------------------


def test_bars_search_example_is_malformed_and_is_read_with_a_count_of_unwrapped_entries() -> None:
    """The BaRS search example puts ServiceRequest fields straight into entry[] (no
    `resource`). As published it is not a valid R4 Bundle; the façade reads each such
    entry as the resource it plainly is, counts it (the provider tells the client with a
    warning), repairs basedOn (object -> list) and PatientInstruction (-> patientInstruction),
    and serves a valid R4 ServiceRequest for the patient it asked about."""
    (path,) = example_files("bars/ServiceRequest_search_GET-success.json")
    body = load(path)
    assert "resource" not in body["entry"][0]
    with pytest.raises(pydantic.ValidationError):
        validate_r4(body)  # the example itself is not a valid Bundle
    searchset = parse_searchset(body)
    assert searchset.unwrapped == 1
    (upstream,) = searchset.resources
    assert "search" not in upstream  # the entry's search element is not part of the resource
    facade_id = issue_id(BarsId("sandbox", upstream["id"]))
    assert facade_id == f"bars.sandbox.{upstream['id']}"
    resource, repairs = normalise_service_request(upstream, facade_id=facade_id, nhs_number="9000000009")
    assert sorted(repairs)[-2:] == ["renamed PatientInstruction to patientInstruction", "wrapped basedOn in a list"]
    assert resource["patientInstruction"].startswith("ADVICE GIVEN")
    _assert_serves(resource, "9000000009")
    assert parse_id(resource["id"]) == BarsId("sandbox", upstream["id"])
    # Its references point into a booking message the façade never receives (urn:uuid:)
    # or are bare ids: none is served. supportingInfo keeps its display; the others,
    # with nothing else to say, go (issue 10).
    assert "urn:" not in json.dumps(resource)
    assert resource["supportingInfo"] == [{"display": upstream["supportingInfo"][0]["display"]}]
    for gone in ("basedOn", "encounter", "requester", "performer", "locationReference"):
        assert gone not in resource, gone
    assert all(r.startswith("dropped ") for r in repairs if not r.startswith(("renamed", "wrapped")))


def test_bars_searchset_entry_that_is_neither_wrapped_nor_a_resource_is_rejected() -> None:
    (path,) = example_files("bars/ServiceRequest_search_GET-success.json")
    body = load(path)
    body["entry"] = [{"search": {"mode": "match"}}]
    with pytest.raises(UpstreamBadResponse):
        parse_searchset(body)


def test_bars_read_example_names_no_patient_so_it_is_served_only_with_the_patient_its_id_carries() -> None:
    """The example's subject is a urn:uuid reference into a message the façade never sees.
    Without a patient (a `bars.` id, read as sent) it has no subject rather than a dangling
    one, and fails validation (a read answers 502); with the patient a `barsp.` id carries
    (issue 10), it is served for that patient, as the patient's search serves it."""
    (path,) = example_files("bars/ServiceRequest_read_GET-success.json")
    upstream = parse_service_request(load(path))
    resource, repairs = normalise_service_request(upstream, facade_id=f"bars.sandbox.{upstream['id']}")
    assert "wrapped basedOn in a list" in repairs
    assert "subject" not in resource and r4_problems(resource) != []
    facade_id = issue_id(BarsId("sandbox", upstream["id"], "9000000009"))
    assert facade_id == f"barsp.sandbox.9000000009.{upstream['id']}"
    assert parse_id(facade_id) == BarsId("sandbox", upstream["id"], "9000000009")
    resource, _ = normalise_service_request(upstream, facade_id=facade_id, nhs_number="9000000009")
    _assert_serves(resource, "9000000009")
    assert "urn:" not in json.dumps(resource)
    assert r4_problems(upstream) != []  # as published it is not valid R4


# ---- e-RS R4 (A041) -------------------------------------------------------------------


@pytest.mark.parametrize("path", example_files("ers/ServiceRequest_search_*.json"), ids=lambda p: p.name)
def test_ers_r4_searchsets_map_to_valid_service_requests_keeping_the_ubrn(path: Path) -> None:
    body = load(path)
    resources = parse_r4_searchset(body)
    assert len(resources) == body["total"]
    for upstream in resources:
        (ubrn,) = ubrns_of(upstream)
        facade_id = issue_id(ErsR4Id(ubrn, upstream["id"]))
        assert facade_id is not None and parse_id(facade_id) == ErsR4Id(ubrn, upstream["id"])
        resource, repairs = normalise_service_request(
            upstream, facade_id=facade_id, ubrn=ubrn, upstream_request_id=upstream["id"]
        )
        assert repairs == []
        _assert_serves(resource, "9912003888")
        assert {"system": UBRN_SYSTEM, "value": ubrn} in resource["identifier"]
        assert {"system": "https://fhir.nhs.uk/Id/ers-request-id", "value": upstream["id"]} in resource["identifier"]
        assert resource["meta"]["versionId"] == "5"


def test_captured_ers_answer_for_070000_carries_070002_referrals_and_is_left_out() -> None:
    """Captured from the local e-RS sandbox: asked for UBRN 000000070000 it answered with
    the 000000070002 bundle (its self link says so). The façade does not attach the asked
    UBRN to referrals carrying another one: they fail carries_ubrn and are left out with a
    warning by the provider."""
    (path,) = example_files("captured/ers_servicerequest_000000070000.json")
    resources = parse_r4_searchset(load(path))
    assert [ubrns_of(r) for r in resources] == [["000000070002"], ["000000070002"]]
    assert not any(carries_ubrn(r, "000000070000") for r in resources)
    assert all(carries_ubrn(r, "000000070002") for r in resources)


def test_captured_ers_headers_mirror_the_request_ids() -> None:
    (path,) = example_files("captured/ers_servicerequest_000000070000.headers.txt")
    text = path.read_text()
    assert "content-type: application/fhir+json" in text
    assert "X-Request-ID:" in text and "X-Correlation-ID:" in text


# ---- e-RS STU3 (A005, app-restricted route) -------------------------------------------


@pytest.mark.parametrize("path", example_files("ers/stu3_retrieveReferralRequest_*.json"), ids=lambda p: p.name)
def test_ers_stu3_referral_requests_map_to_valid_r4(path: Path) -> None:
    stu3 = parse_referral_request(load(path))
    facade_id = issue_id(ErsStu3Id(stu3["id"]))
    assert facade_id == f"ers3.{stu3['id']}"
    resource = referral_request_to_service_request(stu3, facade_id)
    _assert_serves(resource, "9912003888")  # legacy http://fhir.nhs.net/Id/nhs-number rewritten
    assert resource["identifier"][0] == {"system": UBRN_SYSTEM, "value": stu3["id"]}
    assert {"system": "https://fhir.nhs.uk/Id/ers-request-id", "value": stu3["identifier"][0]["value"]} in resource[
        "identifier"
    ]
    assert "contained" not in resource
    assert local_references(stu3) and local_references(resource) == []
    if "specialty" in stu3:
        assert resource["performerType"] == stu3["specialty"]
    assert resource["category"][0]["coding"][0]["code"] == "referral"
    assert resource["status"] == "active" and resource["intent"] == "plan"


def test_ers_stu3_worklist_is_not_a_referral_request_and_is_rejected() -> None:
    """The A008 worklist is a List of ReferralRequest references, not a referral: the
    façade does not use A008, and would reject it as an A005 answer. Its items name
    UBRNs that the façade can read as ers3.<UBRN>."""
    (path,) = example_files("ers/stu3_retrieveWorklist_responses_AwaitingBooking.json")
    body = load(path)
    with pytest.raises(UpstreamBadResponse):
        parse_referral_request(body)
    ubrns = [e["item"]["reference"].split("/")[1] for e in body["entry"]]
    assert [parse_id(issue_id(ErsStu3Id(u)) or "") for u in ubrns] == [ErsStu3Id(u) for u in ubrns]


# ---- e-RS errors -> client statuses ----------------------------------------------------

EXPECTED = {  # e-RS status -> (client status when the caller's token was used, when it was not)
    400: (400, 400),
    401: (401, 502),
    403: (403, 502),
    404: (404, 404),
    429: (503, 503),
    500: (502, 502),
    503: (503, 503),
}


@pytest.mark.parametrize("status", sorted(EXPECTED))
async def test_ers_operation_outcomes_map_to_honest_client_statuses(status: int) -> None:
    """Each e-RS OperationOutcome, typed by the shared NHSClient and mapped by
    to_fhir_error. A041 is user-restricted, so 401/403 are the caller's (401/403); with
    the façade's own credentials they would be the façade's problem (502)."""
    (path,) = example_files(f"ers/OperationOutcome-{status}.json")
    body = load(path)
    async with aiohttp.ClientSession() as session:
        client = NHSClient(session, ClientConfig(api="e-RS", base_url="http://unused.invalid"))
        for user_token_used, expected in zip((True, False), EXPECTED[status]):
            err = client._error(status, {}, body, user_token_used)
            mapped = to_fhir_error(err)
            assert mapped.status == expected, (status, user_token_used)
            validate_r4(mapped.outcome())
            if status != 503 or err.nhs_code:
                assert (
                    mapped.outcome()["issue"][0]["details"]["coding"][0]["code"]
                    == body["issue"][0]["details"]["coding"][0]["code"]
                )
            if expected == 503:
                assert "Retry-After" in mapped.headers
