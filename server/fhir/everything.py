"""`GET [base]/Patient/{id}/$everything`: the patient and their records in one searchset.

The clinician's view: the Patient, then each compartment type's records, found by that
type's own search with `patient={id}` (server.fhir.operations.everything_types: every
registered type with a `patient` reference parameter to Patient, so a new source's type
joins without a list to edit). AuditEvent is left out even where it is registered and
searchable by patient: the audit trail is a record *about* access to the patient, kept
for auditors, not part of the patient's record (IHE BALP), and a clinician asking for
everything must not receive it.

Access and audit are those of the same requests sent one by one:
- the Patient read is the read handler's (`_guarded_read`): a 404/410 or a refusal of it
  is the operation's answer (a caller who may not read the patient runs nothing on them);
  any other failure of it becomes a warning;
- each type's part is a search of that type: its grant (scope, role, purpose), the
  relationship/compartment check on `patient={id}` before NHS is asked, and the per-
  resource check on what came back. A type the caller may not search, and an NHS or
  source failure, each become a warning in the OperationOutcome entry, never a failed
  answer;
- every resource on the page is noted for the request's one AuditEvent (written by
  server.access.middleware, subtype `operation` and the operation's name).

The Patient is read first (it decides whether anything else is asked), then the type
parts run concurrently (the caller's NHS quota and each API's rate limits apply in
the clients as for any search). The result is paged like a search: kept in the same
snapshot store, with opaque `_getpages` links bound to the caller and to this patient.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import Response

from server.access.policy import AccessDenied
from server.fhir.bundle import searchset
from server.fhir.errors import Gone, InvalidSearchParameter, NotFound
from server.fhir.handlers import (
    _guarded_read,
    audit_saw,
    checked_id,
    context,
    guard,
    negotiate,
    owned_page,
    permitted,
    runtime,
    strict_handling,
)
from server.fhir.operations import EVERYTHING as OPERATION
from server.fhir.operations import everything_types
from server.fhir.outcome import Issue, issue, operation_outcome
from server.fhir.pages import Snapshot
from server.fhir.request_limits import check_count
from server.fhir.responses import FHIRResponse
from server.fhir.search_request import SearchRequest, parse_search
from server.fhir.versioning import ensure_version
from server.providers.base import RequestContext
from server.providers.failures import PROVIDER_FAILURES, as_fhir_error
from server.providers.registry import COMPARTMENT_PARAM

# Parameters this operation reads; others are ignored (400 under Prefer: handling=strict).
KNOWN = frozenset({"_type", "_count", "_getpages", "_offset", "_format", "_pretty"})
Part = tuple[list[dict[str, Any]], list[Issue]]


def _snapshot_kind(patient_id: str) -> str:
    """What an $everything snapshot is filed as: never a type name, so a search's paging
    (handlers._page_from_snapshot) answers 410 for it, and bound to this patient."""
    return f"Patient/{patient_id}/${OPERATION}"


def _operation_url(base_url: str, patient_id: str, pairs: list[tuple[str, str]]) -> str:
    query = urlencode(pairs)
    return f"{base_url}/Patient/{quote(patient_id)}/${OPERATION}" + (f"?{query}" if query else "")


def _requested_types(
    raw: list[str], offered: tuple[str, ...], strict: bool, limit: int
) -> tuple[bool, tuple[str, ...], list[Issue]]:
    """Whether the Patient is wanted and which other types: `_type` (comma lists,
    repeatable: union) narrowed to what is offered; a type asked for that is not offered
    is a warning, or a 400 under strict handling."""
    if not raw:
        return True, offered, []
    names = [n.strip() for value in raw for n in value.split(",") if n.strip()]
    check_count("Parameter '_type' lists types", len(names), limit)
    wanted = dict.fromkeys(names)
    unknown = [n for n in wanted if n != "Patient" and n not in offered]
    if unknown and strict:
        raise InvalidSearchParameter(
            f"_type names types $everything does not return here: {', '.join(n[:64] for n in unknown[:10])}"
        )
    issues = [
        issue("not-supported", f"_type={n[:64]}: not returned by $everything here", severity="warning")
        for n in unknown[:10]
    ]
    return "Patient" in wanted, tuple(t for t in offered if t in wanted), issues


def _page_size(request: Request, raw: str | None) -> int:
    settings = runtime(request).settings
    if raw is None:
        return int(settings.default_page_size)
    try:
        count = int(raw)
    except ValueError:
        raise InvalidSearchParameter(f"Parameter '_count' must be an integer, not '{raw[:32]}'") from None
    if count < 0:
        raise InvalidSearchParameter(f"Parameter '_count' must be >= 0, not {count}")
    return min(count, int(settings.max_page_size))


async def _search_part(request: Request, resource_type: str, patient_id: str, ctx: RequestContext) -> Part:
    """One type's records, as `GET [base]/{type}?patient={id}` would find them for this
    caller; refusals and failures are warnings naming the type."""
    rt = runtime(request)
    provider = rt.registry.get(resource_type)
    check = guard(request)
    try:
        grant = check.grant(resource_type, "s")
        search = parse_search(
            [(COMPARTMENT_PARAM, patient_id)],
            provider.declaration(rt.settings.default_page_size, rt.settings.max_page_size),
        )
        await check.check_search(grant, search)  # before any NHS call
    except AccessDenied as denied:
        refused = f"{resource_type} left out: {denied.diagnostics}"
        note = request.state.audit  # the AuditEvent's outcomeDesc says which parts were refused
        note.reason = f"{note.reason}; {refused}" if note.reason else refused
        return [], [issue("suppressed", refused, severity="warning")]
    try:
        result = await provider.search(search, ctx)
    except PROVIDER_FAILURES as failure:
        err = as_fhir_error(failure)
        return [], [
            issue(
                "incomplete",
                f"{resource_type} could not be searched ({err.status}): {err.diagnostics}",
                severity="warning",
            )
        ]
    allowed = await permitted(request, grant, check, result.matches)
    issues = list(result.issues)
    if len(allowed) < len(result.matches):
        issues.append(
            issue(
                "suppressed",
                f"{len(result.matches) - len(allowed)} {resource_type} resource(s) withheld: "
                "this caller may not see them",
                severity="warning",
            )
        )
    return [ensure_version(r) for r in allowed], issues


async def _patient_part(request: Request, patient_id: str) -> Part:
    provider = runtime(request).registry.get("Patient")
    try:
        return [ensure_version(await _guarded_read(request, provider, patient_id))], []
    except (AccessDenied, NotFound, Gone):
        raise  # the operation is on this patient: no patient (or not theirs to see), no answer
    except PROVIDER_FAILURES as failure:
        err = as_fhir_error(failure)
        if err.status in (404, 410):
            raise err from failure
        return [], [
            issue(
                "incomplete",
                f"Patient/{patient_id} could not be read ({err.status}): {err.diagnostics}",
                severity="warning",
            )
        ]


async def patient_everything(request: Request) -> Response:
    """GET [base]/Patient/{id}/$everything (parameters `_type`, `_count`; paging by `_getpages`)."""
    pairs = list(request.query_params.multi_items())
    pretty = negotiate(request, pairs)
    rt = runtime(request)
    rt.registry.get("Patient")  # 404 where Patient is not served
    note = request.state.audit
    note.interaction, note.operation = "operation", OPERATION
    patient_id = checked_id(request)
    values = dict(pairs)
    if "_getpages" in values:
        return await _page(request, patient_id, values, pretty)
    strict = strict_handling(request)
    unknown = sorted({k for k, _ in pairs if k not in KNOWN})
    if unknown and strict:
        raise InvalidSearchParameter(f"Unknown or unsupported parameters for $everything: {', '.join(unknown)}")
    count = _page_size(request, values.get("_count"))
    want_patient, types, issues = _requested_types(
        [v for k, v in pairs if k == "_type"], everything_types(rt.registry), strict, rt.settings.max_list_items
    )
    # The patient first, even when _type leaves it out of the answer: a 404 or a refusal
    # of it stops the operation before any of their records are asked for.
    note.saw([f"Patient/{patient_id}"], [])
    found, patient_issues = await _patient_part(request, patient_id)
    if not want_patient:
        found = []
    ctx = context(request)
    parts = await asyncio.gather(*(_search_part(request, t, patient_id, ctx) for t in types))
    matches = list(found)
    issues += patient_issues
    for part_matches, part_issues in parts:
        matches += part_matches
        issues += part_issues
    outcome = operation_outcome(*issues) if issues else None
    self_pairs = [("_type", ",".join((("Patient",) if want_patient else ()) + types))] if "_type" in values else []
    if "_count" in values:
        self_pairs.append(("_count", str(count)))
    kind = _snapshot_kind(patient_id)
    search = SearchRequest(kind, count=count)
    key = None
    if count and len(matches) > count:
        owner = request.state.principal.binding_key()
        key = await rt.snapshots.put(search, matches, outcome, self_pairs, {}, owner=owner)
    snapshot = Snapshot(search, tuple(matches), outcome, tuple(self_pairs), {}, 0.0)
    return _render(request, patient_id, snapshot, key, 0, count, pretty, self_pairs=self_pairs)


async def _page(request: Request, patient_id: str, values: dict[str, str], pretty: bool) -> Response:
    key = values["_getpages"]
    snapshot, offset, count = await owned_page(request, key, _snapshot_kind(patient_id), values, "$everything results")
    return _render(request, patient_id, snapshot, key, offset, count, pretty)


def _render(
    request: Request,
    patient_id: str,
    snapshot: Snapshot,
    key: str | None,
    offset: int,
    count: int,
    pretty: bool,
    *,
    self_pairs: list[tuple[str, str]] | None = None,
) -> Response:
    rt = runtime(request)
    page = list(snapshot.matches[offset : offset + count])
    audit_saw(request, page)  # what this answer shows; a count alone names the patient
    if count == 0:
        audit_saw(request, list(snapshot.matches))

    def link_for(o: int) -> str:
        return _operation_url(
            rt.base_url, patient_id, [("_getpages", key or ""), ("_offset", str(o)), ("_count", str(count))]
        )

    bundle = searchset(
        base_url=rt.base_url,
        matches=page,
        outcome=snapshot.outcome,
        total=len(snapshot.matches),
        self_url=_operation_url(rt.base_url, patient_id, self_pairs) if self_pairs is not None else link_for(offset),
        offset=offset,
        count=count,
        match_count=len(snapshot.matches),
        link_for=link_for if key else None,
    )
    return FHIRResponse(bundle, pretty=pretty)
