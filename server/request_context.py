"""RequestContext: who is asking and how to correlate, for every layer below HTTP.

It sits below both the provider contract and the NHS clients (which take it on every
call), so the NHS layer never imports the provider layer above it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from server.access.principal import Principal
from server.trace_context import TraceParent

if TYPE_CHECKING:
    from server.access.quota import CallerQuota


@dataclass(frozen=True)
class RequestContext:
    """Who is asking and how to correlate: passed to every provider and NHS client call.

    `user_token` is the caller's NHS user credential (a CIS2 token for user-restricted
    NHS APIs; see server.access.control.AccessControl.nhs_user_token), passed through or
    exchanged, never logged. `headers` are the inbound request headers, for NHS context
    headers such as NHSD-Session-URID that come from the caller. `principal` is the
    authenticated caller (server.access), None only for the public discovery endpoints.
    """

    request_id: str
    base_url: str
    user_token: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    principal: Principal | None = None
    quota: CallerQuota | None = None  # charged per NHS request sent for this caller (server.nhs.client)
    trace: TraceParent | None = None  # this request's span (W3C traceparent); NHS calls are its children

    def caller_identity(self, *, per_user: bool = False) -> str:
        """A digest of what makes this caller's NHS answers differ from another's: the
        user's NHS token and the NHSD-* context headers (session URID, role, org), and with
        `per_user` the authenticated user too. "" for an application-restricted caller.
        Single-flight and the cache key on it, so one user's data never reaches another;
        the token is never stored."""
        nhsd = _nhsd_headers(self.headers)
        user = f"{self.principal.issuer}\0{self.principal.subject}" if per_user and self.principal is not None else ""
        if not self.user_token and not nhsd and not user:
            return ""
        digest = hashlib.sha256((self.user_token or "").encode())
        for name, value in nhsd:
            digest.update(b"\0" + name.encode() + b"=" + value.encode())
        if user:
            digest.update(b"\0user=" + user.encode())
        return digest.hexdigest()


def _nhsd_headers(headers: Mapping[str, str]) -> list[tuple[str, str]]:
    """The NHSD-* headers, names lower-cased, sorted. Starlette's Headers are scanned as
    their raw bytes (ASGI names are lower case): no header value is decoded but these,
    where items() would decode every one, the bearer token among them, on every read."""
    raw = getattr(headers, "raw", None)
    if isinstance(raw, list):
        return sorted((k.decode("latin-1"), v.decode("latin-1")) for k, v in raw if k.lower().startswith(b"nhsd-"))
    return sorted((k.lower(), v) for k, v in headers.items() if k.lower().startswith("nhsd-"))
