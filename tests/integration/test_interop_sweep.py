"""The interoperability sweep: what a conformance tester runs against every resource type.

For each registered type, with the search that finds the emulator's 9000000009 records,
one test drives the checklist of shared/reference/fhir-server.md over real sockets: GET and
POST _search, paging through next links, _count=0, _summary, _elements, _sort, strict and
lenient unknown parameters, malformed values, _include, read/vread/HEAD/conditional read of
every id returned, content negotiation and id syntax. Every answer goes through
CheckedClient (R4-valid body, FHIR content type, X-Request-ID, never a 500).

The sweep runs with the read-through cache off and on; with it on, a repeated search must
be a cache HIT that reaches no NHS API.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import pytest

from mappings.paths import values_at
from server.fhir.search_params import fhir_date_range
from server.fhir.subsetting import mandatory_elements
from tests.support.access import CPT_PRACTITIONER
from tests.support.checked_client import Answer, CheckedClient
from tests.support.emulator_control import upstream_total
from tests.support.servers import Emulator, running_facade

NHS = "https://fhir.nhs.uk/Id/nhs-number"
FORM_UTF8 = "application/x-www-form-urlencoded; charset=UTF-8"


@dataclass(frozen=True)
class TypeCase:
    """One resource type: a search that finds 9000000009's records in the emulator."""

    resource_type: str
    query: tuple[tuple[str, str], ...]
    date_param: str
    date_path: str
    headers: dict[str, str] = field(default_factory=dict)
    include: str | None = None  # "<Type>:patient"

    def __str__(self) -> str:
        return self.resource_type


CASES = [
    # PDS: family + birthdate finds Jane Smith (9000000009) and another Smith.
    TypeCase("Patient", (("family", "Smith"), ("birthdate", "ge2000")), "birthdate", "birthDate"),
    TypeCase(
        "MedicationRequest",
        (("patient", "9000000009"),),
        "authoredon",
        "authoredOn",
        headers=CPT_PRACTITIONER,
        include="MedicationRequest:patient",
    ),
    TypeCase(
        "ServiceRequest", (("patient", "9000000009"),), "authored", "authoredOn", include="ServiceRequest:patient"
    ),
    TypeCase(
        "AllergyIntolerance", (("patient", "9000000009"),), "date", "recordedDate", include="AllergyIntolerance:patient"
    ),
]


def query(pairs: Any) -> str:
    from urllib.parse import urlencode

    return urlencode(list(pairs))


def entries(bundle: dict[str, Any], mode: str) -> list[dict[str, Any]]:
    return [e for e in bundle.get("entry", []) if e["search"]["mode"] == mode]


def match_ids(bundle: dict[str, Any]) -> list[str]:
    return [e["resource"]["id"] for e in entries(bundle, "match")]


def link(bundle: dict[str, Any], relation: str) -> str | None:
    return next((lk["url"] for lk in bundle.get("link", []) if lk["relation"] == relation), None)


def subsetted(resource: dict[str, Any]) -> bool:
    return any(t.get("code") == "SUBSETTED" for t in (resource.get("meta") or {}).get("tag", []))


class Sweep:
    """The checks, sharing one client, one case and the baseline search answer."""

    def __init__(self, fhir: CheckedClient, case: TypeCase) -> None:
        self.fhir = fhir
        self.case = case
        self.path = f"/{case.resource_type}"
        self.baseline: dict[str, Any] = {}

    async def search(
        self,
        *extra: tuple[str, str],
        status: int = 200,
        headers: dict[str, str] | None = None,
        base: tuple[tuple[str, str], ...] | None = None,
    ) -> Answer:
        pairs = list(self.case.query if base is None else base) + list(extra)
        answer = await self.fhir.get(f"{self.path}?{query(pairs)}", headers={**self.case.headers, **(headers or {})})
        assert answer.status == status, (pairs, answer.status, answer.body)
        return answer

    async def get_and_post_agree(self) -> None:
        got = await self.search()
        bundle = got.body
        assert bundle["type"] == "searchset" and bundle["total"] == len(match_ids(bundle)) > 0, bundle
        assert all(
            e["fullUrl"].startswith(self.fhir.base_url + "/")
            for e in bundle.get("entry", [])
            if e["search"]["mode"] != "outcome"
        )
        self.baseline = bundle
        posted = await self.fhir.post(
            f"{self.path}/_search",
            data=query(self.case.query),
            headers={**self.case.headers, "Content-Type": FORM_UTF8},
        )
        assert posted.status == 200, posted.body
        assert match_ids(posted.body) == match_ids(bundle)
        assert posted.body["total"] == bundle["total"]
        assert link(posted.body, "self") == link(bundle, "self")

    async def paging_with_count_1(self) -> None:
        total = self.baseline["total"]
        page = (await self.search(("_count", "1"))).body
        seen: list[str] = []
        pages = 0
        while True:
            pages += 1
            assert page["total"] == total, page
            assert len(entries(page, "match")) <= 1
            seen += match_ids(page)
            nxt = link(page, "next")
            if nxt is None:
                break
            assert nxt.startswith(self.fhir.base_url + "/"), nxt
            assert "patient" not in dict(parse_qsl(urlsplit(nxt).query)), "paging links should be opaque"
            answer = await self.fhir.get(nxt, headers=self.case.headers)
            assert answer.status == 200, answer.body
            page = answer.body
            assert pages <= total, "next links never end"
        assert pages == total
        assert sorted(seen) == sorted(match_ids(self.baseline)) and len(set(seen)) == len(seen), seen
        if total > 1:
            prev = link(page, "previous")
            assert prev, page["link"]
            back = await self.fhir.get(prev, headers=self.case.headers)
            assert back.status == 200 and match_ids(back.body) == [seen[-2]]

    async def count_zero_and_summary_count(self) -> None:
        for extra in (("_count", "0"), ("_summary", "count")):
            bundle = (await self.search(extra)).body
            assert bundle["total"] == self.baseline["total"], (extra, bundle)
            assert entries(bundle, "match") == [] and entries(bundle, "include") == [], (extra, bundle)
            assert "next" not in {lk["relation"] for lk in bundle["link"]}

    async def summary_true(self) -> None:
        bundle = (await self.search(("_summary", "true"))).body
        assert match_ids(bundle) == match_ids(self.baseline)
        assert all(subsetted(e["resource"]) for e in entries(bundle, "match")), bundle

    async def elements_id(self) -> None:
        bundle = (await self.search(("_elements", "id"))).body
        mandatory = mandatory_elements(self.case.resource_type)
        full = {e["resource"]["id"]: e["resource"] for e in entries(self.baseline, "match")}
        for entry in entries(bundle, "match"):
            resource = entry["resource"]
            assert subsetted(resource)
            allowed = {"resourceType", "id", "meta"} | mandatory
            assert set(resource) <= allowed, set(resource) - allowed
            original = full[resource["id"]]
            assert {k for k in mandatory if k in original} <= set(resource), (mandatory, set(resource))

    async def sort_on_date(self) -> None:
        def starts(bundle: dict[str, Any]) -> list[Any]:
            out = []
            for e in entries(bundle, "match"):
                spans = [fhir_date_range(v) for v in values_at(e["resource"], self.case.date_path)]
                out.append(min((s[0] for s in spans if s), default=None))
            return out

        for desc in (False, True):
            key = ("-" if desc else "") + self.case.date_param
            bundle = (await self.search(("_sort", key), headers={"Prefer": "handling=strict"})).body
            assert sorted(match_ids(bundle)) == sorted(match_ids(self.baseline))
            assert ("_sort", key) in parse_qsl(urlsplit(link(bundle, "self")).query)
            dated = [s for s in starts(bundle) if s is not None]
            assert dated == sorted(dated, reverse=desc), (key, dated)
            values = starts(bundle)
            assert values == dated + [None] * (len(values) - len(dated)), "undated entries go last"

    async def unknown_parameter(self) -> None:
        lenient = (await self.search(("x-unknown-param", "1"))).body
        assert match_ids(lenient) == match_ids(self.baseline)
        assert "x-unknown-param" not in link(lenient, "self")
        strict = await self.search(("x-unknown-param", "1"), status=400, headers={"Prefer": "handling=strict"})
        assert "x-unknown-param" in strict.issue["diagnostics"]

    async def malformed_date(self) -> None:
        bad = await self.search((self.case.date_param, "not-a-date"), status=400)
        assert self.case.date_param in bad.issue["diagnostics"], bad.body
        assert bad.issue["code"] in ("invalid", "value", "processing")

    async def include_patient(self) -> None:
        if self.case.include is None:
            return
        bundle = (await self.search(("_include", self.case.include))).body
        assert bundle["total"] == self.baseline["total"]
        assert match_ids(bundle) == match_ids(self.baseline)
        included = entries(bundle, "include")
        assert [(e["resource"]["resourceType"], e["resource"]["id"]) for e in included] == [
            ("Patient", "9000000009")
        ], included
        assert included[0]["fullUrl"] == f"{self.fhir.base_url}/Patient/9000000009"
        assert ("_include", self.case.include) in parse_qsl(urlsplit(link(bundle, "self")).query)

    async def read_every_id(self) -> None:
        h = self.case.headers
        for rid in match_ids(self.baseline):
            url = f"{self.path}/{rid}"
            got = await self.fhir.get(url, headers=h)
            assert got.status == 200, (rid, got.body)
            resource = got.body
            assert resource["id"] == rid and resource["resourceType"] == self.case.resource_type
            version = (resource.get("meta") or {}).get("versionId")
            assert version, f"{url}: no meta.versionId to match the ETag"
            assert got.headers["ETag"] == f'W/"{version}"'
            listed = next(e["resource"] for e in entries(self.baseline, "match") if e["resource"]["id"] == rid)
            if any(t.get("code") == "SUBSETTED" for t in listed["meta"].get("tag", [])):
                # A search copy with less than the read (PDS): its own version, so that
                # If-None-Match with it never 304s (server.fhir.versioning.search_copy).
                assert listed["meta"]["versionId"].startswith(f"{version}-search-"), "a subsetted copy's version"
            else:
                assert listed["meta"]["versionId"] == version, "the search entry and the read disagree on the version"
            if (resource.get("meta") or {}).get("lastUpdated"):
                assert got.headers.get("Last-Modified"), got.headers
            else:
                assert "Last-Modified" not in got.headers
            again = await self.fhir.get(url, headers={**h, "If-None-Match": got.headers["ETag"]})
            assert again.status == 304 and again.raw == b"", again.status
            assert again.headers["ETag"] == got.headers["ETag"]
            vread = await self.fhir.get(f"{url}/_history/{version}", headers=h)
            assert vread.status == 200 and vread.body == resource
            old = await self.fhir.get(f"{url}/_history/not-this-one", headers=h)
            assert old.status == 404
            head = await self.fhir.request("HEAD", url, headers=h)
            assert head.status == 200 and head.raw == b"" and head.headers["ETag"] == got.headers["ETag"]

    async def formats(self) -> None:
        rid = match_ids(self.baseline)[0]
        for path, headers in (
            (f"?{query(self.case.query)}&_format=json", {}),
            (f"?{query(self.case.query)}", {"Accept": "application/json"}),
            (f"/{rid}?_format=json", {}),
            (f"/{rid}", {"Accept": "application/json"}),
        ):
            ok = await self.fhir.get(self.path + path, headers={**self.case.headers, **headers})
            assert ok.status == 200, (path, headers, ok.body)
        for path, headers in (
            (f"?{query(self.case.query)}&_format=xml", {}),
            (f"?{query(self.case.query)}", {"Accept": "application/fhir+xml"}),
            (f"/{rid}?_format=xml", {}),
            (f"/{rid}", {"Accept": "application/fhir+xml"}),
        ):  # CheckedClient(xml=True): the XML parses back through the R4B model
            xml = await self.fhir.get(self.path + path, headers={**self.case.headers, **headers}, xml=True)
            assert xml.status == 200, (path, headers, xml.status)
        for path, headers in (
            (f"?{query(self.case.query)}&_format=html", {}),
            (f"/{rid}", {"Accept": "text/html"}),
        ):
            refused = await self.fhir.get(self.path + path, headers={**self.case.headers, **headers})
            assert refused.status == 406, (path, headers, refused.status)
            assert refused.issue["code"] == "not-supported", (path, headers, refused.body)

    async def json_spellings(self) -> None:
        """Accept spellings real clients send, fhir.js's Content-Type on a GET, and _pretty."""
        spellings = (
            "application/fhir+json; fhirVersion=4.0",
            "application/json+fhir",
            "*/*",
            "application/json;q=0.9, application/fhir+xml;q=0.1",
            "text/html, */*;q=0.1",
        )
        for accept in spellings:
            ok = await self.search(headers={"Accept": accept})
            assert match_ids(ok.body) == match_ids(self.baseline), accept
        ok = await self.search(headers={"Content-Type": "application/json"})
        assert match_ids(ok.body) == match_ids(self.baseline)
        pretty = await self.search(("_pretty", "true"))
        assert b"\n  " in pretty.raw and "_pretty" not in link(pretty.body, "self")

    async def post_merges_query_and_body(self) -> None:
        name, value = self.case.query[0]
        posted = await self.fhir.post(
            f"{self.path}/_search?{query([(name, value)])}",
            data=query(list(self.case.query[1:]) + [("_count", "1")]),
            headers={**self.case.headers, "Content-Type": FORM_UTF8},
        )
        assert posted.status == 200, posted.body
        assert posted.body["total"] == self.baseline["total"]
        assert match_ids(posted.body) == match_ids(self.baseline)[:1]
        for body, status in (("_format=xml", 200), ("_format=html", 406), ("_pretty=true", 200)):
            answer = await self.fhir.post(
                f"{self.path}/_search",
                data=f"{query(self.case.query)}&{body}",
                headers={**self.case.headers, "Content-Type": FORM_UTF8},
                xml=body == "_format=xml",
            )
            assert answer.status == status, (body, answer.status)  # a body _format counts, never silent JSON
        assert b"\n  " in answer.raw, "_pretty=true in the form body"
        wrong = await self.fhir.post(
            f"{self.path}/_search", data=b"{}", headers={**self.case.headers, "Content-Type": "application/json"}
        )
        assert wrong.status == 415, wrong.status

    async def total_none_and_strict_result_params(self) -> None:
        bundle = (await self.search(("_total", "none"))).body
        assert "total" not in bundle and match_ids(bundle) == match_ids(self.baseline)
        strict = {"Prefer": "handling=strict"}
        for extra in (("_sort", "x-not-a-param"), ("_include", f"{self.case.resource_type}:x-not-a-param")):
            refused = await self.search(extra, status=400, headers=strict)
            assert extra[1] in refused.issue["diagnostics"], refused.body
            lenient = (await self.search(extra)).body
            assert match_ids(lenient) == match_ids(self.baseline)

    async def conditional_and_summary_read(self) -> None:
        rid = match_ids(self.baseline)[0]
        url = f"{self.path}/{rid}"
        got = await self.fhir.get(url, headers=self.case.headers)
        modified = got.headers.get("Last-Modified")
        if modified:
            since = await self.fhir.get(url, headers={**self.case.headers, "If-Modified-Since": modified})
            assert since.status == 304, since.status
        stale = await self.fhir.get(url, headers={**self.case.headers, "If-None-Match": 'W/"not-current"'})
        assert stale.status == 200
        summary = await self.fhir.get(f"{url}?_summary=true", headers=self.case.headers)
        assert summary.status == 200 and subsetted(summary.body) and summary.body["id"] == rid

    async def wrong_id_syntax(self) -> None:
        for bad in ("not_an_id!", "x" * 65):
            answer = await self.fhir.get(f"{self.path}/{bad}", headers=self.case.headers)
            assert answer.status == 400, (bad, answer.status)

    CHECKS = (
        "get_and_post_agree",
        "paging_with_count_1",
        "count_zero_and_summary_count",
        "summary_true",
        "elements_id",
        "sort_on_date",
        "unknown_parameter",
        "malformed_date",
        "include_patient",
        "read_every_id",
        "formats",
        "json_spellings",
        "post_merges_query_and_body",
        "total_none_and_strict_result_params",
        "conditional_and_summary_read",
        "wrong_id_syntax",
    )

    async def run(self) -> list[str]:
        """Run every check; the first check is the baseline the others need."""
        failures: list[str] = []
        for name in self.CHECKS:
            try:
                await getattr(self, name)()
            except AssertionError as err:
                failures.append(f"{self.case}.{name}: {str(err)[:600]}")
                if name == "get_and_post_agree":
                    break
        return failures


@pytest.fixture(params=[False, True], ids=["no-cache", "cache"])
async def cached_fhir(
    request: pytest.FixtureRequest, emulator: Emulator, http: aiohttp.ClientSession
) -> AsyncIterator[tuple[CheckedClient, bool]]:
    async with running_facade(emulator, cache_enabled=request.param) as url:
        yield CheckedClient(url, http), request.param


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_interop_sweep(case: TypeCase, cached_fhir: tuple[CheckedClient, bool]) -> None:
    fhir, _ = cached_fhir
    failures = await Sweep(fhir, case).run()
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_repeated_search_is_a_cache_hit_that_reaches_no_nhs_api(
    case: TypeCase, emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    async with running_facade(emulator, cache_enabled=True) as url:
        fhir = CheckedClient(url, http)
        # With _include where the type has one: the included Patient read is cached too.
        include = (("_include", case.include),) if case.include else ()
        path = f"/{case.resource_type}?{query(case.query + include)}"
        first = await fhir.get(path, headers=case.headers)
        assert first.status == 200 and first.headers.get("X-Cache") == "MISS", first.headers
        before = await upstream_total(http, emulator)
        second = await fhir.get(path, headers=case.headers)
        assert second.status == 200 and second.headers.get("X-Cache") == "HIT", second.headers
        assert await upstream_total(http, emulator) == before
        assert match_ids(second.body) == match_ids(first.body)
        assert second.body["total"] == first.body["total"]
        assert len(entries(second.body, "include")) == len(include)


async def test_the_sweep_covers_every_registered_type(fhir: CheckedClient) -> None:
    """A type registered later and left out of CASES fails here, not silently."""
    statement = (await fhir.get("/metadata")).body
    served = {r["type"] for r in statement["rest"][0]["resource"]}
    # AuditEvent is the façade's own trail: it grows with every request the sweep makes
    # (the sweep's "same answer twice" checks cannot hold), so it has its own tests
    # (tests/unit/test_audit_provider.py, tests/integration/test_access_control.py).
    assert served - {"AuditEvent"} == {c.resource_type for c in CASES}
    assert "AuditEvent" in served
