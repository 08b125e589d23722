"""Prometheus metrics: what the façade did, in PHI-free aggregates.

Every label value comes from a small closed set (resource types the registry serves,
else "other"; FHIR interactions; HTTP status codes; NHS API names; outcome words), never
from an id, an NHS number, a name, a token or a URL, so a scrape shows traffic and
never a patient, and the number of series stays bounded.

Multi-process: with PROMETHEUS_MULTIPROC_DIR set before the process starts (Granian
workers are separate processes), prometheus_client keeps each value in a per-process file
in that directory and `exposition()` adds up every worker's files, so any worker answers
a scrape for all of them. Without it, the process's default registry is served.

The label children of the per-request metrics are looked up once per label tuple and
kept (`_request_count` and friends): `labels()` validates and locks on every call, which
cost more than the increment itself on the cached-read path. The label sets are closed,
so the memo stays as small as the series it names.

This module sits below every layer (server.nhs records its calls here): it imports
nothing of the façade but server.request_trace (the console's per-request recorder, as
low). Recording is a counter increment; nothing here allocates per request beyond the
label lookup.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from contextvars import ContextVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from server import request_trace

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

REQUESTS = Counter(
    "facade_requests",
    "HTTP requests answered, by resource type, FHIR interaction and status code.",
    ["type", "interaction", "status"],
)
REQUEST_SECONDS = Histogram(
    "facade_request_seconds",
    "Time from request to the end of the response, by resource type and interaction.",
    ["type", "interaction"],
)
NHS_CALLS = Counter(
    "facade_nhs_calls",
    "NHS API calls by outcome: ok, 4xx, 429, 5xx, timeout, connection_error (sent), "
    "circuit_open, rate_limited (refused by the façade before sending).",
    ["api", "outcome"],
)
NHS_RETRIES = Counter("facade_nhs_retries", "Retries of NHS API requests.", ["api"])
NHS_RATE_LIMIT_WAIT = Histogram(
    "facade_nhs_rate_limit_wait_seconds",
    "Time NHS calls waited for the client-side rate limit.",
    ["api"],
    buckets=(0.0, 0.01, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0),
)
CACHE = Counter("facade_cache", "Read-through cache results (HIT, MISS, STALE, REVALIDATED).", ["result"])
SINGLE_FLIGHT_JOINS = Counter(
    "facade_single_flight_joins",
    "Callers that shared a call already in flight instead of starting their own (api: the NHS API, or 'cache').",
    ["api"],
)


class RequestTally:
    """What one inbound request cost upstream, for its log line."""

    __slots__ = ("nhs_calls",)

    def __init__(self) -> None:
        self.nhs_calls = 0


_tally: ContextVar[RequestTally | None] = ContextVar("facade_request_tally", default=None)


@contextlib.contextmanager
def tallying() -> Iterator[RequestTally]:
    """Count, for the request running inside the block, the NHS calls it sends (a
    single-flight leader's task inherits the context, so the leader's request pays)."""
    tally = RequestTally()
    token = _tally.set(tally)
    try:
        yield tally
    finally:
        _tally.reset(token)


def status_outcome(status: int) -> str:
    """The outcome word of an NHS answer's status."""
    if status < 400:
        return "ok"
    if status == 429:
        return "429"
    return "4xx" if status < 500 else "5xx"


@functools.cache
def _nhs_call_count(api: str, outcome: str) -> Counter:
    return NHS_CALLS.labels(api, outcome)  # bounded: the registered APIs x the outcome words


def nhs_call(api: str, outcome: str, *, sent: bool = True) -> None:
    """One NHS call ended with `outcome`; `sent` = it reached the network (counted for the
    request's log line), not refused by our own guards."""
    _nhs_call_count(api, outcome).inc()
    if sent:
        tally = _tally.get()
        if tally is not None:
            tally.nhs_calls += 1


def nhs_retry(api: str) -> None:
    NHS_RETRIES.labels(api).inc()


def rate_limit_wait(api: str, seconds: float) -> None:
    NHS_RATE_LIMIT_WAIT.labels(api).observe(seconds)


@functools.cache
def _cache_count(result: str) -> Counter:
    return CACHE.labels(result)


def cache_result(result: str) -> None:
    _cache_count(result).inc()
    request_trace.cache(result)  # the console's per-request trace; a no-op unless one is open


def single_flight_join(name: str) -> None:
    SINGLE_FLIGHT_JOINS.labels(name).inc()


@functools.cache
def _request_count(resource_type: str, interaction: str, status: int) -> Counter:
    return REQUESTS.labels(resource_type, interaction, str(status))


@functools.cache
def _request_time(resource_type: str, interaction: str) -> Histogram:
    return REQUEST_SECONDS.labels(resource_type, interaction)


def observe_request(resource_type: str, interaction: str, status: int, seconds: float) -> None:
    _request_count(resource_type, interaction, status).inc()
    _request_time(resource_type, interaction).observe(seconds)


def exposition() -> tuple[bytes, str]:
    """The text exposition of every metric (of every worker, in multi-process mode) and its
    content type."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # prometheus_client leaves it unannotated
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
