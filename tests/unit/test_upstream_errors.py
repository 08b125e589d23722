"""to_fhir_error: the one mapping of upstream failures to the client's status and outcome."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.fhir import errors as fe
from server.fhir.outcome import SPINE_ERROR_SYSTEM
from server.nhs.error_codes import CodeMeaning
from server.nhs.errors import (
    UpstreamBadResponse,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
    read_nhs_outcome,
)
from server.providers.upstream_errors import to_fhir_error
from server.sources.pds.client import PDSTooManyMatches
from tests.support.fhir_validation import validate_r4


@pytest.mark.parametrize(
    "err, expected_type, status",
    [
        (UpstreamTimeout("PDS", "timed out"), fe.GatewayTimeout, 504),
        (UpstreamTimeout("PDS", "HTTP 504", status=504), fe.GatewayTimeout, 504),
        (UpstreamRateLimited("PDS", "HTTP 429", status=429), fe.ServiceUnavailable, 503),
        (UpstreamUnavailable("PDS", "HTTP 500", status=500), fe.BadGateway, 502),
        (UpstreamUnavailable("PDS", "HTTP 501", status=501), fe.BadGateway, 502),
        (UpstreamUnavailable("PDS", "HTTP 503", status=503), fe.ServiceUnavailable, 503),
        (UpstreamUnavailable("PDS", "connection failed"), fe.ServiceUnavailable, 503),
        (UpstreamBadResponse("PDS", "not JSON"), fe.BadGateway, 502),
        (UpstreamRejected("PDS", "HTTP 404", status=404, nhs_code="RESOURCE_NOT_FOUND"), fe.NotFound, 404),
        (
            UpstreamRejected("PDS", "HTTP 404", status=404, nhs_code="INVALIDATED_RESOURCE", meaning=CodeMeaning.GONE),
            fe.Gone,
            410,
        ),
        (UpstreamRejected("PDS", "HTTP 400", status=400, nhs_code="INVALID_RESOURCE_ID"), fe.BadRequest, 400),
        (
            UpstreamRejected(
                "PDS", "HTTP 400", status=400, nhs_code="TOO_MANY_MATCHES", meaning=CodeMeaning.TOO_MANY_MATCHES
            ),
            fe.TooManyMatches,
            422,
        ),
        (PDSTooManyMatches("PDS", "too many", status=200, nhs_code="TOO_MANY_MATCHES"), fe.TooManyMatches, 422),
        (UpstreamRejected("PDS", "HTTP 401", status=401), fe.BadGateway, 502),
        (UpstreamRejected("PDS", "HTTP 403", status=403), fe.BadGateway, 502),
        (UpstreamRejected("PDS", "HTTP 401", status=401, user_token_used=True), fe.Unauthorized, 401),
        (UpstreamRejected("PDS", "HTTP 403", status=403, user_token_used=True), fe.Forbidden, 403),
        (UpstreamRejected("PDS", "HTTP 408", status=408), fe.GatewayTimeout, 504),
        (UpstreamRejected("PDS", "HTTP 409", status=409), fe.PreconditionFailed, 412),
        (UpstreamRejected("PDS", "HTTP 412", status=412), fe.PreconditionFailed, 412),
        (UpstreamRejected("PDS", "HTTP 422", status=422), fe.Unprocessable, 422),
        (UpstreamRejected("GP Connect", "HTTP 422", status=422, nhs_code="INVALID_PARAMETER"), fe.Unprocessable, 422),
        (UpstreamRejected("PDS", "HTTP 410", status=410), fe.Gone, 410),
        (UpstreamRejected("e-RS", "HTTP 410", status=410, nhs_code="NO_LONGER_AVAILABLE"), fe.Gone, 410),
        # NHS refusing a header the façade sends itself is our fault, not the client's.
        (
            UpstreamRejected(
                "PDS",
                "HTTP 400",
                status=400,
                nhs_code="MISSING_VALUE",
                diagnostics="Invalid request with error - X-Request-ID header must be supplied to access this resource",
            ),
            fe.BadGateway,
            502,
        ),
        (
            UpstreamRejected(
                "PDS",
                "HTTP 400",
                status=400,
                nhs_code="INVALID_VALUE",
                diagnostics="Invalid value - 'abc' in header 'X-Request-ID'",
            ),
            fe.BadGateway,
            502,
        ),
        # ... but a header the client sent us and we passed on stays the client's 400.
        (
            UpstreamRejected(
                "PDS",
                "HTTP 400",
                status=400,
                nhs_code="MISSING_VALUE",
                diagnostics="Missing value in header 'NHSD-Session-URID'",
            ),
            fe.BadRequest,
            400,
        ),
        (
            UpstreamRejected(
                "e-RS",
                "HTTP 400",
                status=400,
                nhs_code="INVALID_VALUE",
                diagnostics="Invalid value in header 'NHSD-eRS-Business-Function'",
            ),
            fe.BadRequest,
            400,
        ),
        # A missing search value is not about headers.
        (
            UpstreamRejected(
                "PDS",
                "HTTP 400",
                status=400,
                nhs_code="MISSING_VALUE",
                diagnostics="Not enough search parameters were provided",
            ),
            fe.BadRequest,
            400,
        ),
        (UpstreamRejected("PDS", "no status"), fe.BadGateway, 502),
        (UpstreamError("PDS", "HTTP 302", status=302), fe.BadGateway, 502),
    ],
)
def test_mapping_table(err: UpstreamError, expected_type: type, status: int) -> None:
    mapped = to_fhir_error(err)
    assert type(mapped) is expected_type
    assert mapped.status == status
    validate_r4(mapped.outcome())


def test_retry_after_passed_on_or_defaulted() -> None:
    assert to_fhir_error(UpstreamUnavailable("PDS", "HTTP 503", status=503, retry_after=7.4)).headers == {
        "Retry-After": "7"
    }
    assert to_fhir_error(UpstreamTimeout("PDS", "timed out")).headers == {"Retry-After": "5"}
    assert to_fhir_error(UpstreamRateLimited("PDS", "429", status=429, retry_after=0)).headers == {"Retry-After": "1"}


def test_unauthorized_user_token_carries_www_authenticate() -> None:
    mapped = to_fhir_error(UpstreamRejected("PDS", "HTTP 401", status=401, user_token_used=True))
    assert mapped.headers["WWW-Authenticate"].startswith("Bearer")


def test_nhs_code_stays_visible_in_details() -> None:
    mapped = to_fhir_error(
        UpstreamRejected(
            "PDS",
            "HTTP 404",
            status=404,
            nhs_code="RESOURCE_NOT_FOUND",
            nhs_display="Resource not found",
            diagnostics="no such patient",
        )
    )
    issue = mapped.outcome()["issue"][0]
    assert issue["details"]["coding"] == [
        {"system": SPINE_ERROR_SYSTEM, "code": "RESOURCE_NOT_FOUND", "display": "Resource not found"}
    ]
    assert "no such patient" in issue["diagnostics"]
    assert issue["severity"] == "error" and issue["code"] == "not-found"


@given(
    status=st.integers(100, 599),
    code=st.one_of(
        st.none(),
        st.sampled_from(["RESOURCE_NOT_FOUND", "INVALIDATED_RESOURCE", "TOO_MANY_MATCHES", "ACCESS_DENIED", "X"]),
    ),
    user=st.booleans(),
    cls=st.sampled_from([UpstreamRejected, UpstreamUnavailable, UpstreamError]),
    meaning=st.one_of(st.none(), st.sampled_from(CodeMeaning)),
)
def test_every_upstream_failure_maps_to_an_error_status_never_500(
    status: int, code: str | None, user: bool, cls: type, meaning: CodeMeaning | None
) -> None:
    mapped = to_fhir_error(
        cls("PDS", f"HTTP {status}", status=status, nhs_code=code, user_token_used=user, meaning=meaning)
    )
    assert 400 <= mapped.status < 600 and mapped.status != 500
    assert mapped.outcome()["issue"][0]["severity"] == "error"


@pytest.mark.parametrize(
    "system",
    [
        "https://fhir.nhs.uk/CodeSystem/http-error-codes",
        "https://fhir.nhs.uk/STU3/CodeSystem/Spine-ErrorOrWarningCode-1",
    ],
)
def test_an_nhs_code_keeps_the_code_system_the_api_sent(system: str) -> None:
    body = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "not-found",
                "details": {"coding": [{"system": system, "code": "NOT_FOUND", "display": "Not found"}]},
            }
        ],
    }
    outcome = read_nhs_outcome(body)
    assert (outcome.system, outcome.code) == (system, "NOT_FOUND")
    mapped = to_fhir_error(
        UpstreamRejected(
            "CPT", "HTTP 404", status=404, nhs_code=outcome.code, nhs_display=outcome.display, nhs_system=outcome.system
        )
    )
    assert mapped.outcome()["issue"][0]["details"]["coding"] == [
        {"system": system, "code": "NOT_FOUND", "display": "Not found"}
    ]


def test_an_nhs_code_without_a_system_is_taken_as_spine() -> None:
    mapped = to_fhir_error(UpstreamRejected("PDS", "HTTP 404", status=404, nhs_code="RESOURCE_NOT_FOUND"))
    assert mapped.outcome()["issue"][0]["details"]["coding"][0]["system"] == SPINE_ERROR_SYSTEM


def test_read_nhs_outcome_tolerates_odd_bodies() -> None:
    empty = read_nhs_outcome(None)
    assert empty.code is None and empty.diagnostics is None
    assert read_nhs_outcome({"resourceType": "Bundle"}).code is None
    assert read_nhs_outcome({"resourceType": "OperationOutcome", "issue": []}).code is None
    assert read_nhs_outcome({"resourceType": "OperationOutcome", "issue": ["x"]}).code is None
    assert (
        read_nhs_outcome(
            {"resourceType": "OperationOutcome", "issue": [{"code": "value", "details": {"coding": ["x"]}}]}
        ).issue_code
        == "value"
    )


def test_410_and_422_keep_the_nhs_code_and_diagnostics() -> None:
    for status in (410, 422):
        mapped = to_fhir_error(
            UpstreamRejected(
                "GP Connect", f"HTTP {status}", status=status, nhs_code="INVALID_PARAMETER", diagnostics="bad part"
            )
        )
        outcome = mapped.outcome()
        validate_r4(outcome)
        assert mapped.status == status
        assert outcome["issue"][0]["details"]["coding"][0]["code"] == "INVALID_PARAMETER"
        assert "bad part" in outcome["issue"][0]["diagnostics"]
