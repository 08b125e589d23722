"""Our own refusals reach the client as honest 503s with Retry-After."""

from __future__ import annotations

from server.nhs.errors import UpstreamRateLimited
from server.nhs.refusals import CircuitOpen, NoSlot
from server.providers.upstream_errors import to_fhir_error
from tests.support.fhir_validation import validate_r4


def test_open_circuit_is_503_with_seconds_until_probe() -> None:
    err = to_fhir_error(CircuitOpen("PDS", "circuit open after repeated failures", retry_after=12.4))
    assert err.status == 503
    assert err.headers["Retry-After"] == "12"
    assert "circuit open" in err.diagnostics
    validate_r4(err.outcome())


def test_client_side_limit_says_it_is_ours() -> None:
    err = to_fhir_error(NoSlot("PDS", "client-side rate limit (5/s) has no slot in time", retry_after=0.2))
    assert err.status == 503
    assert err.headers["Retry-After"] == "1"
    assert "client-side rate limit" in err.diagnostics
    assert "PDS is rate limiting" not in err.diagnostics


def test_nhs_429_says_nhs_is_limiting() -> None:
    err = to_fhir_error(UpstreamRateLimited("PDS", "HTTP 429", status=429))
    assert err.status == 503 and err.headers["Retry-After"] == "5"
    assert "PDS is rate limiting this service" in err.diagnostics
