"""A conditional read checks the requested view (_summary, _elements) before it may answer 304."""

from __future__ import annotations

from tests.support.checked_client import CheckedClient


async def test_bad_read_view_is_400_even_when_the_etag_matches(fhir: CheckedClient) -> None:
    first = await fhir.get("/Patient/9000000009")
    assert first.status == 200
    tag = first.headers["ETag"]
    for query in ("_summary=bogus", "_summary=count"):
        answer = await fhir.get(f"/Patient/9000000009?{query}", headers={"If-None-Match": tag})
        assert answer.status == 400, query  # was 304: the conditional check ran before validation
