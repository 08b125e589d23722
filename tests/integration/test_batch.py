"""Batch (`POST [base]`, a Bundle of GET entries) over real sockets: one batch-response
entry per request, in order, each answered and audited exactly as the same request sent
alone; transactions, other methods and malformed bodies refused clearly (issue 10)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.support.access import CLINICIAN, CPT, JANE, audit_events, auth, by_request_id, matches
from tests.support.checked_client import Answer, CheckedClient
from tests.support.tokens import token

FHIR_JSON = "application/fhir+json"
CLERK = token("user/*.rs", roles=["clerk"], subject="batch-clerk")  # demographics only


def bundle(*requests: tuple[str, str], kind: str = "batch") -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": kind,
        "entry": [{"request": {"method": method, "url": url}} for method, url in requests],
    }


async def post_batch(fhir: CheckedClient, body: Any, value: str = CLINICIAN, **headers: str) -> Answer:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return await fhir.post("/", data=raw, headers=auth(value, **{"Content-Type": FHIR_JSON, **CPT, **headers}))


def status_codes(answer: Answer) -> list[str]:
    return [e["response"]["status"] for e in answer.body.get("entry", [])]


async def test_mixed_batch_answers_each_entry_in_order(fhir: CheckedClient) -> None:
    answer = await post_batch(
        fhir,
        bundle(
            ("GET", f"Patient/{JANE}"),
            ("GET", f"MedicationRequest?patient={JANE}"),
            ("GET", "Patient/9111231130"),
            ("GET", f"{fhir.base_url}/AllergyIntolerance?patient={JANE}"),
            ("GET", "AuditEvent?patient=9000000009"),  # a clinician is no auditor: 403, that entry only
        ),
    )
    assert answer.status == 200, answer.body
    assert answer.body["type"] == "batch-response"
    assert status_codes(answer) == ["200 OK", "200 OK", "404 Not Found", "200 OK", "403 Forbidden"]
    read, search, missing, allergies, forbidden = answer.body["entry"]
    alone = await fhir.get(f"/Patient/{JANE}", headers=auth(CLINICIAN))
    assert read["resource"] == alone.body and read["response"]["etag"] == alone.headers["ETag"]
    assert read["fullUrl"] == f"{fhir.base_url}/Patient/{JANE}"
    assert search["resource"]["type"] == "searchset" and matches(search["resource"])
    assert all(r["resourceType"] == "MedicationRequest" for r in matches(search["resource"]))
    assert missing["response"]["outcome"]["issue"][0]["code"] == "not-found" and "resource" not in missing
    assert matches(allergies["resource"])
    assert forbidden["response"]["outcome"]["issue"][0]["code"] == "forbidden"


async def test_each_entry_is_audited_as_if_sent_alone(fhir: CheckedClient) -> None:
    answer = await post_batch(fhir, bundle(("GET", f"Patient/{JANE}"), ("GET", f"ServiceRequest?patient={JANE}")))
    assert status_codes(answer) == ["200 OK", "200 OK"]
    events = by_request_id(await audit_events(fhir), answer.headers["X-Request-ID"])
    subtypes = sorted(e["subtype"][0]["code"] for e in events)
    assert subtypes == ["batch", "read", "search-type"]  # the batch and each entry: one event each
    read = next(e for e in events if e["subtype"][0]["code"] == "read")
    assert any(ent.get("what", {}).get("reference") == f"Patient/{JANE}" for ent in read["entity"])
    search = next(e for e in events if e["subtype"][0]["code"] == "search-type")
    returned = {f"ServiceRequest/{r['id']}" for r in matches(answer.body["entry"][1]["resource"])}
    assert returned and returned <= {ent.get("what", {}).get("reference") for ent in search["entity"]}


async def test_entries_meet_the_callers_own_access_rules(fhir: CheckedClient) -> None:
    answer = await post_batch(
        fhir, bundle(("GET", f"Patient/{JANE}"), ("GET", f"MedicationRequest?patient={JANE}")), value=CLERK
    )
    assert status_codes(answer) == ["200 OK", "403 Forbidden"]


async def test_a_search_entry_pages_like_a_search(fhir: CheckedClient) -> None:
    answer = await post_batch(fhir, bundle(("GET", f"MedicationRequest?patient={JANE}&_count=1")))
    searchset = answer.body["entry"][0]["resource"]
    following = next(link["url"] for link in searchset["link"] if link["relation"] == "next")
    page = await fhir.get(following, headers=auth(CLINICIAN, **CPT))
    assert page.status == 200 and len(matches(page.body)) == 1
    other = await fhir.get(following, headers=auth(token("user/*.rs", roles=["clinician"], subject="x"), **CPT))
    assert other.status == 404  # bound to the caller who ran the batch


async def test_everything_as_a_batch_entry(fhir: CheckedClient) -> None:
    answer = await post_batch(fhir, bundle(("GET", f"Patient/{JANE}/$everything?_count=3")))
    assert status_codes(answer) == ["200 OK"]
    assert len(matches(answer.body["entry"][0]["resource"])) == 3


async def test_a_non_get_entry_is_405_and_the_rest_run(fhir: CheckedClient) -> None:
    answer = await post_batch(fhir, bundle(("POST", "Patient"), ("GET", f"Patient/{JANE}"), ("DELETE", "Patient/1")))
    assert status_codes(answer) == ["405 Method Not Allowed", "200 OK", "405 Method Not Allowed"]
    assert answer.body["entry"][0]["response"]["outcome"]["resourceType"] == "OperationOutcome"


async def test_conditional_read_entry(fhir: CheckedClient) -> None:
    alone = await fhir.get(f"/Patient/{JANE}")
    entry = {"request": {"method": "GET", "url": f"Patient/{JANE}", "ifNoneMatch": alone.headers["ETag"]}}
    answer = await post_batch(fhir, {"resourceType": "Bundle", "type": "batch", "entry": [entry]})
    assert status_codes(answer) == ["304 Not Modified"]


async def test_an_empty_batch_is_an_empty_response(fhir: CheckedClient) -> None:
    answer = await post_batch(fhir, {"resourceType": "Bundle", "type": "batch"})
    assert answer.status == 200 and answer.body["type"] == "batch-response" and "entry" not in answer.body


async def test_a_transaction_is_refused(fhir: CheckedClient) -> None:
    answer = await post_batch(fhir, bundle(("GET", f"Patient/{JANE}"), kind="transaction"))
    assert answer.status == 422 and answer.issue["code"] == "not-supported"


@pytest.mark.parametrize(
    "body, text",
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "not a FHIR Bundle"),
        (orjson.dumps({"resourceType": "Patient"}), "not a FHIR Bundle"),
        (orjson.dumps({"resourceType": "Bundle", "type": "collection"}), "batch"),
        (orjson.dumps({"resourceType": "Bundle", "type": "batch", "entry": [{}]}), "request is missing"),
        (orjson.dumps(bundle(("GET", ""))), "request.url is missing"),
        (orjson.dumps(bundle(("FETCH", "Patient/1"))), "request.method"),
        (
            orjson.dumps({"resourceType": "Bundle", "type": "batch", "entry": [{"request": {"method": ["GET"]}}]}),
            "method",
        ),
        (orjson.dumps({"resourceType": "Bundle", "type": "batch", "entry": [{"request": {"method": {}}}]}), "method"),
        (orjson.dumps(bundle(("GET", "_health/ready"))), "not a FHIR interaction"),
        (orjson.dumps(bundle(("GET", "Patient/%2E%2E/pas/v1/patients/H1"))), "not a FHIR interaction"),
        (orjson.dumps(bundle(("GET", "https://elsewhere.example/fhir/Patient/1"))), "another server"),
        (orjson.dumps(bundle(("GET", "//elsewhere.example/Patient/1"))), "another server"),
        (orjson.dumps(bundle(("GET", "http://[::1/Patient/1"))), "is not a URL"),
        (orjson.dumps(bundle(("GET", "pas/v1/patients/H1"))), "not a FHIR interaction"),
        (orjson.dumps(bundle(*[("GET", f"Patient/{JANE}")] * 21)), "FACADE_MAX_BATCH_ENTRIES"),
    ],
)
async def test_malformed_batches_are_400(fhir: CheckedClient, body: bytes, text: str) -> None:
    answer = await post_batch(fhir, body)
    assert answer.status == 400, answer.body
    assert text in answer.issue["diagnostics"]


async def test_a_batch_that_is_not_json_content_is_415(fhir: CheckedClient) -> None:
    answer = await fhir.post(
        "/", data=orjson.dumps(bundle(("GET", f"Patient/{JANE}"))), headers={"Content-Type": "text/plain"}
    )
    assert answer.status == 415


async def test_a_batch_needs_a_token(fhir: CheckedClient) -> None:
    answer = await fhir.post(
        "/", data=orjson.dumps(bundle(("GET", f"Patient/{JANE}"))), headers={"Content-Type": FHIR_JSON}, anonymous=True
    )
    assert answer.status == 401
