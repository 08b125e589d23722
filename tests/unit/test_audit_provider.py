"""AuditEventProvider over the in-memory trail: declarations, read, every search parameter
with its FHIR semantics, newest first, and the property that the trail's indexed
pre-filter never drops an event the matcher would accept. Also the in-memory trail's
own promises (bounded, exactly once, copies)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.access.audit_trail import AuditUnavailable, InMemoryAuditTrail
from server.fhir.errors import NotFound, ServiceUnavailable
from server.fhir.search_match import matches
from server.fhir.search_request import parse_search
from server.providers.audit_event import AuditEventProvider, _bare_agent_values, store_filters
from server.providers.base import RequestContext
from tests.support.audit_events import BASE_TIME, CLIENT_SYSTEM, ISSUER, audit_event

CTX = RequestContext(request_id="test", base_url="http://facade.test")


def request_of(provider: AuditEventProvider, pairs: Sequence[tuple[str, str]]) -> Any:
    return parse_search(list(pairs), provider.declaration(20, 100), strict=True)


async def ids(provider: AuditEventProvider, *pairs: tuple[str, str]) -> list[str]:
    result = await provider.search(request_of(provider, pairs), CTX)
    return [e["id"] for e in result.matches]


@pytest.fixture
async def provider() -> AuditEventProvider:
    trail = InMemoryAuditTrail()
    events = [
        audit_event(event_id="a-read", minutes=0, patients=["9000000009"], user="u1", subtype="read"),
        audit_event(
            event_id="b-search",
            minutes=10,
            patients=["9000000009", "9000000017"],
            user="u2",
            subtype="search-type",
            action="E",
            others=["MedicationRequest/abc"],
        ),
        audit_event(event_id="c-refused", minutes=20, patients=["9000000025"], user="u1", subtype="read", outcome="4"),
        audit_event(
            event_id="d-nextday",
            minutes=60 * 24,
            patients=["9000000017"],
            user="u3",
            client="pas-feed",
            subtype="create",
            action="C",
            outcome="8",
        ),
    ]
    events[3]["agent"].append({"who": {"reference": "Practitioner/p1"}})
    for event in events:
        await trail.append(event)
    return AuditEventProvider(trail)


def test_declarations() -> None:
    assert AuditEventProvider.resource_type == "AuditEvent"
    assert AuditEventProvider.interactions == ("read", "search-type")
    assert AuditEventProvider.cacheable is False  # never behind the read-through cache
    names = {p.name for p in AuditEventProvider.search_params}
    assert {"patient", "agent", "date", "outcome", "type", "subtype", "action"} <= names
    assert all(p.path and p.definition for p in AuditEventProvider.search_params)


async def test_read(provider: AuditEventProvider) -> None:
    event = await provider.read("b-search", CTX)
    assert event["id"] == "b-search" and event["resourceType"] == "AuditEvent"
    with pytest.raises(NotFound):
        await provider.read("nope", CTX)


async def test_everything_newest_first(provider: AuditEventProvider) -> None:
    assert await ids(provider) == ["d-nextday", "c-refused", "b-search", "a-read"]


@pytest.mark.parametrize(
    "value, expected",
    [
        ("9000000009", ["b-search", "a-read"]),
        ("Patient/9000000017", ["d-nextday", "b-search"]),
        ("https://facade.test/Patient/9000000025", ["c-refused"]),
        ("9000000009,9000000025", ["c-refused", "b-search", "a-read"]),
        ("9999999999", []),
    ],
)
async def test_patient(provider: AuditEventProvider, value: str, expected: list[str]) -> None:
    assert await ids(provider, ("patient", value)) == expected


@pytest.mark.parametrize(
    "pairs, expected",
    [
        ([("agent", "u1")], ["c-refused", "a-read"]),  # a bare value: the identifier value, any system
        ([("agent", "pas-feed")], ["d-nextday"]),
        ([("agent", "u1,u3")], ["d-nextday", "c-refused", "a-read"]),
        ([("agent:identifier", f"{ISSUER}|u2")], ["b-search"]),
        ([("agent:identifier", f"{CLIENT_SYSTEM}|u2")], []),  # right value, wrong system
        ([("agent:identifier", "u2")], ["b-search"]),
        ([("agent", "Practitioner/p1")], ["d-nextday"]),
        ([("agent", "p1")], ["d-nextday"]),  # a bare value is also a reference id
        ([("agent:Practitioner", "p1")], ["d-nextday"]),
        ([("agent", "u1"), ("agent", "clinic-app")], ["c-refused", "a-read"]),  # AND
    ],
)
async def test_agent(provider: AuditEventProvider, pairs: list[tuple[str, str]], expected: list[str]) -> None:
    assert await ids(provider, *pairs) == expected


@pytest.mark.parametrize(
    "pairs, expected",
    [
        ([("date", "2026-11-29")], ["c-refused", "b-search", "a-read"]),
        ([("date", "2026-11-30")], ["d-nextday"]),
        ([("date", "ge2026-11-29T19:10:00Z")], ["d-nextday", "c-refused", "b-search"]),
        ([("date", "gt2026-11-29T19:10:00.123Z")], ["d-nextday", "c-refused"]),
        ([("date", "le2026-11-29T19:10:00.123Z")], ["b-search", "a-read"]),
        ([("date", "lt2026-11-29T19:10:00.123Z")], ["a-read"]),
        ([("date", "eq2026-11-29T19:10:00.123Z")], ["b-search"]),
        ([("date", "ne2026-11-29")], ["d-nextday"]),
        ([("date", "ge2026-11-29T19:05:00Z"), ("date", "lt2026-11-29T19:30:00Z")], ["c-refused", "b-search"]),
        ([("date", "2026-11-29T19:00:00.123Z,2026-11-30")], ["d-nextday", "a-read"]),
        ([("date", "sa2026-11-29")], ["d-nextday"]),
        ([("date", "eb2026-11-30")], ["c-refused", "b-search", "a-read"]),
        ([("date", "2026-11-29T20:10:00.123+01:00")], ["b-search"]),  # the same instant in another zone
    ],
)
async def test_date(provider: AuditEventProvider, pairs: list[tuple[str, str]], expected: list[str]) -> None:
    assert await ids(provider, *pairs) == expected


@pytest.mark.parametrize(
    "pairs, expected",
    [
        ([("outcome", "4")], ["c-refused"]),
        ([("outcome", "4,8")], ["d-nextday", "c-refused"]),
        ([("outcome:not", "0")], ["d-nextday", "c-refused"]),
        ([("type", "rest")], ["d-nextday", "c-refused", "b-search", "a-read"]),
        ([("type", "read")], ["c-refused", "a-read"]),  # a subtype code
        ([("type", "http://hl7.org/fhir/restful-interaction|create")], ["d-nextday"]),
        ([("type", "http://terminology.hl7.org/CodeSystem/audit-event-type|read")], []),  # read is no type code
        ([("type:not", "read")], ["d-nextday", "b-search"]),  # in neither type nor subtype
        ([("type:not", "rest")], []),
        ([("type:missing", "false")], ["d-nextday", "c-refused", "b-search", "a-read"]),
        ([("type:missing", "true")], []),
        ([("subtype", "search-type")], ["b-search"]),
        ([("subtype", "rest")], []),
        ([("action", "E")], ["b-search"]),
        ([("action", "C,R")], ["d-nextday", "c-refused", "a-read"]),
        ([("entity", "MedicationRequest/abc")], ["b-search"]),
        ([("patient", "9000000009"), ("agent", "u1"), ("type", "read"), ("date", "2026-11-29")], ["a-read"]),
    ],
)
async def test_tokens_and_combinations(
    provider: AuditEventProvider, pairs: list[tuple[str, str]], expected: list[str]
) -> None:
    assert await ids(provider, *pairs) == expected


async def test_sort_by_date_ascending_is_honoured_by_the_server_declaration(provider: AuditEventProvider) -> None:
    request = request_of(provider, [("_sort", "date")])
    assert [k.param for k in request.sort] == ["date"]  # date has a path: the server can sort by it


class FailingTrail(InMemoryAuditTrail):
    async def find(self, **kwargs: Any) -> list[dict[str, Any]]:
        raise AuditUnavailable("the audit trail cannot be searched now")

    async def get(self, event_id: str) -> dict[str, Any] | None:
        raise AuditUnavailable("the audit trail cannot be read now")

    def status(self) -> str:
        return "spooling"


async def test_an_unreadable_trail_is_503_with_retry_after() -> None:
    provider = AuditEventProvider(FailingTrail())
    for call in (lambda: provider.read("x", CTX), lambda: provider.search(request_of(provider, []), CTX)):
        with pytest.raises(ServiceUnavailable) as raised:
            await call()
        assert raised.value.status == 503 and raised.value.headers == {"Retry-After": "5"}


async def test_warnings_when_the_answer_may_be_incomplete() -> None:
    class Spooling(InMemoryAuditTrail):
        def status(self) -> str:
            return "spooling"

    trail = Spooling()
    for n in range(5):
        await trail.append(audit_event(event_id=f"e{n}", minutes=n))
    provider = AuditEventProvider(trail, max_results=3)
    result = await provider.search(request_of(provider, []), CTX)
    assert [e["id"] for e in result.matches] == ["e4", "e3", "e2"]
    texts = " ".join(i["diagnostics"] for i in result.issues)
    assert "newest 3" in texts and "spool" in texts
    assert {i["severity"] for i in result.issues} == {"warning"}


def test_store_filters_narrow_only_where_exact() -> None:
    p = AuditEventProvider(InMemoryAuditTrail())
    f = store_filters(
        request_of(
            p,
            [
                ("patient", "9000000009"),
                ("agent:identifier", f"{ISSUER}|u1"),
                ("outcome", "4"),
                ("type", "read,vread"),
                ("date", "ge2026-11-29"),
                ("date", "lt2026-12-01"),
            ],
        )
    )
    assert (f.patient, f.agent, f.outcome, f.types) == ("Patient/9000000009", "u1", "4", ("read", "vread"))
    assert f.recorded_from == BASE_TIME.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(seconds=1)
    assert f.recorded_to == BASE_TIME.replace(day=1, month=12, hour=0, minute=0, second=0, microsecond=0) + timedelta(
        seconds=1
    )
    # OR-ed patients, :not, ne dates and :missing cannot be pushed down as one value or range.
    f = store_filters(
        request_of(
            p,
            [
                ("patient", "1,2"),
                ("outcome:not", "0"),
                ("type:not", "read"),
                ("date", "ne2026-11-29"),
                ("agent:missing", "false"),
            ],
        )
    )
    assert f == type(f)()


# --- the pre-filter is never narrower than the matcher -------------------------------------

PATIENTS = ["9000000009", "9000000017", "9000000025"]
USERS = ["u1", "u2"]
SUBTYPES = ["read", "search-type", "create"]
DATES = ["2026-11-29", "2026-11-29T19:30", "2026-11-29T19:00:00.123Z", "2026-11-30", "2026-11"]
PREFIXES = ["", "eq", "ne", "gt", "lt", "ge", "le", "sa", "eb"]

query_pairs = st.lists(
    st.one_of(
        st.tuples(
            st.sampled_from(["patient"]), st.lists(st.sampled_from(PATIENTS), min_size=1, max_size=2).map(",".join)
        ),
        st.tuples(st.sampled_from(["agent", "agent:identifier"]), st.sampled_from(USERS + ["clinic-app"])),
        st.tuples(st.just("agent:identifier"), st.sampled_from([f"{ISSUER}|u1", f"{CLIENT_SYSTEM}|clinic-app"])),
        st.tuples(st.just("date"), st.tuples(st.sampled_from(PREFIXES), st.sampled_from(DATES)).map("".join)),
        st.tuples(st.sampled_from(["outcome", "outcome:not"]), st.sampled_from(["0", "4", "8", "0,4"])),
        st.tuples(
            st.sampled_from(["type", "type:not", "subtype"]), st.sampled_from(SUBTYPES + ["rest", "read,create"])
        ),
        st.tuples(st.just("action"), st.sampled_from(["R", "E", "C"])),
    ),
    max_size=4,
)
events = st.lists(
    st.builds(
        lambda patients, user, subtype, minutes, outcome: audit_event(
            patients=patients,
            user=user,
            subtype=subtype,
            minutes=minutes,
            outcome=outcome,
            action={"read": "R", "search-type": "E", "create": "C"}[subtype],
        ),
        st.lists(st.sampled_from(PATIENTS), max_size=2),
        st.sampled_from(USERS),
        st.sampled_from(SUBTYPES),
        st.one_of(
            st.sampled_from([-60 * 19 - 1, -1, 0, 1, 29, 30, 31, 60 * 5 - 1, 60 * 5, 60 * 24, 60 * 29]),
            st.integers(min_value=-90, max_value=90),
            st.integers(min_value=-60 * 24 * 40, max_value=60 * 48),
        ),
        st.sampled_from(["0", "4", "8"]),
    ),
    max_size=12,
)


date_pairs = st.lists(
    st.tuples(st.just("date"), st.tuples(st.sampled_from(PREFIXES), st.sampled_from(DATES)).map("".join)),
    min_size=1,
    max_size=2,
)


@settings(max_examples=300, deadline=None)
@given(stored=events, pairs=st.one_of(query_pairs, date_pairs))
def test_the_indexed_prefilter_never_drops_a_match(stored: list[dict[str, Any]], pairs: list[tuple[str, str]]) -> None:
    async def run() -> None:
        trail = InMemoryAuditTrail()
        for event in stored:
            await trail.append(event)
        provider = AuditEventProvider(trail)
        request = request_of(provider, pairs)
        found = (await provider.search(request, CTX)).matches
        everything = await trail.find(limit=10_000)
        # The oracle: the one matcher (with the provider's agent rule) over every stored
        # event, no pre-filter.
        expected = [
            e for e in everything if matches(e, [_bare_agent_values(p) for p in request.params], provider._specs)
        ]
        assert [e["id"] for e in found] == [e["id"] for e in expected]
        recorded = [e["recorded"] for e in found]
        assert recorded == sorted(recorded, reverse=True)  # all in UTC with ms: text order is time order

    asyncio.run(run())


# --- the in-memory trail -------------------------------------------------------------------


async def test_in_memory_trail_is_bounded_exactly_once_and_copies() -> None:
    trail = InMemoryAuditTrail(max_events=3)
    event = audit_event(event_id="first", minutes=0)
    await trail.append(event)
    await trail.append(dict(event, outcome="8"))  # the same id again: kept once, as first stored
    event["outcome"] = "12"  # the caller's dict changing later does not change the record
    stored = await trail.get("first")
    assert stored is not None and stored["outcome"] == "0"
    stored["outcome"] = "4"
    assert (await trail.get("first") or {})["outcome"] == "0"
    for n in range(1, 4):
        await trail.append(audit_event(event_id=f"e{n}", minutes=n))
    assert await trail.get("first") is None and trail.dropped == 1  # the oldest went
    assert [e["id"] for e in await trail.find()] == ["e3", "e2", "e1"]
    assert [e["id"] for e in await trail.find(limit=2)] == ["e3", "e2"]
    assert trail.status() == "ok" and trail.backend == "memory"


@pytest.mark.parametrize(
    "bad",
    [
        {"resourceType": "Patient", "id": "x", "recorded": "2026-11-29T19:00:00Z"},
        {"resourceType": "AuditEvent", "recorded": "2026-11-29T19:00:00Z"},
        {"resourceType": "AuditEvent", "id": "", "recorded": "2026-11-29T19:00:00Z"},
        {"resourceType": "AuditEvent", "id": "x", "recorded": "2026-11-29"},
    ],
)
async def test_in_memory_trail_refuses_what_is_no_storable_audit_event(bad: dict[str, Any]) -> None:
    trail = InMemoryAuditTrail()
    with pytest.raises(ValueError):
        await trail.append(bad)
    assert await trail.find() == []


@pytest.mark.parametrize("value", ["ge0001-01-01", "lt9999-12-30", "eq0001", "le9998"])
async def test_dates_at_the_ends_of_the_calendar(provider: AuditEventProvider, value: str) -> None:
    found = await ids(provider, ("date", value))
    assert found == (["d-nextday", "c-refused", "b-search", "a-read"] if value[:2] in ("ge", "lt", "le") else [])


async def test_in_memory_trail_refuses_what_json_cannot_hold() -> None:
    with pytest.raises(ValueError):
        await InMemoryAuditTrail().append({**audit_event(), "extension": [{"valueInteger64": 2**70}]})
