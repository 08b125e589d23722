"""Named upstream failures (httpx-style hierarchy), and the caller errors the NHS layer
finds before it sends anything.

Clients raise these; server.providers.upstream_errors.to_fhir_error decides, in one place
above this layer, what status the façade's client sees, so nothing here knows HTTP-facing
FHIR errors. NHS OperationOutcomes are read (read_nhs_outcome), not passed through.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from server.nhs.error_codes import CodeMeaning


class UpstreamError(Exception):
    """Base for every failure talking to an NHS API."""

    def __init__(
        self,
        api: str,
        message: str,
        *,
        status: int | None = None,
        nhs_code: str | None = None,
        nhs_display: str | None = None,
        nhs_system: str | None = None,
        diagnostics: str | None = None,
        retry_after: float | None = None,
        user_token_used: bool = False,
        meaning: CodeMeaning | None = None,
    ) -> None:
        super().__init__(f"{api}: {message}")
        self.api = api
        self.message = message
        self.status = status
        self.nhs_code = nhs_code
        self.nhs_display = nhs_display
        self.nhs_system = nhs_system  # the code system of nhs_code as the API sent it (None: Spine's)
        self.diagnostics = diagnostics
        self.retry_after = retry_after
        self.user_token_used = user_token_used
        # What nhs_code means beyond the status, as the API's source declares it
        # (server.sources: Upstream.error_codes); set by the client that met the error.
        self.meaning = meaning


class UpstreamTimeout(UpstreamError):
    """No answer within the time budget (connect, read, or total)."""


class UpstreamUnavailable(UpstreamError):
    """Connection refused or reset, 5xx, or the circuit breaker is open."""


class UpstreamRateLimited(UpstreamError):
    """429 from NHS, or our own client-side rate limit had no slot in time."""


class UpstreamRejected(UpstreamError):
    """A 4xx answer: NHS understood and refused the request."""


class UpstreamBadResponse(UpstreamError):
    """The answer was not what the API promises (not JSON, wrong resource type)."""


class UpstreamCredentialsRejected(UpstreamRejected):
    """The NHS token endpoint refused to issue a token (400/401/403).

    With `user_token_used` the refusal was about the caller's subject_token (token
    exchange); otherwise the façade's own credentials (API key, kid, key) are wrong.
    """


@dataclass(frozen=True)
class NHSOutcome:
    """The first issue of an NHS OperationOutcome, as far as we need it."""

    code: str | None
    display: str | None
    diagnostics: str | None
    issue_code: str | None
    system: str | None = None  # kept: NHS APIs do not share one error code system


def read_nhs_outcome(body: Any) -> NHSOutcome:
    """Pull the error code (with its system), display and diagnostics out of an NHS OperationOutcome."""
    if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome":
        return NHSOutcome(None, None, None, None)
    issues = body.get("issue") or [{}]
    first = issues[0] if isinstance(issues[0], dict) else {}
    codings = ((first.get("details") or {}).get("coding")) or [{}]
    coding = codings[0] if isinstance(codings[0], dict) else {}
    return NHSOutcome(
        coding.get("code"), coding.get("display"), first.get("diagnostics"), first.get("code"), coding.get("system")
    )


class CallerInputError(Exception):
    """The caller's request cannot go to NHS as it stands: found by the NHS layer before any
    call (a missing session header, no CIS2 user token, an id that cannot be a path
    segment). `status` and `issue_code` are what the caller gets (to_fhir_error)."""

    status = 400
    issue_code = "invalid"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class UserTokenMissing(CallerInputError):
    """A user-restricted NHS API needs the caller's CIS2 token and none came."""

    status = 401
    issue_code = "login"


class UnsendableId(CallerInputError):
    """An id no NHS resource can have (empty, "." or ".."): nothing to ask for."""

    status = 404
    issue_code = "not-found"
