"""_revinclude: parsing (declared ones only, strict 400 otherwise), which are available
given the registry, and resolution by the source provider's own search (fakes, no I/O)."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from server.fhir.errors import BadGateway, InvalidSearchParameter
from server.fhir.includes import available_rev_includes, resolve_rev_includes
from server.fhir.search_params import SearchParamSpec
from server.fhir.search_request import Include, SearchDeclaration, SearchRequest, parse_search
from server.providers.base import RequestContext, ResourceProvider, SearchResult
from server.providers.registry import ProviderRegistry

PATIENT_DECL = SearchDeclaration(
    resource_type="Patient",
    params=(SearchParamSpec("family", "string", "x"),),
    rev_includes=("MedicationRequest:patient",),
)


def test_declared_rev_include_is_parsed_and_in_self() -> None:
    req = parse_search(
        [("_revinclude", "MedicationRequest:patient"), ("_revinclude", "MedicationRequest:patient")], PATIENT_DECL
    )
    assert req.rev_includes == (Include("MedicationRequest", "patient"),)
    assert req.canonical_pairs() == [("_revinclude", "MedicationRequest:patient")]
    assert req.includes == ()


def test_three_part_rev_include_with_the_declared_prefix() -> None:
    req = parse_search([("_revinclude", "MedicationRequest:patient:Patient")], PATIENT_DECL)
    assert req.rev_includes == (Include("MedicationRequest", "patient", "Patient"),)


def test_undeclared_rev_include_is_dropped_or_strict_400() -> None:
    req = parse_search([("_revinclude", "Observation:patient")], PATIENT_DECL)
    assert req.rev_includes == () and req.unknown == ("_revinclude=Observation:patient",)
    with pytest.raises(InvalidSearchParameter, match="_revinclude=Observation:patient"):
        parse_search([("_revinclude", "Observation:patient")], PATIENT_DECL, strict=True)


@pytest.mark.parametrize("raw", ["MedicationRequest", "a:b:c:d", ":patient", "MedicationRequest:"])
def test_malformed_rev_include_is_400(raw: str) -> None:
    with pytest.raises(InvalidSearchParameter, match="_revinclude"):
        parse_search([("_revinclude", raw)], PATIENT_DECL)


class FakeSource(ResourceProvider):
    resource_type: ClassVar[str] = "MedicationRequest"
    search_params: ClassVar[tuple[SearchParamSpec, ...]] = (
        SearchParamSpec("patient", "reference", "who", path="subject", target_types=("Patient",)),
        SearchParamSpec("status", "token", "s", path="status"),
        SearchParamSpec("requester", "reference", "r", path="requester", target_types=("Practitioner",)),
    )

    def __init__(self, fail_for: str | None = None) -> None:
        self.asked: list[SearchRequest] = []
        self.fail_for = fail_for

    async def read(self, resource_id: str, ctx: RequestContext) -> Any:
        raise AssertionError("not used")

    async def search(self, request: SearchRequest, ctx: RequestContext) -> SearchResult:
        self.asked.append(request)
        ref = request.params[0].values[0]
        pid = ref.id  # type: ignore[union-attr]
        if pid == self.fail_for:
            raise BadGateway("upstream down")
        return SearchResult(
            matches=[
                {"resourceType": "MedicationRequest", "id": f"mr-{pid}"},
                {"resourceType": "MedicationRequest", "id": "shared"},
            ]
        )


def registry(*providers: ResourceProvider) -> ProviderRegistry:
    reg = ProviderRegistry()
    for p in providers:
        reg.register(p)
    return reg


def test_rev_includes_are_the_registered_reference_params_that_may_point_at_the_type() -> None:
    """Derived, not declared: a registered type's reference parameter whose targets include
    the type (status is a token, requester points at a Practitioner); nothing registered,
    nothing to reverse-include."""
    reg = registry(FakeSource())
    assert available_rev_includes("Patient", reg) == ("MedicationRequest:patient",)
    assert available_rev_includes("Practitioner", reg) == ("MedicationRequest:requester",)
    assert available_rev_includes("Organization", reg) == ()
    assert available_rev_includes("Patient", registry()) == ()


CTX = RequestContext(request_id="r", base_url="http://f")
PATIENTS = [{"resourceType": "Patient", "id": "1"}, {"resourceType": "Patient", "id": "2"}]


async def test_resolve_runs_the_source_search_per_match_and_deduplicates() -> None:
    source = FakeSource()
    found, issues = await resolve_rev_includes(
        PATIENTS, [Include("MedicationRequest", "patient")], registry(source), CTX, default_count=20, max_count=100
    )
    assert [r["id"] for r in found] == ["mr-1", "shared", "mr-2"] and issues == []
    assert sorted(r.params[0].text() for r in source.asked) == ["Patient/1", "Patient/2"]


async def test_a_failing_reverse_search_is_a_warning_not_a_failure() -> None:
    found, issues = await resolve_rev_includes(
        PATIENTS,
        [Include("MedicationRequest", "patient")],
        registry(FakeSource(fail_for="2")),
        CTX,
        default_count=20,
        max_count=100,
    )
    assert [r["id"] for r in found] == ["mr-1", "shared"]
    assert len(issues) == 1 and issues[0]["severity"] == "warning" and "upstream down" in issues[0]["diagnostics"]


async def test_a_source_no_longer_registered_is_a_warning() -> None:
    found, issues = await resolve_rev_includes(
        PATIENTS[:1], [Include("MedicationRequest", "patient")], registry(), CTX, default_count=20, max_count=100
    )
    assert found == [] and issues[0]["code"] == "not-supported"
