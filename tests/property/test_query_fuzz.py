"""Random query strings against every resource type's search and read on a running façade.

Names come from the façade's own CapabilityStatement (the declared search parameters)
plus result parameters, modifiers and junk; values mix FHIR prefixes, token pipes,
commas, unicode, long strings and raw or broken percent-encoding. Whatever the query,
the answer is a FHIR answer: a status from the allowed set (never 500), Content-Type
application/fhir+json, an OperationOutcome for every error, and every body valid R4.

One façade (and emulator) per resource type: the hypothesis loop runs in a worker
thread and sends each request on the test's event loop, so the servers are started
once, not per example.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

import orjson
import pytest
import yarl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.fhir_validation import validate_r4
from tests.support.servers import FHIRClient
from tests.support.tokens import bearer

# 414: query strings over FACADE_MAX_QUERY_CHARS (long unicode values, percent-encoded).
ALLOWED = {200, 304, 400, 401, 403, 404, 406, 410, 414, 415, 422, 501, 502, 503, 504}
RESOURCE_TYPES = ["Patient", "MedicationRequest", "ServiceRequest", "AllergyIntolerance"]
RESULT_PARAMS = [
    "_count",
    "_sort",
    "_elements",
    "_summary",
    "_include",
    "_revinclude",
    "_format",
    "_id",
    "_lastUpdated",
    "_total",
    "_getpages",
    "_pageoffset",
    "_contained",
    "_has:Patient:x:y",
]
MODIFIERS = [
    "",
    ":missing",
    ":exact",
    ":contains",
    ":identifier",
    ":not",
    ":text",
    ":below",
    ":Patient",
    ":bogus",
    ".identifier",
    ".family",
]
PREFIXES = ["", "eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap", "zz"]
EXAMPLES = 150  # per resource type and endpoint: about 13 s for all eight tests on the shared machine

atoms = st.one_of(
    st.sampled_from(
        [
            "9000000009",
            "9000000017",
            "9449305552",
            "1234567890",
            "pas-H1",
            "Patient/9000000009",
            "https://fhir.nhs.uk/Id/nhs-number|9000000009",
            "|9000000009",
            "https://fhir.nhs.uk/Id/nhs-number|",
            "|",
            "true",
            "false",
            "active",
            "-",
            "*",
            "Smith",
            "Sm*th",
            "2020",
            "2020-02-30",
            "2010-10-10T10:10:10Z",
            "2020-13",
            "0",
            "-1",
            "99999999999999999999",
            "1e9",
            "NaN",
        ]
    ),
    st.builds(
        lambda p, d: p + d,
        st.sampled_from(PREFIXES),
        st.from_regex(r"\d{1,5}(-\d{1,2}(-\d{1,2}(T\d{1,2}:\d{2}(:\d{2})?(Z|[+-]\d{2}:\d{2})?)?)?)?", fullmatch=True),
    ),
    st.text(max_size=12),
    st.text(alphabet="%|,:$.\\/-_ ?&=#+;", max_size=8),
    st.text(alphabet="aé€𝄞\u0000\u202e", min_size=200, max_size=1500),
)
values = st.lists(atoms, min_size=1, max_size=3).map(",".join)


def _encode(text: str, raw: bool) -> str:
    """Percent-encode, or (raw) keep FHIR's own punctuation and any % as sent, which lets
    broken escapes (%zz, a lone %) through."""
    return quote(text, safe="|,:$%/" if raw else "")


@st.composite
def query_strings(draw: Any, declared: list[str]) -> str:
    pairs = []
    for _ in range(draw(st.integers(0, 4))):
        name = draw(
            st.one_of(
                st.sampled_from(declared or ["_id"]),
                st.sampled_from(declared or ["_id"]),
                st.sampled_from(RESULT_PARAMS),
                st.text(max_size=10),
            )
        )
        modifier = draw(st.sampled_from(MODIFIERS))
        value = draw(st.sampled_from(["true", "false"]) if modifier == ":missing" and draw(st.booleans()) else values)
        raw = draw(st.booleans())
        pairs.append(f"{_encode(name + modifier, raw)}={_encode(value, raw)}")
    if draw(st.booleans()):
        pairs.append("patient=9000000009" if draw(st.booleans()) else "identifier=9000000009")
    return "&".join(draw(st.permutations(pairs)))


ids = st.one_of(
    st.sampled_from(["9000000009", "pas-H1-1", "x" * 64, "x" * 65, "..", "a.b-c", "%2F", "%00", "%ff"]),
    st.text(min_size=1, max_size=80).map(lambda s: quote(s, safe="")),
)


async def _check(client: FHIRClient, path_and_query: str, form: str | None = None) -> None:
    """One request: GET, or POST with `form` as an application/x-www-form-urlencoded body."""
    url = yarl.URL(client.base_url + path_and_query, encoded=True)
    if form is None:
        request = client.session.get(url, allow_redirects=False, headers=bearer())
    else:
        request = client.session.post(
            url,
            data=form.encode(),
            allow_redirects=False,
            headers={"Content-Type": "application/x-www-form-urlencoded", **bearer()},
        )
    async with request as resp:
        raw = await resp.read()
        status, ctype = resp.status, resp.headers.get("Content-Type", "")
    where = f"{'GET' if form is None else 'POST'} {path_and_query[:300]} {(form or '')[:300]} -> {status}"
    assert status in ALLOWED, where
    if status == 304:
        return
    assert ctype.startswith("application/fhir+json"), f"{where} {ctype}"
    body = orjson.loads(raw)
    if status >= 400:
        assert body["resourceType"] == "OperationOutcome", where
    validate_r4(body)


def _run(loop: asyncio.AbstractEventLoop, client: FHIRClient, path_and_query: str, form: str | None = None) -> None:
    asyncio.run_coroutine_threadsafe(_check(client, path_and_query, form), loop).result(timeout=30)


async def _declared(client: FHIRClient, rtype: str) -> list[str]:
    status, _, statement = await client.get("/metadata")
    assert status == 200
    resource = next(r for r in statement["rest"][0]["resource"] if r["type"] == rtype)
    return [p["name"] for p in resource.get("searchParam", [])]


FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=False,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.parametrize("rtype", RESOURCE_TYPES)
async def test_search_get_or_post_never_fails_badly(facade: FHIRClient, rtype: str) -> None:
    declared = await _declared(facade, rtype)
    loop = asyncio.get_running_loop()

    @FUZZ_SETTINGS
    @given(query=query_strings(declared), post=st.booleans())
    def search(query: str, post: bool) -> None:
        if post:
            _run(loop, facade, f"/{rtype}/_search", form=query)
        else:
            _run(loop, facade, f"/{rtype}?{query}")

    await asyncio.to_thread(search)


@pytest.mark.parametrize("rtype", RESOURCE_TYPES)
async def test_read_never_fails_badly(facade: FHIRClient, rtype: str) -> None:
    loop = asyncio.get_running_loop()

    @FUZZ_SETTINGS
    @given(resource_id=ids, query=query_strings([]))
    def read(resource_id: str, query: str) -> None:
        _run(loop, facade, f"/{rtype}/{resource_id}?{query}")

    await asyncio.to_thread(read)
