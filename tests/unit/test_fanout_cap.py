"""The per-page fan-out cap: _include reads and _revinclude searches beyond the budget are
not started, and what was left out is one warning, never silently dropped (fakes, no I/O)."""

from __future__ import annotations

from typing import Any, ClassVar

from server.fhir.includes import FanOutBudget, resolve_includes, resolve_rev_includes
from server.fhir.search_params import SearchParamSpec
from server.fhir.search_request import Include, SearchRequest
from server.providers.base import RequestContext, ResourceProvider, SearchResult
from server.providers.registry import ProviderRegistry

CTX = RequestContext(request_id="r", base_url="http://f")


class Patients(ResourceProvider):
    resource_type: ClassVar[str] = "Patient"

    def __init__(self) -> None:
        self.reads: list[str] = []

    async def read(self, resource_id: str, ctx: RequestContext) -> Any:
        self.reads.append(resource_id)
        return {"resourceType": "Patient", "id": resource_id}


class Source(ResourceProvider):
    """A source type with a patient reference: records every reverse search it is asked."""

    search_params: ClassVar[tuple[SearchParamSpec, ...]] = (
        SearchParamSpec("patient", "reference", "who", path="subject", target_types=("Patient",)),
    )

    def __init__(self, resource_type: str) -> None:
        self.resource_type = resource_type  # type: ignore[misc]
        self.asked: list[str] = []

    async def read(self, resource_id: str, ctx: RequestContext) -> Any:
        raise AssertionError("not used")

    async def search(self, request: SearchRequest, ctx: RequestContext) -> SearchResult:
        pid = request.params[0].values[0].id  # type: ignore[union-attr]
        self.asked.append(pid)
        return SearchResult(
            matches=[
                {
                    "resourceType": self.resource_type,
                    "id": f"{self.resource_type}-{pid}",
                    "subject": {"reference": f"Patient/{pid}"},
                }
            ]
        )


def registry(*providers: ResourceProvider) -> ProviderRegistry:
    reg = ProviderRegistry()
    for p in providers:
        reg.register(p)
    return reg


def patients(n: int) -> list[dict[str, Any]]:
    return [{"resourceType": "Patient", "id": str(i)} for i in range(1, n + 1)]


def too_costly(issues: list[Any]) -> list[Any]:
    return [i for i in issues if i["code"] == "too-costly"]


async def test_include_reads_over_the_budget_are_not_started_and_are_one_warning() -> None:
    pats = Patients()
    allergies = Source("AllergyIntolerance")
    page = [
        {"resourceType": "AllergyIntolerance", "id": f"a{i}", "subject": {"reference": f"Patient/{i}"}}
        for i in range(1, 6)
    ]
    budget = FanOutBudget(max_reads=3, max_searches=10)
    found, issues = await resolve_includes(
        page, [Include("AllergyIntolerance", "patient")], allergies, registry(pats, allergies), CTX, budget=budget
    )
    assert pats.reads == ["1", "2", "3"] and [r["id"] for r in found] == ["1", "2", "3"]
    [warning] = too_costly(issues)
    assert warning["severity"] == "warning"
    assert "2 referenced resource(s) not read (Patient/4, Patient/5)" in warning["diagnostics"]
    assert "FACADE_MAX_INCLUDE_READS" in warning["diagnostics"] and "at most 3" in warning["diagnostics"]


async def test_within_the_budget_there_is_no_warning_and_no_budget_means_no_cap() -> None:
    pats = Patients()
    allergies = Source("AllergyIntolerance")
    page = [
        {"resourceType": "AllergyIntolerance", "id": f"a{i}", "subject": {"reference": f"Patient/{i}"}}
        for i in range(1, 4)
    ]
    _, issues = await resolve_includes(
        page,
        [Include("AllergyIntolerance", "patient")],
        allergies,
        registry(pats, allergies),
        CTX,
        budget=FanOutBudget(3, 3),
    )
    assert issues == []
    _, issues = await resolve_includes(
        page, [Include("AllergyIntolerance", "patient")], allergies, registry(pats, allergies), CTX
    )
    assert issues == [] and len(pats.reads) == 6


async def test_rev_includes_run_match_by_match_until_the_budget_is_spent() -> None:
    meds, allergies = Source("MedicationRequest"), Source("AllergyIntolerance")
    revs = [Include("MedicationRequest", "patient"), Include("AllergyIntolerance", "patient")]
    budget = FanOutBudget(max_reads=20, max_searches=5)
    found, issues = await resolve_rev_includes(
        patients(4), revs, registry(meds, allergies), CTX, default_count=20, max_count=100, budget=budget
    )
    # 8 searches wanted, 5 started: patients 1 and 2 complete, patient 3 only MedicationRequest
    assert meds.asked == ["1", "2", "3"] and allergies.asked == ["1", "2"]
    assert len(found) == 5 and budget.searches_started == 5
    [warning] = too_costly(issues)
    text = warning["diagnostics"]
    assert "3 reverse search(es) not run, for Patient/3, Patient/4" in text
    assert "AllergyIntolerance:patient" in text and "MedicationRequest:patient" in text
    assert "FACADE_MAX_REVINCLUDE_SEARCHES" in text


async def test_one_budget_is_shared_by_the_calls_of_one_page() -> None:
    """The handler resolves rev-includes one source type at a time: the page's budget spans them."""
    meds, allergies = Source("MedicationRequest"), Source("AllergyIntolerance")
    reg = registry(meds, allergies)
    budget = FanOutBudget(max_reads=20, max_searches=3)
    _, first = await resolve_rev_includes(
        patients(2), [Include("MedicationRequest", "patient")], reg, CTX, default_count=20, max_count=100, budget=budget
    )
    _, second = await resolve_rev_includes(
        patients(2),
        [Include("AllergyIntolerance", "patient")],
        reg,
        CTX,
        default_count=20,
        max_count=100,
        budget=budget,
    )
    assert (meds.asked, allergies.asked) == (["1", "2"], ["1"])
    assert too_costly(first) == [] and len(too_costly(second)) == 1
    assert "1 reverse search(es) not run, for Patient/2" in second[0]["diagnostics"]


async def test_a_zero_budget_starts_nothing_and_says_so() -> None:
    meds = Source("MedicationRequest")
    found, issues = await resolve_rev_includes(
        patients(12),
        [Include("MedicationRequest", "patient")],
        registry(meds),
        CTX,
        default_count=20,
        max_count=100,
        budget=FanOutBudget(0, 0),
    )
    assert found == [] and meds.asked == []
    [warning] = too_costly(issues)
    assert "12 reverse search(es) not run" in warning["diagnostics"] and "and 2 more" in warning["diagnostics"]


async def test_an_unregistered_source_costs_nothing_from_the_budget() -> None:
    meds = Source("MedicationRequest")
    budget = FanOutBudget(max_reads=20, max_searches=2)
    _, issues = await resolve_rev_includes(
        patients(2),
        [Include("ServiceRequest", "patient"), Include("MedicationRequest", "patient")],
        registry(meds),
        CTX,
        default_count=20,
        max_count=100,
        budget=budget,
    )
    assert meds.asked == ["1", "2"] and too_costly(issues) == []
    assert [i["code"] for i in issues] == ["not-supported", "not-supported"]
