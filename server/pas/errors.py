"""PAS errors: one exception type carrying an HTTP status and field problems, rendered in
the PAS error shape for PAS callers and as an OperationOutcome for FHIR callers.

PAS error shape (documented in the README):

    {"errors": [{"field": "dateOfBirth", "value": "31/02/2010", "reason": "not a real calendar date"}],
     "requestId": "<X-Request-ID>"}

`field` and `value` are null for errors about the request as a whole. Values are echoed
to the caller who sent them and never logged; a deeply nested one is echoed as a short
note, so rendering an error can never fail on what the caller sent.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mappings.engine import Problem
from server.fhir.errors import FHIRError, ServiceUnavailable
from server.fhir.outcome import issue, operation_outcome
from server.pas.json_depth import echoable
from server.pas.store import StoreUnavailable

STORE_RETRY_AFTER = 5  # seconds: a store outage is answered at once, so ask for a short wait

_ISSUE_CODES = {
    400: "invalid",
    404: "not-found",
    409: "duplicate",
    412: "conflict",
    415: "not-supported",
    422: "invalid",
    428: "conflict",
    501: "not-supported",
    502: "exception",
    503: "transient",
    504: "timeout",
}


class PASError(Exception):
    """An error for a PAS caller; `problems` lists every field problem found."""

    def __init__(
        self,
        status: int,
        reason: str | None = None,
        *,
        problems: Iterable[Problem] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        self.problems = list(problems) or [Problem("", None, reason or "error")]
        super().__init__(reason or f"{len(self.problems)} field problem(s)")
        self.status = status
        self.headers = headers or {}

    @classmethod
    def from_fhir(cls, err: FHIRError) -> PASError:
        """A FHIR-side error (e.g. an upstream failure already mapped to a status)."""
        return cls(err.status, err.diagnostics, headers=dict(err.headers))

    def to_fhir(self) -> FHIRError:
        """For the FHIR side (PAS records seen through the FHIR providers): same status,
        same headers (Retry-After on a store outage)."""
        cls = ServiceUnavailable if self.status == 503 else FHIRError
        return cls(
            str(self) if len(self.problems) > 1 else self.problems[0].reason,
            status=self.status,
            headers=dict(self.headers),
        )

    def body(self, request_id: str) -> dict[str, Any]:
        return {
            "errors": [
                {"field": p.path or None, "value": echoable(p.value), "reason": p.reason} for p in self.problems
            ],
            "requestId": request_id,
        }

    def outcome(self) -> dict[str, Any]:
        """One OperationOutcome issue per problem, the field in `expression`."""
        code = _ISSUE_CODES.get(self.status, "processing")
        issues = []
        for p in self.problems:
            text = (
                p.reason
                if not p.path
                else f"{p.path}: {p.reason}" + (f" (value {echoable(p.value)!r})" if p.value is not None else "")
            )
            issues.append(issue(code, text, expression=[p.path] if p.path else None))
        return operation_outcome(*issues)


class PASStoreUnavailable(PASError):
    """The store of record is down: 503 for REST callers, AR for HL7 senders."""


def store_unavailable(exc: StoreUnavailable) -> PASStoreUnavailable:
    """503 + Retry-After for a store-of-record outage. Says whether the write certainly
    did not happen, or may have: then the caller reads before repeating it (a repeated
    POST then answers 409, a repeated PUT 412, never a double write)."""
    outcome = (
        "nothing was stored"
        if exc.confirmed_not_written
        else "the operation was not confirmed: read the record before repeating it"
    )
    return PASStoreUnavailable(
        503,
        f"the PAS record store is unavailable ({exc.cause}); {outcome}",
        headers={"Retry-After": str(STORE_RETRY_AFTER)},
    )
