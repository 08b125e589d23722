"""Operability over real sockets (issue 11): Prometheus /metrics, the liveness and
readiness probes, the request log line (text and JSON) and W3C traceparent to NHS.

Metrics are process-wide (the emulator and every façade of the test run share one
registry), so each test compares a scrape after its requests with one before.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from server.log_setup import JSONFormatter
from server.trace_context import parse_traceparent
from tests.support.checked_client import CheckedClient
from tests.support.emulator_control import inject, upstream_requests
from tests.support.servers import Emulator, free_port, running_facade

JANE = "9000000009"
READ = f"/Patient/{JANE}"
SEARCH = "/Patient?family=Smith&gender=female&birthdate=eq2010-10-22"
# What every label value may be: the served types, and the collapsed names.
COLLAPSED_TYPES = {"other", "system", "pas"}


async def scrape(http: aiohttp.ClientSession, url: str, **kwargs: Any) -> str:
    async with http.get(url + "/metrics", **kwargs) as resp:
        assert resp.status == 200, await resp.text()
        assert resp.headers["Content-Type"].startswith("text/plain")
        return await resp.text()


def value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples called `name` whose labels include `labels` (0 when none)."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def label_values(text: str, prefix: str, label: str) -> set[str]:
    return {
        sample.labels[label]
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith(prefix) and label in sample.labels
    }


# ---- /metrics -------------------------------------------------------------------------------


async def test_requests_are_counted_with_bounded_labels_and_no_patient_data(
    fhir: CheckedClient, http: aiohttp.ClientSession
) -> None:
    before = await scrape(http, fhir.base_url)
    assert (await fhir.get(READ)).status == 200
    assert (await fhir.get(SEARCH)).status == 200
    assert (await fhir.get("/Frobnicate/12345")).status == 404  # an unknown type: "other", never its name
    after = await scrape(http, fhir.base_url)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("facade_requests_total", type="Patient", interaction="read", status="200") == 1
    assert moved("facade_requests_total", type="Patient", interaction="search-type", status="200") == 1
    assert moved("facade_requests_total", type="other", status="404") == 1
    assert moved("facade_request_seconds_count", type="Patient", interaction="read") == 1
    assert moved("facade_nhs_calls_total", api="PDS", outcome="ok") >= 2
    types = label_values(after, "facade_request", "type")
    assert "Patient" in types and "Frobnicate" not in types
    assert all(t in COLLAPSED_TYPES or t[0].isupper() for t in types)
    # Patient data and path segments in no label and no line (values aside: a sample's
    # value or timestamp may contain any digits, e.g. 1.795998123453826e+09 holds "12345").
    labels_and_names = "\n".join(line.rsplit(" ", 1)[0] for line in after.splitlines() if line and line[0] != "#")
    for secret in (JANE, "Smith", "2010-10-22", "12345", "Frobnicate"):
        assert secret not in labels_and_names


async def test_nhs_call_outcomes_retries_and_circuit_opens(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    async with running_facade(emulator, upstream_breaker_threshold=2, upstream_backoff_base=0.0) as url:
        fhir = CheckedClient(url, http)
        before = await scrape(http, url)
        await inject(http, emulator, status=503)  # one 503, then the retry answers
        assert (await fhir.get(READ)).status == 200
        mid = await scrape(http, url)
        assert (
            value(mid, "facade_nhs_calls_total", api="PDS", outcome="5xx")
            - value(before, "facade_nhs_calls_total", api="PDS", outcome="5xx")
            == 1
        )
        assert value(mid, "facade_nhs_retries_total", api="PDS") - value(before, "facade_nhs_retries_total", api="PDS")
        assert value(mid, "facade_nhs_calls_total", api="PDS", outcome="ok") > value(
            before, "facade_nhs_calls_total", api="PDS", outcome="ok"
        )
        await inject(http, emulator, status=429, retry_after="0", times=1)
        await inject(http, emulator, status=503, times=-1)  # down: the breaker opens after two failures
        assert (await fhir.get(READ)).status in (429, 503)
        assert (await fhir.get(READ)).status == 503
        after = await scrape(http, url)
    for outcome in ("429", "circuit_open"):
        assert value(after, "facade_nhs_calls_total", api="PDS", outcome=outcome) > value(
            before, "facade_nhs_calls_total", api="PDS", outcome=outcome
        ), outcome
    assert label_values(after, "facade_nhs_calls", "outcome") <= {
        "ok",
        "4xx",
        "429",
        "5xx",
        "timeout",
        "connection_error",
        "circuit_open",
        "rate_limited",
    }


async def test_cache_results_and_single_flight_joins_are_counted(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    async with running_facade(emulator, cache_enabled=True) as url:
        fhir = CheckedClient(url, http)
        before = await scrape(http, url)
        assert (await fhir.get(READ)).headers["X-Cache"] == "MISS"
        assert (await fhir.get(READ)).headers["X-Cache"] == "HIT"
        await inject(http, emulator, delay=0.3)  # one slow search: the others join it
        answers = await asyncio.gather(*(fhir.get(SEARCH) for _ in range(4)))
        assert all(a.status == 200 for a in answers)
        after = await scrape(http, url)
    for result in ("MISS", "HIT"):
        assert value(after, "facade_cache_total", result=result) > value(before, "facade_cache_total", result=result)
    joins = value(after, "facade_single_flight_joins_total") - value(before, "facade_single_flight_joins_total")
    assert joins >= 3  # the cache's flight (or PDS's) was shared by three of the four
    assert label_values(after, "facade_cache", "result") <= {"HIT", "MISS", "STALE", "REVALIDATED"}


async def test_metrics_token_guards_the_scrape(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    async with running_facade(emulator, metrics_token="scrape-secret") as url:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "scrape-secret"}):
            async with http.get(url + "/metrics", headers=headers) as resp:
                assert resp.status == 401 and resp.headers["WWW-Authenticate"].startswith("Bearer")
                assert "scrape-secret" not in await resp.text()
        text = await scrape(http, url, headers={"Authorization": "Bearer scrape-secret"})
        assert "facade_requests_total" in text


# ---- probes ---------------------------------------------------------------------------------


async def test_live_and_ready_without_a_token(fhir: CheckedClient, http: aiohttp.ClientSession) -> None:
    async with http.get(fhir.base_url + "/_health/live") as resp:
        assert resp.status == 200 and (await resp.json())["status"] == "live"
    async with http.get(fhir.base_url + "/_health/ready") as resp:
        body = await resp.json()
        assert resp.status == 200, body
        assert body == {"status": "ready", "checks": {"mongodb": "not configured", "nhs_token": "ok"}}
        assert resp.headers["Cache-Control"] == "no-store"


async def test_not_ready_while_mongodb_is_down(emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path) -> None:
    dead = f"mongodb://127.0.0.1:{free_port()}/"  # nothing listens there
    async with running_facade(
        emulator, mongodb_uri=dead, mongodb_timeout_ms=100, audit_spool_dir=tmp_path / "spool"
    ) as url:
        async with http.get(url + "/_health/live") as resp:
            assert resp.status == 200  # the process is fine: do not restart it
        async with http.get(url + "/_health/ready") as resp:
            body = await resp.json()
            raw = await resp.text()
        assert resp.status == 503, body
        assert body["status"] == "not ready" and body["checks"]["nhs_token"] == "ok"
        assert body["checks"]["mongodb"] != "ok"
        assert "127.0.0.1" not in raw and "mongodb://" not in raw  # no hosts, no URIs


async def test_not_ready_while_the_nhs_token_cannot_be_had(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    # Sandbox signed-JWT: an ephemeral key registered with the emulator, its token endpoint.
    async with running_facade(emulator, auth_mode="signed-jwt", emulator_url=emulator.url) as url:
        await inject(http, emulator, path_prefix="/oauth2/token", status=500, times=-1)
        async with http.get(url + "/_health/ready") as resp:
            body = await resp.json()
        assert resp.status == 503 and body["checks"]["nhs_token"].startswith("unavailable"), body
        emulator.state.faults.clear()
        async with http.get(url + "/_health/ready") as resp:
            assert resp.status == 200, await resp.text()


# ---- the request log line -------------------------------------------------------------------


def request_lines(caplog: pytest.LogCaptureFixture) -> dict[str, logging.LogRecord]:
    """The request log records, by request id."""
    records = [r for r in caplog.records if r.name == "facade.access" and isinstance(getattr(r, "fields", None), dict)]
    return {fields(r)["request_id"]: r for r in records}


def fields(record: logging.LogRecord) -> dict[str, Any]:
    return dict(getattr(record, "fields"))  # noqa: B009  (set through `extra`, unknown to LogRecord)


async def test_request_log_line_in_text_and_json_holds_no_patient_data(
    fhir: CheckedClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    read = await fhir.get(READ)
    search = await fhir.get(SEARCH)
    lines = request_lines(caplog)
    read_line = fields(lines[read.headers["X-Request-ID"]])
    assert read_line["type"] == "Patient" and read_line["interaction"] == "read"
    assert read_line["status"] == 200 and read_line["nhs_calls"] == 1 and read_line["duration_ms"] >= 0
    assert parse_traceparent(f"00-{read_line['trace_id']}-00f067aa0ba902b7-01") is not None
    search_line = fields(lines[search.headers["X-Request-ID"]])
    assert search_line["interaction"] == "search-type" and search_line["cache"] is None  # cache off
    json_format = JSONFormatter()
    for record in caplog.records:  # every line logged while serving, not only the request lines
        for rendered in (record.getMessage(), json_format.format(record)):
            for secret in (JANE, "Smith", "2010-10-22", "family="):
                assert secret not in rendered, (record.name, rendered)


async def test_json_log_line_names_the_cache_result(
    emulator: Emulator, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with running_facade(emulator, cache_enabled=True) as url:
        fhir = CheckedClient(url, http)
        await fhir.get(READ)
        hit = await fhir.get(READ)
    line = orjson.loads(JSONFormatter().format(request_lines(caplog)[hit.headers["X-Request-ID"]]))
    assert line["cache"] == "HIT" and line["nhs_calls"] == 0 and line["logger"] == "facade.access"
    assert {"request_id", "trace_id", "type", "interaction", "status", "duration_ms"} <= set(line)


# ---- traceparent ----------------------------------------------------------------------------


async def test_traceparent_is_sent_on_to_nhs_as_a_child_span(
    fhir: CheckedClient, emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    inbound = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    await fhir.get(READ, headers={"traceparent": inbound})
    (sent,) = [h["traceparent"] for h in (await upstream_requests(http, emulator))["context_headers"]]
    child = parse_traceparent(sent)
    assert child is not None and sent.startswith("00-")
    assert child.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736" and child.flags == "01"
    assert child.span_id != "00f067aa0ba902b7"


@pytest.mark.parametrize(
    "inbound",
    [
        None,
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",  # upper case: not allowed
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # version ff
        f"00-{JANE}-Smith",
    ],
)
async def test_an_invalid_traceparent_starts_a_new_trace(
    fhir: CheckedClient, emulator: Emulator, http: aiohttp.ClientSession, inbound: str | None
) -> None:
    await fhir.get(READ, headers={"traceparent": inbound} if inbound else {})
    (sent,) = [h["traceparent"] for h in (await upstream_requests(http, emulator))["context_headers"]]
    trace = parse_traceparent(sent)
    assert trace is not None and trace.flags == "00"
    assert inbound is None or trace.trace_id not in inbound.lower()
