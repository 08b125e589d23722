"""The shared NHS API client: headers, timeouts, JSON decoding and error typing.

Every NHS connector (PDS, Prescription Tracker, e-RS, BaRS, GP Connect) sends through
one NHSClient, so request ids, correlation ids, auth headers and the failure types are
the same everywhere. X-Request-ID is a fresh UUID per logical request and is reused on
every retry (PDS de-duplicates on it); X-Correlation-ID carries the inbound request id;
`traceparent` (W3C Trace Context) names a new child span of the inbound request's trace
on every exchange.
Each attempt is charged to the caller's NHS quota (ctx.quota, server.access.quota)
before it is sent; only requests actually sent are charged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import orjson
from multidict import CIMultiDict

from server import metrics, request_trace
from server.nhs.error_codes import CodeMeaning
from server.nhs.errors import (
    UpstreamBadResponse,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
    read_nhs_outcome,
)
from server.random_ids import random_uuid
from server.request_context import RequestContext

log = logging.getLogger("facade.upstream")


class AuthHeaders(Protocol):
    """Supplies the Authorization (and any other auth) headers for one request."""

    async def headers(self, ctx: RequestContext) -> dict[str, str]: ...


class NoAuth:
    """The emulator and the NHS open sandbox need no credentials."""

    async def headers(self, ctx: RequestContext) -> dict[str, str]:
        return {}


@dataclass
class UpstreamResponse:
    status: int
    headers: Mapping[str, str]
    body: Any
    request_id: str


@dataclass
class ClientConfig:
    api: str
    base_url: str
    connect_timeout: float = 3.0
    read_timeout: float = 10.0
    end_user_ods: str | None = None
    default_headers: dict[str, str] = field(default_factory=dict)
    # NHS error codes of this API whose meaning the status does not carry (UpstreamError.meaning).
    error_codes: Mapping[str, CodeMeaning] = field(default_factory=dict)


@dataclass(frozen=True)
class UpstreamCall:
    """One logical request as a provider asked for it; attempts of it share an X-Request-ID."""

    method: str
    path: str
    params: Sequence[tuple[str, str]] | None = None
    headers: Mapping[str, str] | None = None
    json_body: Any = None
    accepted: Sequence[int] = ()
    retry_safe: bool = False


def correlation_id(request_id: str) -> str:
    # PDS asks callers to avoid "." in X-Correlation-ID.
    return request_id.replace(".", "-")[:200]


def retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class NHSClient:
    """One NHS API: sends a request, returns decoded JSON or raises a typed UpstreamError."""

    def __init__(self, session: aiohttp.ClientSession, config: ClientConfig, auth: AuthHeaders | None = None) -> None:
        self.session = session
        self.config = config
        self.auth = auth or NoAuth()
        self._timeout = aiohttp.ClientTimeout(total=None, connect=config.connect_timeout, sock_read=config.read_timeout)

    @property
    def api(self) -> str:
        return self.config.api

    def url(self, path: str) -> str:
        return f"{self.config.base_url.rstrip('/')}/{path.lstrip('/')}"

    async def request(
        self,
        method: str,
        path: str,
        ctx: RequestContext,
        *,
        params: Sequence[tuple[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
        accepted: Sequence[int] = (),
        retry_safe: bool = False,
    ) -> UpstreamResponse:
        """Send one logical request. `accepted` lists non-2xx statuses the caller wants
        back as a response rather than an error. `retry_safe` marks a POST as safe to
        repeat; it matters only to ResilientClient, which retries."""
        call = UpstreamCall(method, path, params, headers, json_body, tuple(accepted), retry_safe)
        return await self._perform(call, ctx)

    async def _perform(self, call: UpstreamCall, ctx: RequestContext) -> UpstreamResponse:
        """How a logical request is carried out: here, one attempt with a fresh X-Request-ID.
        The hook ResilientClient overrides (retries, breaker, limits, single-flight)."""
        self._charge(ctx, retry=False)
        return await self._attempt(call, ctx, random_uuid())

    def _charge(self, ctx: RequestContext, *, retry: bool) -> None:
        """Charge the caller's NHS quota for one attempt about to be sent. A first attempt
        over quota raises TooManyRequests (429) and is not sent; a retry is always debited.
        Callers without a principal (the façade's own internal calls) are not charged."""
        if ctx.quota is None or ctx.principal is None:
            return
        if retry:
            ctx.quota.debit(ctx.principal)
        else:
            ctx.quota.take(ctx.principal, self.api)

    async def _attempt(self, call: UpstreamCall, ctx: RequestContext, request_id: str) -> UpstreamResponse:
        return await self.send(
            call.method,
            call.path,
            ctx,
            request_id,
            params=call.params,
            headers=call.headers,
            json_body=call.json_body,
            accepted=call.accepted,
        )

    async def send(
        self,
        method: str,
        path: str,
        ctx: RequestContext,
        request_id: str,
        *,
        params: Sequence[tuple[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
        accepted: Sequence[int] = (),
    ) -> UpstreamResponse:
        """One HTTP exchange with an explicit X-Request-ID (retries reuse it)."""
        out_headers = {
            "Accept": "application/fhir+json",
            "X-Request-ID": request_id,
            "X-Correlation-ID": correlation_id(ctx.request_id),
            **self.config.default_headers,
        }
        if self.config.end_user_ods:
            out_headers["NHSD-End-User-Organisation-ODS"] = self.config.end_user_ods
        if ctx.trace is not None:
            out_headers["traceparent"] = ctx.trace.child().header()
        out_headers.update(await self.auth.headers(ctx))
        if headers:
            out_headers.update(headers)
        data = None
        if json_body is not None:
            data = orjson.dumps(json_body)
            out_headers.setdefault("Content-Type", "application/fhir+json")
        url = self.url(path)
        # A user-restricted auth may send an exchanged token rather than the caller's own.
        user_token_used = getattr(self.auth, "acts_for_user", False) or (
            "Authorization" in out_headers
            and bool(ctx.user_token)
            and out_headers["Authorization"] == f"Bearer {ctx.user_token}"
        )
        sent_at = time.perf_counter()
        try:
            async with self.session.request(
                method,
                url,
                params=list(params) if params else None,
                headers=out_headers,
                data=data,
                timeout=self._timeout,
            ) as resp:
                raw = await resp.read()
                status = resp.status
                # Case-insensitive: PDS (Apigee) sends lower-case names ("etag", "retry-after").
                resp_headers = CIMultiDict(resp.headers)
        except TimeoutError:
            metrics.nhs_call(self.api, "timeout")
            self._traced(method, path, None, "timeout", sent_at, request_id, params)
            raise UpstreamTimeout(self.api, "timed out") from None
        except aiohttp.ClientConnectionError as exc:
            metrics.nhs_call(self.api, "connection_error")
            self._traced(method, path, None, f"connection_error ({type(exc).__name__})", sent_at, request_id, params)
            raise UpstreamUnavailable(self.api, f"connection failed ({type(exc).__name__})") from None
        except aiohttp.ClientError as exc:
            metrics.nhs_call(self.api, "connection_error")
            self._traced(method, path, None, f"connection_error ({type(exc).__name__})", sent_at, request_id, params)
            raise UpstreamUnavailable(self.api, f"HTTP client error ({type(exc).__name__})") from None
        except asyncio.CancelledError:
            # Cut off by the resilience budget (server.nhs.resilience counts it as a timeout).
            self._traced(method, path, None, "cut off (request budget)", sent_at, request_id, params)
            raise
        outcome = metrics.status_outcome(status)
        metrics.nhs_call(self.api, outcome)
        self._traced(method, path, status, outcome, sent_at, request_id, params)
        log.info(
            "upstream %s %s -> %s request_id=%s correlation=%s", self.api, method, status, request_id, ctx.request_id
        )
        body = self._decode(raw, status)
        if 200 <= status < 300 or status in accepted:
            return UpstreamResponse(status, resp_headers, body, request_id)
        raise self._error(status, resp_headers, body, user_token_used)

    def _traced(
        self,
        method: str,
        path: str,
        status: int | None,
        outcome: str,
        sent_at: float,
        request_id: str,
        params: Sequence[tuple[str, str]] | None,
    ) -> None:
        """The console's trace of this exchange (server.request_trace; a no-op unless traced)."""
        if request_trace.current() is None:  # the usual case: no trace open, nothing to build
            return
        request_trace.nhs_call(
            self.api,
            method,
            path,
            status=status,
            outcome=outcome,
            started=sent_at,
            attempt_id=request_id,
            params=params,
        )

    def _decode(self, raw: bytes, status: int) -> Any:
        if not raw:
            return None
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            if 200 <= status < 300:
                raise UpstreamBadResponse(self.api, f"HTTP {status} body is not JSON") from None
            return None

    def _error(self, status: int, headers: Mapping[str, str], body: Any, user_token_used: bool) -> UpstreamError:
        outcome = read_nhs_outcome(body)
        kwargs: dict[str, Any] = dict(
            status=status,
            nhs_code=outcome.code,
            nhs_display=outcome.display,
            nhs_system=outcome.system,
            diagnostics=outcome.diagnostics,
            retry_after=retry_after_seconds(headers.get("Retry-After")),
            user_token_used=user_token_used,
            meaning=self.config.error_codes.get(outcome.code) if outcome.code else None,
        )
        if status == 429:
            return UpstreamRateLimited(self.api, "HTTP 429", **kwargs)
        if status in (502, 503, 504) or status >= 500:
            if status == 504:
                return UpstreamTimeout(self.api, "HTTP 504", **kwargs)
            return UpstreamUnavailable(self.api, f"HTTP {status}", **kwargs)
        return UpstreamRejected(self.api, f"HTTP {status}", **kwargs)
