"""Failures the façade decides itself, before any byte goes to NHS.

They subclass the upstream failures so `to_fhir_error` maps them like their upstream
twins (503 with Retry-After), but they are never retried and never count against the
circuit breaker: no NHS API was asked.
"""

from __future__ import annotations

from server.nhs.errors import UpstreamRateLimited, UpstreamUnavailable


class LocalRefusal:
    """Marker: raised by our own guards, not by an NHS API."""


class CircuitOpen(LocalRefusal, UpstreamUnavailable):
    """The API failed repeatedly; we fail fast until the open period ends."""


class NoSlot(LocalRefusal, UpstreamRateLimited):
    """No client-side rate-limit token or concurrency slot within the request budget."""
