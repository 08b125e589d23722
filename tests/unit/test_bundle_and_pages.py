"""Searchset assembly (links at the edges, entries, total) and the paging snapshot store."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.fhir.bundle import full_url, search_url, searchset
from server.fhir.outcome import information
from server.fhir.pages import SnapshotStore
from server.fhir.search_request import SearchRequest
from tests.support.fhir_validation import validate_r4

BASE = "http://facade.test/fhir"


def patients(n: int) -> list[dict[str, Any]]:
    return [{"resourceType": "Patient", "id": f"p{i}"} for i in range(n)]


def page(offset: int, count: int, total: int, **kwargs: Any) -> dict[str, Any]:
    matches = patients(total)[offset : offset + count]
    return searchset(
        base_url=BASE,
        matches=matches,
        total=total,
        self_url=f"{BASE}/Patient?x=1",
        offset=offset,
        count=count,
        match_count=total,
        link_for=lambda o: f"{BASE}/Patient?_getpages=k&_offset={o}&_count={count}",
        **kwargs,
    )


def links(bundle: dict[str, Any]) -> dict[str, str]:
    return {link["relation"]: link["url"] for link in bundle["link"]}


def test_first_page_has_next_and_last_but_no_previous() -> None:
    rel = links(page(0, 2, 5))
    assert rel["self"] == f"{BASE}/Patient?x=1"
    assert "previous" not in rel
    assert rel["next"].endswith("_offset=2&_count=2")
    assert rel["last"].endswith("_offset=4&_count=2")


def test_middle_page_has_both_directions() -> None:
    rel = links(page(2, 2, 5))
    assert rel["previous"].endswith("_offset=0&_count=2")
    assert rel["next"].endswith("_offset=4&_count=2")


def test_last_page_has_previous_but_no_next() -> None:
    rel = links(page(4, 2, 5))
    assert rel["previous"].endswith("_offset=2&_count=2")
    assert "next" not in rel and "last" not in rel


def test_single_page_without_link_factory_has_only_self() -> None:
    bundle = searchset(
        base_url=BASE,
        matches=patients(2),
        total=2,
        self_url=f"{BASE}/Patient",
        offset=0,
        count=20,
        match_count=2,
        link_for=None,
    )
    assert [link["relation"] for link in bundle["link"]] == ["self"]


@given(total=st.integers(0, 40), count=st.integers(1, 10), data=st.data())
def test_following_next_visits_every_match_once(total: int, count: int, data: st.DataObject) -> None:
    seen: list[str] = []
    offset = 0
    for _ in range(total + 2):
        bundle = page(offset, count, total)
        seen += [e["resource"]["id"] for e in bundle.get("entry", [])]
        nxt = links(bundle).get("next")
        if nxt is None:
            break
        offset = int(nxt.split("_offset=")[1].split("&")[0])
    assert seen == [f"p{i}" for i in range(total)]


def test_entries_full_url_mode_score_and_outcome() -> None:
    outcome = information("PDS says hello")
    bundle = searchset(
        base_url=BASE,
        matches=patients(2),
        included=[{"resourceType": "Organization", "id": "o1"}],
        outcome=outcome,
        total=2,
        self_url=BASE + "/Patient",
        offset=0,
        count=20,
        match_count=2,
        link_for=None,
        scores={"p0": 0.9},
    )
    entries = bundle["entry"]
    assert [e["search"]["mode"] for e in entries] == ["match", "match", "include", "outcome"]
    assert entries[0]["fullUrl"] == f"{BASE}/Patient/p0" and entries[0]["search"]["score"] == 0.9
    assert "score" not in entries[1]["search"]
    assert entries[2]["fullUrl"] == f"{BASE}/Organization/o1"
    assert entries[3]["fullUrl"].startswith("urn:uuid:")
    assert bundle["total"] == 2  # includes are not counted
    validate_r4(bundle)


def test_total_omitted_when_none_and_empty_bundle_has_no_entry() -> None:
    bundle = searchset(
        base_url=BASE,
        matches=[],
        total=None,
        self_url=BASE + "/Patient",
        offset=0,
        count=20,
        match_count=0,
        link_for=None,
    )
    assert "total" not in bundle and "entry" not in bundle
    assert bundle["type"] == "searchset"
    validate_r4(bundle)


def test_urls() -> None:
    assert full_url(BASE, {"resourceType": "Patient", "id": "9"}) == f"{BASE}/Patient/9"
    assert search_url(BASE, "Patient", []) == f"{BASE}/Patient"
    assert search_url(BASE, "Patient", [("identifier", "s|1"), ("family", "O'Brien & co")]) == (
        f"{BASE}/Patient?identifier=s%7C1&family=O%27Brien+%26+co"
    )


# -- snapshots --------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


REQ = SearchRequest(resource_type="Patient")


async def test_snapshot_round_trip_and_unguessable_keys() -> None:
    store = SnapshotStore(ttl=60, limit=10)
    k1 = await store.put(REQ, patients(3), None, [("family", "x")], {"p0": 1.0}, owner="o")
    k2 = await store.put(REQ, patients(1), None, [], {}, owner="o")
    assert k1 != k2 and len(k1) >= 20
    snap = await store.get(k1)
    assert snap is not None and [m["id"] for m in snap.matches] == ["p0", "p1", "p2"]
    assert snap.self_pairs == (("family", "x"),) and snap.scores == {"p0": 1.0}
    assert await store.get("nope") is None


async def test_snapshot_expires_after_ttl() -> None:
    clock = FakeClock()
    store = SnapshotStore(ttl=60, limit=10, clock=clock)
    key = await store.put(REQ, patients(1), None, [], {}, owner="o")
    clock.now += 60
    assert await store.get(key) is not None  # at the limit: still there
    clock.now += 0.001
    assert await store.get(key) is None
    assert await store.get(key) is None  # and removed


async def test_snapshot_store_evicts_least_recently_used() -> None:
    store = SnapshotStore(ttl=60, limit=2)
    a = await store.put(REQ, [], None, [], {}, owner="o")
    b = await store.put(REQ, [], None, [], {}, owner="o")
    assert await store.get(a) is not None  # a is now the most recently used
    c = await store.put(REQ, [], None, [], {}, owner="o")
    assert await store.get(b) is None
    assert await store.get(a) is not None and await store.get(c) is not None


@pytest.mark.parametrize("limit", [1, 3])
async def test_snapshot_store_never_exceeds_its_limit(limit: int) -> None:
    store = SnapshotStore(ttl=60, limit=limit)
    keys = [await store.put(REQ, [], None, [], {}, owner="o") for _ in range(limit + 3)]
    assert sum([await store.get(k) is not None for k in keys]) == limit
