"""The PDS client's pure parsers against NHS's own examples (read in place from shared/).

Files: nhs-examples/pds/{Patient*,PatientSearch*,errors/*} and nhs-examples/captured/pds_*
(each .json with a .headers.txt whose first line is the HTTP status line PDS sent). Errors
go through the same path as live traffic: NHSClient._error builds the UpstreamError from
status + body, and to_fhir_error maps it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from server.fhir import errors as fe
from server.nhs.client import ClientConfig, NHSClient
from server.nhs.errors import UpstreamBadResponse, UpstreamError, read_nhs_outcome
from server.nhs.nhs_number import NHS_NUMBER_SYSTEM, is_valid_nhs_number
from server.providers.upstream_errors import to_fhir_error
from server.sources.pds.client import PDSTooManyMatches, parse_patient, parse_search_bundle
from server.sources.pds.emulator_data import PATIENTS
from server.sources.pds.source import PDS
from tests.support.fhir_validation import validate_r4
from tests.support.shared import example_files

PATIENT_FILES = example_files("pds/Patient_*.json")
SEARCH_FILES = example_files("pds/PatientSearch*.json")
ERROR_FILES = example_files("pds/errors/*.json")
CAPTURED = example_files("captured/pds_*.json")

# HTTP status(es) PDS uses for each Spine code (shared/reference/nhs-apis.md 1.4, 1.5, 1.7),
# and what our client must see for each when the façade used its own (application) credentials.
PDS_STATUSES: dict[str, tuple[int, ...]] = {
    "ACCESS_DENIED": (401, 403),
    "ADDITIONAL_PROPERTIES": (400,),
    "FORBIDDEN_UPDATE": (403,),
    "INVALIDATED_RESOURCE": (404,),
    "INVALID_RESOURCE_ID": (400,),
    "INVALID_SEARCH_DATA": (400,),
    "INVALID_UPDATE": (400,),
    "INVALID_VALUE": (400, 403),
    "MISSING_VALUE": (400,),
    "PRECONDITION_FAILED": (412,),
    "RESOURCE_NOT_FOUND": (404,),
    "RESOURCE_VERSION_MISMATCH": (409,),
    "TOO_MANY_MATCHES": (200, 400),
    "UNSUPPORTED_SERVICE": (400,),
}
EXPECTED: dict[tuple[str, int], tuple[type[fe.FHIRError], int]] = {
    ("ACCESS_DENIED", 401): (fe.BadGateway, 502),
    ("ACCESS_DENIED", 403): (fe.BadGateway, 502),
    ("ADDITIONAL_PROPERTIES", 400): (fe.BadRequest, 400),
    ("FORBIDDEN_UPDATE", 403): (fe.BadGateway, 502),
    ("INVALIDATED_RESOURCE", 404): (fe.Gone, 410),
    ("INVALID_RESOURCE_ID", 400): (fe.BadRequest, 400),
    ("INVALID_SEARCH_DATA", 400): (fe.BadRequest, 400),
    ("INVALID_UPDATE", 400): (fe.BadRequest, 400),
    ("INVALID_VALUE", 400): (fe.BadRequest, 400),
    ("INVALID_VALUE", 403): (fe.BadGateway, 502),  # _max-results refused for app-restricted access
    ("MISSING_VALUE", 400): (fe.BadRequest, 400),
    ("PRECONDITION_FAILED", 412): (fe.PreconditionFailed, 412),
    ("RESOURCE_NOT_FOUND", 404): (fe.NotFound, 404),
    ("RESOURCE_VERSION_MISMATCH", 409): (fe.PreconditionFailed, 412),
    ("TOO_MANY_MATCHES", 200): (fe.TooManyMatches, 422),
    ("TOO_MANY_MATCHES", 400): (fe.TooManyMatches, 422),
    ("UNSUPPORTED_SERVICE", 400): (fe.BadRequest, 400),
}
# Captured answers whose diagnostics change the mapping: PDS refusing a header the façade
# sets itself (X-Request-ID) is our fault, a 502, not a 400 blaming the client.
EXPECTED_BY_CAPTURE: dict[str, tuple[type[fe.FHIRError], int]] = {
    "pds_get_missing_xrequestid.json": (fe.BadGateway, 502),
}
# With the caller's own (user) token, 401/403 are the caller's problem, not a gateway fault.
EXPECTED_WITH_USER_TOKEN = {
    ("ACCESS_DENIED", 401): (fe.Unauthorized, 401),
    ("ACCESS_DENIED", 403): (fe.Forbidden, 403),
    ("FORBIDDEN_UPDATE", 403): (fe.Forbidden, 403),
}


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def status_line(json_path: Path) -> int:
    headers = json_path.with_name(json_path.name.removesuffix(".json") + ".headers.txt")
    first = headers.read_text(encoding="utf-8").splitlines()[0]  # "HTTP/1.1 404 Not Found"
    return int(first.split()[1])


def client() -> NHSClient:
    """A PDS client as the PDS source wires it (its error-code table included)."""
    return NHSClient(
        None,
        ClientConfig(
            api="PDS",
            base_url="http://pds.invalid",  # type: ignore[arg-type]
            error_codes=PDS.error_codes,
        ),
    )


def upstream_error(status: int, body: Any, *, user_token_used: bool = False) -> UpstreamError:
    """The UpstreamError live traffic produces for this answer (PDS's 200 too-many form included)."""
    if 200 <= status < 300:
        with pytest.raises(PDSTooManyMatches) as caught:
            parse_search_bundle(body)
        return caught.value
    err = client()._error(status, {}, body, user_token_used)
    if err.nhs_code == "TOO_MANY_MATCHES":  # what PDSClient.search does with the 400 form
        return PDSTooManyMatches(
            err.api, "too many matches", status=err.status, nhs_code=err.nhs_code, nhs_display=err.nhs_display
        )
    return err


def assert_translated(mapped: fe.FHIRError, nhs_code: str) -> None:
    """Our outcome keeps the NHS code in details.coding and validates as R4."""
    outcome = mapped.outcome()
    validate_r4(outcome)
    codings = outcome["issue"][0].get("details", {}).get("coding", [])
    assert any(c.get("code") == nhs_code for c in codings), outcome
    assert outcome["issue"][0]["severity"] == "error"  # even where PDS said "information"


# -- Patients ---------------------------------------------------------------------------------


def _all_patient_bodies() -> list[tuple[str, dict[str, Any]]]:
    out = [(p.name, load(p)) for p in PATIENT_FILES]
    out += [(p.name, load(p)) for p in CAPTURED if status_line(p) == 200 and load(p)["resourceType"] == "Patient"]
    return out


@pytest.mark.parametrize("name, body", _all_patient_bodies(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_pds_patient_parses_and_validates(name: str, body: dict[str, Any]) -> None:
    patient = parse_patient(body)
    assert patient is body  # passed on as PDS sent it: nothing added, nothing removed
    assert is_valid_nhs_number(patient["id"])
    assert any(i["system"] == NHS_NUMBER_SYSTEM and i["value"] == patient["id"] for i in patient["identifier"])
    validate_r4(patient)


def test_restricted_examples_carry_their_security_label_and_no_location() -> None:
    restricted = [(n, b) for n, b in _all_patient_bodies() if "restricted" in n]
    assert restricted
    for _, body in restricted:
        assert body["meta"]["security"][0]["code"] == "R"
        assert not {"address", "telecom", "generalPractitioner", "contact"} & set(body)


def _all_search_bodies() -> list[tuple[str, dict[str, Any]]]:
    out = [(p.name, load(p)) for p in SEARCH_FILES]
    out += [(p.name, load(p)) for p in CAPTURED if status_line(p) == 200 and load(p)["resourceType"] == "Bundle"]
    return out


@pytest.mark.parametrize("name, body", _all_search_bodies(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_pds_searchset_parses_with_scores_in_order(name: str, body: dict[str, Any]) -> None:
    matches = parse_search_bundle(body)
    entries = body.get("entry", [])
    assert [m.patient["id"] for m in matches] == [e["resource"]["id"] for e in entries]
    assert [m.score for m in matches] == [e["search"]["score"] for e in entries]
    assert body.get("total", len(entries)) == len(matches)
    for match in matches:
        validate_r4(match.patient)
    validate_r4(body)


def test_a_related_person_bundle_is_not_a_patient_search() -> None:
    (bundle,) = example_files("pds/RelatedPersonBundle.json")
    with pytest.raises(UpstreamBadResponse):
        parse_search_bundle(load(bundle))


# -- errors -----------------------------------------------------------------------------------


def _error_cases() -> list[tuple[str, int, Any]]:
    cases = []
    for path in ERROR_FILES:
        code = read_nhs_outcome(load(path)).code
        assert code in PDS_STATUSES, f"{path.name}: no expected status for {code}"
        cases += [(path.name, status, load(path)) for status in PDS_STATUSES[code]]
    return cases


@pytest.mark.parametrize("name, status, body", _error_cases(), ids=lambda v: str(v) if not isinstance(v, dict) else "")
def test_every_pds_error_example_maps_to_the_right_status(name: str, status: int, body: Any) -> None:
    outcome = read_nhs_outcome(body)
    assert outcome.code == name.removesuffix(".json")
    assert outcome.display and outcome.issue_code
    mapped = to_fhir_error(upstream_error(status, body))
    expected_type, expected_status = EXPECTED[(outcome.code, status)]
    assert (type(mapped), mapped.status) == (expected_type, expected_status)
    assert_translated(mapped, outcome.code)
    if (outcome.code, status) in EXPECTED_WITH_USER_TOKEN:
        as_user = to_fhir_error(upstream_error(status, body, user_token_used=True))
        assert (type(as_user), as_user.status) == EXPECTED_WITH_USER_TOKEN[(outcome.code, status)]


def _captured_errors() -> list[Path]:
    return [p for p in CAPTURED if status_line(p) >= 300]


@pytest.mark.parametrize("path", _captured_errors(), ids=lambda p: p.name)
def test_every_captured_pds_error_maps_through_with_its_real_status(path: Path) -> None:
    body = load(path)
    status = status_line(path)
    code = read_nhs_outcome(body).code
    assert code is not None
    mapped = to_fhir_error(upstream_error(status, body))
    assert (type(mapped), mapped.status) == EXPECTED_BY_CAPTURE.get(path.name, EXPECTED[(code, status)])
    assert_translated(mapped, code)


def test_captured_statuses_are_the_ones_the_reference_documents() -> None:
    seen = {(read_nhs_outcome(load(p)).code, status_line(p)) for p in _captured_errors()}
    assert ("TOO_MANY_MATCHES", 400) in seen  # the sandbox's 400 form really happens
    assert all(status in PDS_STATUSES[code] for code, status in seen)


# -- the emulator's synthetic data has PDS's shape --------------------------------------------


@pytest.mark.parametrize("nhs", sorted(PATIENTS))
def test_emulator_patients_parse_and_validate_like_pds_ones(nhs: str) -> None:
    patient = parse_patient(PATIENTS[nhs])
    assert patient["id"] == nhs and is_valid_nhs_number(nhs)
    assert patient["meta"]["security"][0]["code"] in ("U", "R", "V")
    validate_r4(patient)
