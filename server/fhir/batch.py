"""`POST [base]` with a `batch` Bundle of GET entries: one `batch-response`, entry for entry.

Each entry is dispatched as an internal ASGI sub-request through the whole application
(`request.app`: request id, no-store, authentication and audit, size limits, routes),
with the caller's own headers (Authorization, X-Purpose-Of-Use, NHS session headers,
Prefer) and the batch's X-Request-ID. So an entry meets exactly the code a request sent
alone meets: the same token verification, scope/role/purpose/relationship checks, NHS
quota, paging snapshots bound to the caller, and its own AuditEvent, which carries the
batch's request id so the trail links the entries to the batch. Calling the handlers
with a synthesised Request would have skipped the middleware, i.e. the audit and the
refusals written there; going through the app keeps one path for both.

The batch request itself is authenticated and audited once more (subtype `batch`, the
entry requests as its query). What is refused:
- a body that is not JSON, not a Bundle, not `type: batch`, an entry without
  `request.method`/`request.url`, a URL to another server or outside the FHIR API
  (`/pas/v1`): 400, nothing run;
- a `transaction` Bundle: 422 `not-supported` (nothing here can be done atomically;
  the same entries as a `batch` are answered);
- more than FACADE_MAX_BATCH_ENTRIES entries: 400 `too-costly`;
- an entry other than GET: that entry's response is 405 with an OperationOutcome, the
  others are run (entries of a batch are independent, FHIR R4 http.html#brules).

At most FACADE_BATCH_CONCURRENCY entries run at once, so one batch cannot take the whole
NHS rate limit; the caller's quota is spent entry by entry, as for separate requests.
"""

from __future__ import annotations

import asyncio
import email.utils
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Scope

from server.fhir.bundle import full_url, now_instant
from server.fhir.errors import BadRequest, MethodNotAllowed, Unprocessable, UnsupportedMediaType
from server.fhir.handlers import negotiate, runtime
from server.fhir.outcome import issue, operation_outcome
from server.fhir.request_limits import TooManyItems
from server.fhir.responses import FHIRResponse

JSON_TYPES = ("application/fhir+json", "application/json", "application/json+fhir")
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"})
# Headers of the batch request an entry does not inherit: its own body and format, its
# own conditional headers (from entry.request), and its own transport.
NOT_INHERITED = frozenset(
    {
        b"content-type",
        b"content-length",
        b"transfer-encoding",
        b"expect",
        b"connection",
        b"accept",
        b"accept-encoding",
        b"origin",
        b"if-match",
        b"if-none-match",
        b"if-modified-since",
        b"if-none-exist",
        b"x-request-id",
    }
)
NOT_FHIR = ("pas", "_health")  # first path segments outside the FHIR API
TRANSPORT_PARAMS = frozenset({"_format", "_pretty"})  # an entry's answer is always JSON, inside this Bundle


class TransactionNotSupported(Unprocessable):
    issue_code = "not-supported"


@dataclass(frozen=True)
class EntryRequest:
    """One entry's request, checked: a relative path and query on this server."""

    method: str
    path: str  # decoded, with a leading "/"
    raw_path: str  # as sent (percent-encoded)
    query: str
    url: str  # as the entry gave it, for the response and the audit
    conditional: Mapping[str, str] = field(default_factory=dict)


@dataclass
class EntryAnswer:
    status: int
    headers: dict[str, str]
    body: dict[str, Any] | None


def _checked_url(index: int, url: Any, base_url: str) -> tuple[str, str, str]:
    """(decoded path, raw path, query) of an entry's URL, relative to [base]."""
    where = f"Bundle.entry[{index}].request.url"
    if not isinstance(url, str) or not url.strip():
        raise BadRequest(f"{where} is missing: each entry needs the request to run, e.g. 'Patient/9000000009'")
    text = url.strip()
    if text.startswith(base_url + "/") or text == base_url:
        text = text[len(base_url) :]
    try:
        parts = urlsplit(text)
    except ValueError:  # e.g. an unclosed IPv6 host, 'http://[::1'
        raise BadRequest(f"{where} ({url[:100]}) is not a URL") from None
    if parts.scheme or parts.netloc or text.startswith("//"):
        raise BadRequest(f"{where} points at another server ({url[:100]}): only this server's [base] is served")
    raw_path = "/" + parts.path.lstrip("/")
    path = unquote(raw_path)
    segments = [s for s in path.split("/") if s]
    if not segments or segments[0] in NOT_FHIR or ".." in segments or "." in segments:
        raise BadRequest(f"{where} ({url[:100]}) is not a FHIR interaction on [base]")
    query = "&".join(p for p in parts.query.split("&") if p and p.split("=", 1)[0] not in TRANSPORT_PARAMS)
    return path, raw_path, query


def parse_batch(body: bytes, base_url: str, max_entries: int) -> list[EntryRequest]:
    """The batch's entries, in order (a non-GET one is kept, to be answered 405). Raises
    BadRequest (400) for a malformed batch, TransactionNotSupported (422)."""
    try:
        bundle = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadRequest("The body is not JSON: POST [base] takes a FHIR Bundle of type batch") from None
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise BadRequest("The body is not a FHIR Bundle: POST [base] takes a Bundle of type batch")
    if bundle.get("type") == "transaction":
        raise TransactionNotSupported(
            "Transactions are not supported: this server cannot run entries atomically (nothing here is "
            "written); send the GET entries as a Bundle of type batch"
        )
    if bundle.get("type") != "batch":
        raise BadRequest(f"Bundle.type must be batch here, not {str(bundle.get('type'))[:32]!r}")
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        raise BadRequest("Bundle.entry must be a list")
    if len(entries) > max_entries:
        raise TooManyItems(
            f"The batch has {len(entries)} entries; this server runs at most {max_entries} "
            "(FACADE_MAX_BATCH_ENTRIES): split it"
        )
    out: list[EntryRequest] = []
    for index, entry in enumerate(entries):
        request = entry.get("request") if isinstance(entry, dict) else None
        if not isinstance(request, dict):
            raise BadRequest(f"Bundle.entry[{index}].request is missing: each entry of a batch needs one")
        method = request.get("method")
        if not isinstance(method, str) or method not in METHODS:  # a list or object is unhashable
            raise BadRequest(f"Bundle.entry[{index}].request.method must be one of {', '.join(sorted(METHODS))}")
        path, raw_path, query = _checked_url(index, request.get("url"), base_url)
        conditional = {
            header: str(request[name])[:200]
            for name, header in (("ifNoneMatch", "if-none-match"), ("ifModifiedSince", "if-modified-since"))
            if isinstance(request.get(name), str)
        }
        out.append(EntryRequest(method, path, raw_path, query, str(request["url"]), conditional))
    return out


def _sub_scope(parent: Scope, entry: EntryRequest, request_id: str) -> Scope:
    """The ASGI scope of an entry as the request it stands for, sent by the same caller."""
    headers = [(k, v) for k, v in parent["headers"] if k.lower() not in NOT_INHERITED]
    headers += [
        (b"accept", b"application/fhir+json"),
        (b"x-request-id", request_id.encode("latin-1")),
        *((k.encode("latin-1"), v.encode("latin-1", "replace")) for k, v in entry.conditional.items()),
    ]
    return {
        "type": "http",
        "asgi": parent.get("asgi", {"version": "3.0"}),
        "http_version": parent.get("http_version", "1.1"),
        "method": entry.method,
        "scheme": parent.get("scheme", "http"),
        "server": parent.get("server"),
        "client": parent.get("client"),
        "root_path": parent.get("root_path", ""),
        "path": entry.path,
        "raw_path": quote(entry.raw_path, safe="/%$:@!'()*+,;=-._~").encode("ascii"),
        "query_string": entry.query.encode("latin-1", "replace"),
        "headers": headers,
        "state": {},  # its own request state: its own principal, guard and AuditNote
        "extensions": {},
    }


async def _dispatch(request: Request, entry: EntryRequest, request_id: str) -> EntryAnswer:
    """Run one entry through the whole app and collect its answer."""
    done = asyncio.Event()
    sent_request = False
    status = 500
    headers: dict[str, str] = {}
    chunks: list[bytes] = []

    async def receive() -> Message:
        nonlocal sent_request
        if not sent_request:
            sent_request = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
            headers.update((k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in message.get("headers", []))
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    try:
        await request.app(_sub_scope(request.scope, entry, request_id), receive, send)
    finally:
        done.set()
    raw = b"".join(chunks)
    body = None
    if raw:
        try:
            parsed = orjson.loads(raw)
            body = parsed if isinstance(parsed, dict) else None
        except orjson.JSONDecodeError:
            body = None
    return EntryAnswer(status, headers, body)


def _status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def _instant(http_date: str) -> str | None:
    try:
        when = email.utils.parsedate_to_datetime(http_date)
    except (TypeError, ValueError):
        return None
    return when.isoformat(timespec="seconds").replace("+00:00", "Z")


def response_entry(answer: EntryAnswer, base_url: str) -> dict[str, Any]:
    """One batch-response entry from an entry's HTTP answer."""
    response: dict[str, Any] = {"status": _status_line(answer.status)}
    entry: dict[str, Any] = {}
    if "etag" in answer.headers:
        response["etag"] = answer.headers["etag"]
    modified = _instant(answer.headers.get("last-modified", ""))
    if modified:
        response["lastModified"] = modified
    body = answer.body
    if answer.status >= 400:
        if body is None or body.get("resourceType") != "OperationOutcome":
            body = operation_outcome(issue("exception", f"The request failed with HTTP {answer.status}"))
        response["outcome"] = body
    elif body is not None:
        if body.get("resourceType") != "Bundle" and body.get("id"):
            entry["fullUrl"] = full_url(base_url, body)
        entry["resource"] = body
    entry["response"] = response
    return entry


def refused_entry(entry: EntryRequest) -> dict[str, Any]:
    """A non-GET entry's answer, without running it."""
    error = MethodNotAllowed(
        f"{entry.method} in a batch is not supported: this server answers GET entries (reads and searches) only"
    )
    return {"response": {"status": _status_line(error.status), "outcome": error.outcome()}}


async def batch(request: Request) -> Response:
    """POST [base] with a batch Bundle: each GET entry answered as if sent alone."""
    pretty = negotiate(request)
    rt = runtime(request)
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type not in JSON_TYPES:
        raise UnsupportedMediaType(
            f"POST [base] takes a Bundle as application/fhir+json, not {content_type[:64] or 'no Content-Type'}"
        )
    body = await request.body()  # within FACADE_MAX_BODY_BYTES (server.fhir.body_limit)
    entries = parse_batch(body, rt.base_url, rt.settings.max_batch_entries)
    # The batch's own AuditEvent names what was asked; each entry leaves its own event too.
    request.state.audit.query = "".join(f"{e.method} {e.url}\n" for e in entries).encode()
    slots = asyncio.Semaphore(rt.settings.batch_concurrency)
    request_id: str = request.state.request_id

    async def run(entry: EntryRequest) -> dict[str, Any]:
        if entry.method != "GET":
            return refused_entry(entry)
        async with slots:
            answer = await _dispatch(request, entry, request_id)
        return response_entry(answer, rt.base_url)

    results = await asyncio.gather(*(run(e) for e in entries))
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"lastUpdated": now_instant()},
        "type": "batch-response",
    }
    if results:
        bundle["entry"] = list(results)
    return FHIRResponse(bundle, pretty=pretty)
