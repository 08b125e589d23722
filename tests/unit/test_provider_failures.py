"""A provider fails with a FHIRError or lets an UpstreamError escape (server/providers/failures.py):
code that handles a failure itself, rather than leaving it to the exception handlers, treats both
alike. Here: _include and _revinclude turn either into a warning. (The cache's stale-if-error:
tests/unit/test_cache_read_through.py; the handlers: tests/unit/test_upstream_error_handler.py.)"""

from __future__ import annotations

from typing import Any, ClassVar

from server.fhir.errors import Gone, NotFound
from server.fhir.includes import resolve_includes, resolve_rev_includes
from server.fhir.search_params import SearchParamSpec
from server.fhir.search_request import Include, SearchRequest
from server.nhs.error_codes import CodeMeaning
from server.nhs.errors import UpstreamRejected, UpstreamUnavailable
from server.providers.base import RequestContext, ResourceProvider, SearchResult
from server.providers.failures import as_fhir_error
from server.providers.registry import ProviderRegistry
from server.providers.upstream_errors import to_fhir_error

CTX = RequestContext(request_id="r", base_url="http://f")
OUTAGE = UpstreamUnavailable("PDS", "HTTP 503", status=503)
PAGE = [{"resourceType": "AllergyIntolerance", "id": "a1", "patient": {"reference": "Patient/9000000009"}}]


def test_a_fhir_error_is_its_own_fhir_meaning() -> None:
    err = NotFound("no such patient")
    assert as_fhir_error(err) is err


def test_an_upstream_error_means_what_to_fhir_error_maps_it_to() -> None:
    err = UpstreamRejected("PDS", "HTTP 404", status=404, nhs_code="INVALIDATED_RESOURCE", meaning=CodeMeaning.GONE)
    got = as_fhir_error(err)
    assert isinstance(got, Gone) and got.status == 410
    assert got.diagnostics == to_fhir_error(err).diagnostics


class DownPatients(ResourceProvider):
    """PDS in an outage: every read fails upstream."""

    resource_type: ClassVar[str] = "Patient"

    async def read(self, resource_id: str, ctx: RequestContext) -> Any:
        raise OUTAGE


class Allergies(ResourceProvider):
    """An NHS source whose searches fail upstream (or, for `fhir_error`, with a FHIRError)."""

    resource_type: ClassVar[str] = "AllergyIntolerance"
    search_params: ClassVar[tuple[SearchParamSpec, ...]] = (
        SearchParamSpec("patient", "reference", "who", path="patient", target_types=("Patient",)),
    )

    def __init__(self, fhir_error: bool = False) -> None:
        self.fhir_error = fhir_error

    async def read(self, resource_id: str, ctx: RequestContext) -> Any:
        raise AssertionError("not used")

    async def search(self, request: SearchRequest, ctx: RequestContext) -> SearchResult:
        raise to_fhir_error(OUTAGE) if self.fhir_error else OUTAGE


def registry(*providers: ResourceProvider) -> ProviderRegistry:
    reg = ProviderRegistry()
    for p in providers:
        reg.register(p)
    return reg


async def test_an_include_whose_read_fails_upstream_is_a_warning() -> None:
    allergies = Allergies()
    found, [warning] = await resolve_includes(
        PAGE, [Include("AllergyIntolerance", "patient")], allergies, registry(DownPatients(), allergies), CTX
    )
    assert found == []
    assert warning["severity"] == "warning" and warning["code"] == "incomplete"
    assert warning["diagnostics"] == (
        f"Included Patient/9000000009 could not be read: {to_fhir_error(OUTAGE).diagnostics}"
    )


async def test_a_reverse_search_failing_upstream_is_the_same_warning_as_its_fhir_error() -> None:
    patient = [{"resourceType": "Patient", "id": "9000000009"}]
    warnings = []
    for source in (Allergies(), Allergies(fhir_error=True)):
        found, [warning] = await resolve_rev_includes(
            patient, [Include("AllergyIntolerance", "patient")], registry(source), CTX, default_count=20, max_count=100
        )
        assert found == [] and warning["severity"] == "warning"
        warnings.append(warning)
    assert warnings[0] == warnings[1]
    assert "(503)" in warnings[0]["diagnostics"]
