"""Typed errors that carry their HTTP meaning; one handler (server.fhir.handlers) renders them.

Raise these anywhere below the HTTP layer. Each class fixes the status code and the
FHIR IssueType, so a status is decided in exactly one place.
"""

from __future__ import annotations

import math
from typing import Any

from server.fhir.outcome import Issue, issue, operation_outcome


class FHIRError(Exception):
    """Base: an error the client should see as an OperationOutcome."""

    status: int = 500
    issue_code: str = "exception"

    def __init__(
        self,
        diagnostics: str,
        *,
        issues: list[Issue] | None = None,
        headers: dict[str, str] | None = None,
        details: dict[str, Any] | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(diagnostics)
        self.diagnostics = diagnostics
        self.extra_issues = issues or []
        self.headers = headers or {}
        self.details = details
        if status is not None:
            self.status = status

    def outcome(self) -> dict[str, Any]:
        """The OperationOutcome body for this error."""
        first = issue(self.issue_code, self.diagnostics, details=self.details)
        return operation_outcome(first, *self.extra_issues)


class BadRequest(FHIRError):
    status = 400
    issue_code = "invalid"


class InvalidSearchParameter(BadRequest):
    """A known parameter with a malformed value, or unknown ones under strict handling."""

    issue_code = "value"


class NotSupportedParameter(BadRequest):
    issue_code = "not-supported"


class Unauthorized(FHIRError):
    status = 401
    issue_code = "login"


class Forbidden(FHIRError):
    status = 403
    issue_code = "forbidden"


class NotFound(FHIRError):
    status = 404
    issue_code = "not-found"


class MethodNotAllowed(FHIRError):
    status = 405
    issue_code = "not-supported"


class NotAcceptable(FHIRError):
    status = 406
    issue_code = "not-supported"


class Gone(FHIRError):
    status = 410
    issue_code = "deleted"


class PreconditionFailed(FHIRError):
    status = 412
    issue_code = "conflict"


class UnsupportedMediaType(FHIRError):
    status = 415
    issue_code = "not-supported"


class Unprocessable(FHIRError):
    status = 422
    issue_code = "processing"


class TooManyMatches(FHIRError):
    """The upstream refused to list candidates: the client must narrow the search."""

    status = 422
    issue_code = "multiple-matches"


class TooManyRequests(FHIRError):
    """The caller used up its share (server.access.quota): 429 with Retry-After in whole
    seconds, rounded up so a client that waits that long is admitted."""

    status = 429
    issue_code = "throttled"

    def __init__(self, diagnostics: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(diagnostics, **kwargs)
        self.retry_after = retry_after
        if retry_after is not None:
            self.headers = {**self.headers, "Retry-After": str(max(1, math.ceil(retry_after)))}


class NotImplementedInteraction(FHIRError):
    status = 501
    issue_code = "not-supported"


class BadGateway(FHIRError):
    status = 502
    issue_code = "exception"


class ServiceUnavailable(FHIRError):
    status = 503
    issue_code = "transient"


class GatewayTimeout(FHIRError):
    status = 504
    issue_code = "timeout"
