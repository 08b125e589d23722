"""Patient search through real sockets: translation, Bundle shape, paging, subsetting."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

import aiohttp

from tests.support.checked_client import CheckedClient
from tests.support.emulator_control import PDS_PREFIX, upstream_requests, upstream_total
from tests.support.servers import Emulator

NHS = "https://fhir.nhs.uk/Id/nhs-number"
SMITHS = "family=Sm&birthdate=2010"  # Smith, Smyth, Smithson: three matches in 2010


def links(bundle: dict[str, Any]) -> dict[str, str]:
    return {link["relation"]: link["url"] for link in bundle["link"]}


def ids(bundle: dict[str, Any], mode: str = "match") -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == mode]


def query(url: str) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(url).query, keep_blank_values=True)


async def test_identifier_search(fhir: CheckedClient) -> None:
    answer = await fhir.get(f"/Patient?identifier={NHS}|9000000009")
    bundle = answer.body
    assert answer.status == 200 and bundle["type"] == "searchset" and bundle["total"] == 1
    (entry,) = bundle["entry"]
    assert entry["fullUrl"] == f"{fhir.base_url}/Patient/9000000009"
    assert entry["search"]["mode"] == "match"
    assert (
        links(bundle)["self"]
        == f"{fhir.base_url}/Patient?" + "identifier=https%3A%2F%2Ffhir.nhs.uk%2FId%2Fnhs-number%7C9000000009"
    )


async def test_identifier_search_edge_cases(
    fhir: CheckedClient, emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    not_found = await fhir.get(f"/Patient?identifier={NHS}|9111231130")
    assert not_found.status == 200 and not_found.body["total"] == 0 and "entry" not in not_found.body
    superseded = await fhir.get(f"/Patient?identifier={NHS}|9000000041,{NHS}|9000000068")
    assert ids(superseded.body) == ["9000000068"]  # one record, not twice
    other_system = await fhir.get("/Patient?identifier=http://example.org/mrn|9000000009")
    assert other_system.body["total"] == 0
    before = await upstream_total(http, emulator)
    invalid = await fhir.get(f"/Patient?identifier={NHS}|9000000000")
    assert invalid.status == 200 and invalid.body["total"] == 0
    (outcome,) = [e["resource"] for e in invalid.body["entry"] if e["search"]["mode"] == "outcome"]
    assert "Modulus-11" in outcome["issue"][0]["diagnostics"]
    assert await upstream_total(http, emulator) == before  # never sent to PDS
    combined = await fhir.get(f"/Patient?identifier={NHS}|9000000009&family=Jones")
    assert combined.status == 400 and "family" in combined.issue["diagnostics"]


async def test_family_and_birthdate_translated_for_pds(
    fhir: CheckedClient, emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    answer = await fhir.get("/Patient?family=Smith&birthdate=eq2010-10-22&gender=female")
    assert ids(answer.body) == ["9000000009"]
    assert answer.body["entry"][0]["search"]["score"] == 0.8  # PDS's score is passed on
    assert answer.body["entry"][0]["fullUrl"] == f"{fhir.base_url}/Patient/9000000009"  # never the NHS URL
    assert emulator.url not in answer.raw.decode()
    counts = (await upstream_requests(http, emulator))["counts"]
    assert f"GET {PDS_PREFIX}/Patient?family=Smith*&birthdate=eq2010-10-22&gender=female" in counts


async def test_partial_dates_become_ranges(
    fhir: CheckedClient, emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    month = await fhir.get("/Patient?family=Sm&birthdate=2010-10")
    assert sorted(ids(month.body)) == ["9000000009", "9000000017", "9000000092"]
    after = await fhir.get("/Patient?family=Sm&birthdate=gt2010-10-22")
    assert ids(after.body) == ["9000000092"]
    before = await fhir.get("/Patient?family=Sm&birthdate=lt2010-10-23")
    assert sorted(ids(before.body)) == ["9000000009", "9000000017", "9000000025"]  # Smythe, 2005
    counts = (await upstream_requests(http, emulator))["counts"]
    assert f"GET {PDS_PREFIX}/Patient?family=Sm*&birthdate=ge2010-10-01&birthdate=le2010-10-31" in counts
    assert f"GET {PDS_PREFIX}/Patient?family=Sm*&birthdate=ge2010-10-23" in counts


async def test_empty_result_is_an_empty_bundle(fhir: CheckedClient) -> None:
    answer = await fhir.get("/Patient?family=Nobody&birthdate=1900")
    assert answer.status == 200 and answer.body["total"] == 0 and "entry" not in answer.body


async def test_restricted_patient_in_search_is_passed_through(fhir: CheckedClient) -> None:
    answer = await fhir.get("/Patient?family=Smythe&birthdate=2005-06-16")
    (patient,) = [e["resource"] for e in answer.body["entry"]]
    assert patient["id"] == "9000000025" and patient["meta"]["security"][0]["code"] == "R"
    assert not {"address", "telecom", "generalPractitioner"} & set(patient)


async def test_paging_with_count_1_forwards_and_back(
    fhir: CheckedClient, emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    first = await fhir.get(f"/Patient?{SMITHS}&_count=1")
    assert first.body["total"] == 3
    assert "previous" not in links(first.body)
    calls_after_search = await upstream_total(http, emulator)
    forward = [ids(first.body)]
    page = first.body
    while "next" in links(page):
        nxt = links(page)["next"]
        assert nxt.startswith(fhir.base_url + "/Patient?")  # our own base URL, opaque
        assert not {"family", "birthdate"} & {k for k, _ in query(nxt)}
        page = (await fhir.get(nxt)).body
        assert page["total"] == 3
        forward.append(ids(page))
    assert len(forward) == 3 and all(len(p) == 1 for p in forward)
    assert len({p[0] for p in forward}) == 3
    backward = [ids(page)]
    while "previous" in links(page):
        page = (await fhir.get(links(page)["previous"])).body
        backward.append(ids(page))
    assert backward == list(reversed(forward))
    assert await upstream_total(http, emulator) == calls_after_search  # pages never re-ask PDS
    last = (await fhir.get(links(first.body)["last"])).body
    assert ids(last) == forward[-1] and "next" not in links(last)


async def test_paging_links_work_for_post_searches(fhir: CheckedClient) -> None:
    answer = await fhir.post(
        "/Patient/_search?_count=2",
        data="family=Sm&birthdate=2010",
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=UTF-8"},
    )
    assert answer.status == 200 and answer.body["total"] == 3 and len(ids(answer.body)) == 2
    assert links(answer.body)["self"].startswith(f"{fhir.base_url}/Patient?")
    second = await fhir.get(links(answer.body)["next"])
    assert second.status == 200 and len(ids(second.body)) == 1
    assert set(ids(second.body)).isdisjoint(ids(answer.body))


async def test_post_search_merges_query_and_body(fhir: CheckedClient) -> None:
    answer = await fhir.post("/Patient/_search?family=Smith", data={"birthdate": "2010-10-22", "gender": "female"})
    assert ids(answer.body) == ["9000000009"]
    self_query = dict(query(links(answer.body)["self"]))
    assert self_query == {"family": "Smith", "birthdate": "eq2010-10-22", "gender": "female"}


async def test_post_search_with_json_is_415(fhir: CheckedClient) -> None:
    answer = await fhir.post("/Patient/_search", json={"family": "Smith"})
    assert answer.status == 415 and answer.issue["code"] == "not-supported"


async def test_expired_or_forged_page_is_410(fhir: CheckedClient) -> None:
    answer = await fhir.get("/Patient?_getpages=not-a-real-key&_offset=1&_count=1")
    assert answer.status == 410
    first = await fhir.get(f"/Patient?{SMITHS}&_count=1")
    bad = links(first.body)["next"].replace("_offset=1", "_offset=x")
    assert (await fhir.get(bad)).status == 400


async def test_summary_count_and_count_zero_give_total_only(fhir: CheckedClient) -> None:
    for q in ("_summary=count", "_count=0"):
        answer = await fhir.get(f"/Patient?{SMITHS}&{q}")
        assert answer.status == 200, q
        assert answer.body["total"] == 3 and "entry" not in answer.body
        assert dict(query(links(answer.body)["self"])).items() >= dict([q.split("=")]).items()


async def test_count_is_capped_at_the_maximum(fhir: CheckedClient) -> None:
    answer = await fhir.get(f"/Patient?{SMITHS}&_count=100000")
    assert len(ids(answer.body)) == 3
    assert ("_count", "100") in query(links(answer.body)["self"])


async def test_summary_true_tags_subsetted(fhir: CheckedClient) -> None:
    answer = await fhir.get(f"/Patient?{SMITHS}&_summary=true")
    assert answer.status == 200 and len(ids(answer.body)) == 3  # the loop below must see every match
    for entry in answer.body["entry"]:
        assert "SUBSETTED" in [t["code"] for t in entry["resource"]["meta"]["tag"]]
        assert "generalPractitioner" not in entry["resource"]


async def test_elements(fhir: CheckedClient) -> None:
    answer = await fhir.get(f"/Patient?{SMITHS}&_elements=birthDate")
    assert answer.status == 200 and len(ids(answer.body)) == 3  # the loop below must see every match
    for entry in answer.body["entry"]:
        assert set(entry["resource"]) == {"resourceType", "id", "meta", "birthDate"}
    assert ("_elements", "birthDate") in query(links(answer.body)["self"])


async def test_sort_by_birthdate_descending(fhir: CheckedClient) -> None:
    answer = await fhir.get(f"/Patient?{SMITHS}&_sort=-birthdate")
    dates = [e["resource"]["birthDate"] for e in answer.body["entry"]]
    assert dates == sorted(dates, reverse=True) and dates[0] == "2010-10-23"
    ascending = await fhir.get(f"/Patient?{SMITHS}&_sort=birthdate")
    assert ids(ascending.body)[-1] == "9000000092"


async def test_unknown_parameters_dropped_from_self_or_strict_400(fhir: CheckedClient) -> None:
    lenient = await fhir.get(f"/Patient?{SMITHS}&colour=blue&_foo=1")
    assert lenient.status == 200
    self_names = {k for k, _ in query(links(lenient.body)["self"])}
    assert self_names == {"family", "birthdate"}
    strict = await fhir.get(f"/Patient?{SMITHS}&colour=blue&_foo=1", headers={"Prefer": "handling=strict"})
    assert strict.status == 400
    assert "colour" in strict.issue["diagnostics"] and "_foo" in strict.issue["diagnostics"]


async def test_malformed_values_are_400_naming_the_parameter(
    fhir: CheckedClient, emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    cases = {
        "family=Smith&birthdate=2010-13": "birthdate",
        "family=Smith&birthdate=ne2010": "birthdate",
        "family=Smith&birthdate=2010&_count=abc": "_count",
        "family=Smith&birthdate=2010&gender=dog": "gender",
        "family=Smith&birthdate=2010&_summary=maybe": "_summary",
        "family=Smith&birthdate=2010&general-practitioner=Practitioner/1": "general-practitioner",
        "family:contains=mit&birthdate=2010": "family:contains",
        "family=Smith": "birthdate",  # PDS minimum, checked locally
    }
    for q, name in cases.items():
        answer = await fhir.get(f"/Patient?{q}")
        assert answer.status == 400, q
        assert name in answer.issue["diagnostics"], (q, answer.issue)
    assert await upstream_total(http, emulator) == 0  # none of them reached PDS


async def test_other_search_parameters_reach_pds(fhir: CheckedClient) -> None:
    answer = await fhir.get("/Patient?family=Sm&birthdate=2010&address-postalcode=LS1&general-practitioner=Y12345")
    assert sorted(ids(answer.body)) == ["9000000009", "9000000017"]
    fuzzy = await fhir.get("/Patient?family=Smyth&given=Jane&birthdate=2010-10-22&_fuzzy-match=true")
    assert "9000000009" in ids(fuzzy.body)


async def test_search_via_get_on_the_search_path(fhir: CheckedClient) -> None:
    answer = await fhir.get(f"/Patient/_search?{SMITHS}")
    assert answer.status == 200 and answer.body["total"] == 3
