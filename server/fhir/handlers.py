"""The generic FHIR REST handlers: read, vread, search (GET and POST), metadata.

Nothing here knows a resource type: handlers find the provider in the registry, parse
parameters by its declarations, and shape answers (headers, conditional reads, paging,
includes, subsetting) the same way for every type.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from capability.statement import capability_statement
from server.access.compartment import audit_patients, searched_patients
from server.access.control import AccessControl
from server.access.policy import AccessDenied, Grant, Guard
from server.fhir.bundle import full_url, search_url, searchset
from server.fhir.errors import BadRequest, Gone, InvalidSearchParameter, NotFound, NotImplementedInteraction
from server.fhir.formats import check_format, parse_form_body
from server.fhir.ids import is_fhir_id
from server.fhir.includes import FanOutBudget, available_rev_includes, resolve_includes, resolve_rev_includes
from server.fhir.outcome import Issue, issue, operation_outcome
from server.fhir.pages import Snapshot
from server.fhir.response_notes import collecting_response_headers
from server.fhir.responses import FHIRResponse
from server.fhir.responses import not_modified as not_modified_response
from server.fhir.search_request import SUMMARY_MODES, SearchRequest, parse_search
from server.fhir.sorting import sort_resources
from server.fhir.subsetting import apply_view
from server.fhir.versioning import ensure_version, etag, http_date, last_modified, not_modified, search_copy
from server.providers.base import RequestContext, ResourceProvider
from server.providers.registry import COMPARTMENT_PARAM
from server.runtime import Runtime

TYPE_RE = re.compile(r"\A[A-Z][A-Za-z]{0,63}\Z")


def runtime(request: Request) -> Runtime:
    state: Runtime = request.app.state.runtime  # set by the lifespan before any request
    return state


def context(request: Request) -> RequestContext:
    """The RequestContext every provider call gets: the authenticated principal (set by
    server.access.middleware), the caller's NHS user credential and their NHS quota."""
    access: AccessControl = request.state.access
    auth = request.headers.get("authorization", "")
    inbound = auth[7:].strip() if auth[:7].lower() == "bearer " else None
    return RequestContext(
        request_id=request.state.request_id,
        base_url=runtime(request).base_url,
        user_token=access.nhs_user_token(request.headers, inbound),
        headers=request.headers,
        principal=request.state.principal,
        quota=access.quota,
        trace=request.state.trace,  # set by server.fhir.middleware.RequestIdMiddleware
    )


def guard(request: Request) -> Guard:
    """This request's access checks, made once: its relationship and NHS-number look-ups
    (PAS store reads) are memoised across the search, its page and its includes."""
    made: Guard | None = getattr(request.state, "guard", None)
    if made is None:
        access: AccessControl = request.state.access
        made = access.policy.guard(request.state.principal)
        request.state.guard = made
    return made


def _ref(resource: dict[str, Any]) -> str:
    return f"{resource.get('resourceType')}/{resource.get('id')}"


def audit_saw(request: Request, resources: list[dict[str, Any]]) -> None:
    """Note, for this request's AuditEvent, every patient and resource the answer shows."""
    request.state.audit.saw(audit_patients(resources), [_ref(r) for r in resources])


async def permitted(
    request: Request, grant: Grant, check: Guard, resources: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The resources this caller may see; the rest are withheld (counted in the audit)."""
    kept = []
    for resource in resources:
        if await check.refusal(grant, resource) is None:
            kept.append(resource)
        else:
            request.state.audit.withheld += 1
    return kept


def negotiate(request: Request, pairs: list[tuple[str, str]] | None = None) -> bool:
    """Check the format the client wants (406 otherwise); returns whether to pretty-print.

    `pairs` are a search's merged parameters: `_format`/`_pretty` in a POST _search form
    body count as much as in the query string (else `_format=xml` there got silent JSON)."""
    params = list(request.query_params.multi_items()) if pairs is None else pairs
    fmt = next((v for k, v in params if k == "_format"), None)
    # Both read by server.fhir.xml_format, which renders the answer as XML when asked.
    request.state.fhir_format = check_format(fmt, request.headers.get("accept"))
    request.state.fhir_pretty = next((v for k, v in params if k == "_pretty"), "false").lower() == "true"
    return bool(request.state.fhir_pretty)


def strict_preference(prefer: str) -> bool:
    """Whether a Prefer header (RFC 7240) asks for `handling=strict`.

    Preferences are comma-separated; each is `token[=value]` followed by `;parameters`,
    so `respond-async, handling=strict; x=y` asks for strict handling (the old split on
    `;` or `,` alone missed it) and the value may be quoted."""
    for preference in prefer.split(","):
        name, _, value = preference.split(";", 1)[0].partition("=")
        if name.strip().lower() == "handling" and value.strip().strip('"').lower() == "strict":
            return True
    return False


def strict_handling(request: Request) -> bool:
    return strict_preference(request.headers.get("prefer", ""))


def provider_for(request: Request) -> ResourceProvider:
    resource_type = request.path_params["type"]
    if not TYPE_RE.match(resource_type):
        raise NotFound(f"'{resource_type}' is not a resource type served here")
    return runtime(request).registry.get(resource_type)


def checked_id(request: Request) -> str:
    resource_id: str = request.path_params["id"]  # a plain {id} route segment: always a str
    if not is_fhir_id(resource_id):
        raise BadRequest(f"'{resource_id[:80]}' is not a valid FHIR id ([A-Za-z0-9-.]{{1,64}})")
    return resource_id


def _read_view(request: Request) -> tuple[str | None, tuple[str, ...]]:
    summary = request.query_params.get("_summary")
    if summary is not None and summary not in SUMMARY_MODES:
        raise InvalidSearchParameter(f"Parameter '_summary' takes one of {', '.join(SUMMARY_MODES)}")
    if summary == "count":
        raise InvalidSearchParameter("_summary=count applies to searches, not reads")
    elements = tuple(e.strip() for e in request.query_params.get("_elements", "").split(",") if e.strip())
    return (None if summary == "false" else summary), elements


def resource_headers(resource: dict[str, Any]) -> dict[str, str]:
    headers = {"ETag": etag(resource)}
    modified = last_modified(resource)
    if modified is not None:
        headers["Last-Modified"] = http_date(modified)
    return headers


async def _respond_with_resource(
    request: Request, resource: dict[str, Any], requested_id: str, pretty: bool, extra_headers: dict[str, str]
) -> Response:
    # Upstreams without versions (GP Connect, CPT) get the content-hash versionId the ETag
    # already uses, so `ETag == W/"{meta.versionId}"` and a vread by that id both hold.
    resource = ensure_version(resource)
    headers = {**resource_headers(resource), **extra_headers}
    if resource.get("id") != requested_id:
        # PDS superseded number: the record answered is the superseding one; say where it lives.
        headers["Content-Location"] = full_url(runtime(request).base_url, resource)
    summary, elements = _read_view(request)  # a malformed view is 400 whether or not the ETag matches
    if not_modified(resource, request.headers.get("if-none-match"), request.headers.get("if-modified-since")):
        return not_modified_response(headers)
    body = apply_view(resource, summary, elements)
    # HEAD renders the same body, so Content-Length matches GET; the server (Hypercorn,
    # like any ASGI server) sends no body bytes for HEAD.
    return FHIRResponse(body, headers=headers, pretty=pretty)


async def _guarded_read(request: Request, provider: ResourceProvider, resource_id: str) -> dict[str, Any]:
    """Read one resource for this caller: scopes, role and purpose before NHS is asked,
    compartment and relationship on what came back (403, never the data)."""
    check = guard(request)
    target = f"{provider.resource_type}/{resource_id}"
    # Named before any check, so a refused attempt is audited with what it was after.
    request.state.audit.saw([target] if provider.resource_type == "Patient" else [], [target])
    grant = check.grant(provider.resource_type, "r")
    if provider.resource_type == "Patient":
        await check.check_patient_id(grant, resource_id)  # before NHS is asked
    resource = await provider.read(resource_id, context(request))
    reason = await check.refusal(grant, resource)
    if reason is not None:
        request.state.audit.withheld += 1
        raise AccessDenied(f"{provider.resource_type}/{resource_id}: {reason}")
    audit_saw(request, [resource])
    return resource


async def read(request: Request) -> Response:
    pretty = negotiate(request)
    provider = provider_for(request)
    resource_id = checked_id(request)
    with collecting_response_headers() as extra:  # e.g. X-Cache from the read-through cache
        resource = await _guarded_read(request, provider, resource_id)
    return await _respond_with_resource(request, resource, resource_id, pretty, extra)


async def vread(request: Request) -> Response:
    """Only the current version is held: vread answers it, or 404 for any older one."""
    pretty = negotiate(request)
    provider = provider_for(request)
    resource_id = checked_id(request)
    version = request.path_params["vid"]
    with collecting_response_headers() as extra:
        resource = await _guarded_read(request, provider, resource_id)
    current = etag(resource)[3:-1]
    if version != current:
        raise NotFound(
            f"Version '{version[:64]}' of {provider.resource_type}/{resource_id} is not held; "
            f"the current version is '{current}'"
        )
    return await _respond_with_resource(request, resource, resource_id, pretty, extra)


async def search_get(request: Request) -> Response:
    return await _search(request, list(request.query_params.multi_items()))


async def search_post(request: Request) -> Response:
    """POST [base]/{type}/_search: form body and query string merged (query first)."""
    body = await request.body()
    form = parse_form_body(request.headers.get("content-type"), body)
    request.state.audit.query = f"POST {request.url.path}?{request.url.query}\n".encode() + body
    return await _search(request, list(request.query_params.multi_items()) + form)


async def compartment_search_get(request: Request) -> Response:
    """GET [base]/Patient/{id}/{type}: the type search with `patient={id}` added (AND-ed
    with the query), answered by _search exactly as GET [base]/{type}?patient={id} is:
    the same parser, Guard (which sees a search naming that patient) and audit."""
    return await _search(request, list(request.query_params.multi_items()) + _compartment_pair(request))


async def compartment_search_post(request: Request) -> Response:
    """POST [base]/Patient/{id}/{type}/_search: as compartment_search_get, form body merged."""
    pairs = _compartment_pair(request)
    body = await request.body()
    form = parse_form_body(request.headers.get("content-type"), body)
    request.state.audit.query = f"POST {request.url.path}?{request.url.query}\n".encode() + body
    return await _search(request, list(request.query_params.multi_items()) + form + pairs)


def _compartment_pair(request: Request) -> list[tuple[str, str]]:
    """The criterion a compartment search stands for (CompartmentDefinition/patient), or 404
    for a compartment or type not served. Types: ProviderRegistry.patient_compartment."""
    compartment = request.path_params["compartment"]
    resource_type = request.path_params["type"]
    registry = runtime(request).registry
    if compartment != "Patient" or registry.find("Patient") is None:
        raise NotFound(f"No FHIR endpoint here: only the Patient compartment is served ({compartment[:64]} given)")
    patient_id = checked_id(request)
    if resource_type not in registry.patient_compartment():
        raise NotFound(f"'{resource_type[:64]}' is not searched in the Patient compartment here")
    return [(COMPARTMENT_PARAM, patient_id)]


async def not_supported(request: Request) -> Response:
    """A FHIR interaction this server does not implement (system search, batch or
    transaction, history, operations): 501 not-supported, after a 404 for an unknown type."""
    if "type" in request.path_params:
        provider_for(request)
    parts = [p for p in request.url.path.split("/") if p]
    if parts and parts[-1].startswith("$"):
        what = f"Operation {parts[-1][:64]}"
    elif parts and parts[-1] == "_history":
        what = "The history interaction"
    else:
        what = "Search across all types (GET [base], _type)"
    raise NotImplementedInteraction(f"{what} is not supported by this server; see [base]/metadata")


async def _search(request: Request, pairs: list[tuple[str, str]]) -> Response:
    pretty = negotiate(request, pairs)
    provider = provider_for(request)
    rt = runtime(request)
    ctx = context(request)
    check = guard(request)
    grant = check.grant(provider.resource_type, "s")
    page_key = next((v for k, v in pairs if k == "_getpages"), None)
    if page_key is not None:
        return await _page_from_snapshot(request, provider, page_key, pairs, ctx, pretty)
    declaration = provider.declaration(rt.settings.default_page_size, rt.settings.max_page_size)
    declaration = dataclasses.replace(
        declaration, rev_includes=available_rev_includes(provider.resource_type, rt.registry)
    )
    search = parse_search(pairs, declaration, strict=strict_handling(request), max_items=rt.settings.max_list_items)
    request.state.audit.saw([f"Patient/{p}" for p in searched_patients(search) or () if p], [])
    await check.check_search(grant, search)  # before any NHS call
    with collecting_response_headers() as extra:
        result = await provider.search(search, ctx)
    allowed = await permitted(request, grant, check, result.matches)
    if len(allowed) < len(result.matches):
        result.issues.append(
            issue(
                "suppressed",
                f"{len(result.matches) - len(allowed)} result(s) withheld: this caller may not see them",
                severity="warning",
            )
        )
    matches = [ensure_version(m) for m in allowed]  # the version a read of each would answer
    if not provider.search_copies_complete:
        matches = [search_copy(m) for m in matches]  # less than a read holds: marked (versioning.search_copy)
    if search.sort:
        matches = sort_resources(matches, search.sort, {p.name: p for p in provider.search_params})
    outcome = operation_outcome(*result.issues) if result.issues else None
    self_pairs = search.canonical_pairs()
    if any(k == "_count" for k, _ in pairs):
        # The page size asked for is part of the request `self` must reproduce (_count=0 above all).
        self_pairs.append(("_count", str(search.count)))
    if search.summary == "count" or search.count == 0:
        audit_saw(request, matches)  # a count says something about each patient counted
        bundle = searchset(
            base_url=rt.base_url,
            matches=[],
            outcome=outcome,
            total=len(matches),
            self_url=search_url(rt.base_url, provider.resource_type, self_pairs),
            offset=0,
            count=0,
            match_count=len(matches),
            link_for=None,
        )
        return FHIRResponse(bundle, headers=extra, pretty=pretty)
    key = None
    if len(matches) > search.count:
        key = await rt.snapshots.put(
            search, matches, outcome, self_pairs, result.scores, owner=request.state.principal.binding_key()
        )
    snapshot = Snapshot(search, tuple(matches), outcome, tuple(self_pairs), result.scores, 0.0)
    return await _render_page(request, provider, snapshot, key, 0, search.count, ctx, pretty, first=True, headers=extra)


def _page_link(base_url: str, resource_type: str, key: str, offset: int, count: int) -> str:
    return search_url(base_url, resource_type, [("_getpages", key), ("_offset", str(offset)), ("_count", str(count))])


async def _page_from_snapshot(
    request: Request,
    provider: ResourceProvider,
    key: str,
    pairs: list[tuple[str, str]],
    ctx: RequestContext,
    pretty: bool,
) -> Response:
    snapshot, offset, count = await owned_page(request, key, provider.resource_type, dict(pairs), "search results")
    # A page asked for under a criterion (a compartment path adds patient={id}) must be a page
    # of a search with that criterion: Patient/B/MedicationRequest never pages A's results,
    # and the audit record, which names B, stays true.
    asked = {value.rsplit("/", 1)[-1] for name, value in pairs if name == "patient"}
    searched = {value.rsplit("/", 1)[-1] for name, value in snapshot.self_pairs if name == "patient"}
    if asked - searched:
        raise Gone("This page of search results belongs to another search; run the search again")
    return await _render_page(request, provider, snapshot, key, offset, count, ctx, pretty, first=False)


async def owned_page(
    request: Request, key: str, kind: str, values: dict[str, str], what: str
) -> tuple[Snapshot, int, int]:
    """The snapshot page `key` names, with its offset and page size, for the caller who made
    it: anyone else (another user, client, scope set or patient context) gets no data (a
    404, where an unknown key is 410: the key is 128 random bits, so whoever holds it knows
    it exists anyway). `kind` is what the snapshot must be of (a type, or an operation's
    own kind), so a key cannot be replayed through another endpoint."""
    rt = runtime(request)
    snapshot = await rt.snapshots.get(key)
    if snapshot is not None and snapshot.owner != request.state.principal.binding_key():
        raise NotFound(f"No such page of {what}")
    if snapshot is None or snapshot.request.resource_type != kind:
        raise Gone(f"This page of {what} has expired or never existed; run it again")
    try:
        offset = int(values.get("_offset", "0"))
        count = int(values.get("_count", str(snapshot.request.count)))
    except ValueError:
        raise InvalidSearchParameter("Paging parameters _offset and _count must be integers") from None
    if offset < 0 or count < 1:
        raise InvalidSearchParameter("Paging needs _offset >= 0 and _count >= 1")
    return snapshot, offset, min(count, rt.settings.max_page_size)


async def _render_page(
    request: Request,
    provider: ResourceProvider,
    snapshot: Snapshot,
    key: str | None,
    offset: int,
    count: int,
    ctx: RequestContext,
    pretty: bool,
    *,
    first: bool,
    headers: dict[str, str] | None = None,
) -> Response:
    rt = runtime(request)
    search: SearchRequest = snapshot.request
    page = list(snapshot.matches[offset : offset + count])
    check = guard(request)
    # One NHS fan-out budget per page, shared by every include and reverse search on it.
    budget = FanOutBudget(rt.settings.max_include_reads, rt.settings.max_revinclude_searches)
    included, include_issues = await resolve_includes(page, search.includes, provider, rt.registry, ctx, budget=budget)
    included, withheld_issues = await _permitted_includes(request, check, included)
    rev_included, rev_issues = await _guarded_rev_includes(request, check, page, search, ctx, budget)
    seen = {(r.get("resourceType"), r.get("id")) for r in included}
    included = [
        ensure_version(r)
        for r in included + [r for r in rev_included if (r.get("resourceType"), r.get("id")) not in seen]
    ]
    audit_saw(request, page + included)
    issues = list((snapshot.outcome or {}).get("issue", [])) + include_issues + withheld_issues + rev_issues
    outcome = operation_outcome(*issues) if issues else None
    view = [apply_view(r, search.summary, search.elements) for r in page]
    link_for = (lambda o: _page_link(rt.base_url, provider.resource_type, key, o, count)) if key else None
    self_url = (
        search_url(rt.base_url, provider.resource_type, list(snapshot.self_pairs))
        if first
        else _page_link(rt.base_url, provider.resource_type, key or "", offset, count)
    )
    bundle = searchset(
        base_url=rt.base_url,
        matches=view,
        included=included,
        outcome=outcome,
        total=None if search.total == "none" else len(snapshot.matches),
        self_url=self_url,
        offset=offset,
        count=count,
        match_count=len(snapshot.matches),
        link_for=link_for,
        scores=snapshot.scores,
    )
    return FHIRResponse(bundle, headers=headers, pretty=pretty)


async def _permitted_includes(
    request: Request, check: Guard, resources: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[Issue]]:
    """Included resources this caller may read; the others are left out with one warning
    per type (never leaked, never failing the search)."""
    kept: list[dict[str, Any]] = []
    left_out: dict[str, int] = {}
    for resource in resources:
        rtype = str(resource.get("resourceType"))
        try:
            grant = check.grant(rtype, "r")
            allowed = await check.refusal(grant, resource) is None
        except AccessDenied:
            allowed = False
        if allowed:
            kept.append(resource)
        else:
            left_out[rtype] = left_out.get(rtype, 0) + 1
            request.state.audit.withheld += 1
    issues = [
        issue(
            "suppressed", f"{n} included {rtype} resource(s) left out: this caller may not see them", severity="warning"
        )
        for rtype, n in sorted(left_out.items())
    ]
    return kept, issues


async def _guarded_rev_includes(
    request: Request,
    check: Guard,
    page: list[dict[str, Any]],
    search: SearchRequest,
    ctx: RequestContext,
    budget: FanOutBudget,
) -> tuple[list[dict[str, Any]], list[Issue]]:
    """_revinclude, asked only where the caller may see the answer: a source type they have
    no grant for, or a match they have no relationship with, starts no NHS call at all."""
    rt = runtime(request)
    found: list[dict[str, Any]] = []
    issues: list[Issue] = []
    for source in dict.fromkeys(inc.source for inc in search.rev_includes):
        wanted = tuple(inc for inc in search.rev_includes if inc.source == source)
        try:
            grant = check.grant(source, "s")  # a reverse search is a search of the source type
        except AccessDenied as denied:
            issues.append(
                issue("suppressed", f"_revinclude of {source} left out: {denied.diagnostics}", severity="warning")
            )
            continue
        targets = [m for m in page if await check.refusal(grant, m) is None]
        if len(targets) < len(page):
            issues.append(
                issue(
                    "suppressed",
                    f"_revinclude of {source} not asked for {len(page) - len(targets)} "
                    "match(es): this caller may not see their records",
                    severity="warning",
                )
            )
        rows, problems = await resolve_rev_includes(
            targets,
            wanted,
            rt.registry,
            ctx,
            default_count=rt.settings.default_page_size,
            max_count=rt.settings.max_page_size,
            budget=budget,
        )
        kept, withheld = await _permitted_includes(request, check, rows)
        source_provider = rt.registry.find(source)
        if source_provider is not None and not source_provider.search_copies_complete:
            kept = [search_copy(ensure_version(r)) for r in kept]
        found += kept
        issues += problems + withheld
    return found, issues


async def metadata(request: Request) -> Response:
    pretty = negotiate(request)
    rt = runtime(request)
    mode = request.query_params.get("mode", "full")
    summary = request.query_params.get("_summary")
    if mode not in ("full", "normative", "terse"):
        raise InvalidSearchParameter("Parameter 'mode' takes full, normative or terse")
    statement = capability_statement(
        rt.registry,
        rt.settings,
        rt.base_url,
        terse=mode == "terse" or summary == "true",
        upstream_access=rt.upstream_access,
        nhs_urls=rt.nhs_urls,
    )
    return FHIRResponse(statement, pretty=pretty)
