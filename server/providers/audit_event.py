"""AuditEvent: the façade's own audit trail (IHE BALP events), read and searched.

The events are PHI about who looked at whom: only the auditor role may read them. That
is enforced by the handlers (server.access), not here. Never wrap this provider in the
read-through cache (`cacheable = False`): the trail grows with every request, including
the auditor's own.

Search: the trail's indexed filters (patient, agent, recorded range, outcome, type
codes) narrow what is fetched, always to a superset of the answer; the one local matcher
(server.fhir.search_match) then applies every parameter with its FHIR semantics: the
core does (ResourceProvider.search, every parameter declared `evaluated="local"`) but
for `agent`, whose bare-value rule below is this provider's, applied here by the same
matcher. Newest first; `_sort=date` / `_sort=-date` is honoured by the server.

Parameter decisions (FHIR R4 leaves room):
- `patient`: references in `entity.what` (BALP puts the patient there). FHIR R4 also
  counts a Patient in `agent.who` (patient-access apps); our events name the patient
  as an entity, so only entities are searched.
- `agent`: a reference to `agent.who`, as FHIR R4 declares it. Our agents carry
  identifiers, not references, so a bare value (`agent=555254242106`) matches an agent's
  `who.identifier.value` (any system) or the id of its `who.reference`;
  `agent:identifier=system|value` (or `agent:identifier=value`, any system) matches the
  identifier exactly as a token; `agent=Practitioner/123` matches a reference. A value
  that is not a FHIR id (e.g. an e-mail address) must use `agent:identifier`.
- `type`: a code of `type` *or* of any `subtype` (the union path `type|subtype`), so
  `type=rest` and `type=read` both work; `:not` means in neither. `subtype` searches
  the subtypes only.
- `date`: `recorded`, with every FHIR prefix (eq, ne, gt, lt, ge, le, sa, eb, ap).
- `outcome`, `action`: the codes (`outcome=4`, `action=R`).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import ClassVar

from server.access.audit_trail import AuditTrail, AuditUnavailable
from server.fhir.errors import NotFound, ServiceUnavailable
from server.fhir.outcome import Issue, issue
from server.fhir.search_match import matches
from server.fhir.search_params import (
    DateValue,
    ParsedParam,
    ReferenceValue,
    SearchParamSpec,
    TokenValue,
    Value,
)
from server.fhir.search_request import SearchRequest
from server.providers.base import RequestContext, Resource, ResourceProvider, SearchResult

SP = "http://hl7.org/fhir/SearchParameter/"
AGENT_TYPES = ("Practitioner", "PractitionerRole", "Organization", "Device", "Patient", "RelatedPerson")
# A FHIR instant has at most this much imprecision (whole seconds): widening the
# store's date range by it keeps the range a superset of what the matcher accepts.
INSTANT_SLACK = timedelta(seconds=1)
RETRY_AFTER = {"Retry-After": "5"}


@dataclasses.dataclass(frozen=True)
class StoreFilters:
    """The arguments of AuditTrail.find a search allows: each narrows to a superset of its matches."""

    patient: str | None = None
    agent: str | None = None
    recorded_from: datetime | None = None
    recorded_to: datetime | None = None
    outcome: str | None = None
    types: tuple[str, ...] = ()


def _single(params: list[ParsedParam], *modifiers: str | None) -> ParsedParam | None:
    """The first occurrence with one value and an allowed modifier (several values are OR)."""
    return next((p for p in params if p.modifier in modifiers and len(p.values) == 1), None)


def _date_bounds(value: DateValue) -> tuple[datetime | None, datetime | None]:
    """Bounds on `recorded` for one date value, from DateValue.matches, widened by the
    slack (the matcher then applies the exact rule). ne and ap give none."""
    lows = {"eq": value.start, "ge": value.start, "gt": value.end, "sa": value.end}
    highs = {"eq": value.end, "le": value.end, "lt": value.start, "eb": value.start}
    return _shifted(lows.get(value.prefix), -INSTANT_SLACK), _shifted(highs.get(value.prefix), INSTANT_SLACK)


def _shifted(bound: datetime | None, slack: timedelta) -> datetime | None:
    """bound + slack; no bound at all at the ends of the calendar (year 1 or 9999)."""
    try:
        return bound + slack if bound is not None else None
    except OverflowError:
        return None


def store_filters(request: SearchRequest) -> StoreFilters:
    """What the trail's indexes can narrow a search to. Pure."""
    patient = agent = outcome = None
    if (p := _single(request.get("patient"), None, "Patient")) is not None:
        ref = p.values[0]
        if isinstance(ref, ReferenceValue) and ref.id and ref.resource_type in (None, "Patient"):
            patient = f"Patient/{ref.id}"
    if (a := _single(request.get("agent"), None, "identifier", *AGENT_TYPES)) is not None:
        ref = a.values[0]
        if isinstance(ref, ReferenceValue):
            agent = ref.identifier.code if ref.identifier is not None else ref.id
    if (o := _single(request.get("outcome"), None)) is not None and isinstance(o.values[0], TokenValue):
        outcome = o.values[0].code
    types: tuple[str, ...] = ()
    for name in ("type", "subtype"):
        plain = next((p for p in request.get(name) if p.modifier is None), None)
        codes = [v.code for v in plain.values if isinstance(v, TokenValue)] if plain else []
        if plain and codes and all(codes):
            types = tuple(c for c in codes if c)
            break
    low: datetime | None = None
    high: datetime | None = None
    for param in request.get("date"):
        if param.modifier is not None:
            continue
        bounds = [_date_bounds(v) for v in param.values if isinstance(v, DateValue)]
        lows, highs = [b[0] for b in bounds], [b[1] for b in bounds]
        if lows and all(x is not None for x in lows):  # OR of values: the widest range
            candidate = min(x for x in lows if x is not None)
            low = candidate if low is None else max(low, candidate)
        if highs and all(x is not None for x in highs):
            candidate = max(x for x in highs if x is not None)
            high = candidate if high is None else min(high, candidate)
    return StoreFilters(patient, agent, low, high, outcome, types)


def _bare_agent_values(param: ParsedParam) -> ParsedParam:
    """`agent=X` (no type, no modifier) is also X as an identifier value, any system."""
    if param.name != "agent" or param.modifier is not None:
        return param
    values: list[Value] = []
    for value in param.values:
        values.append(value)
        if isinstance(value, ReferenceValue) and value.resource_type is None and value.identifier is None and value.id:
            values.append(ReferenceValue(None, None, identifier=TokenValue(None, value.id, any_system=True)))
    return dataclasses.replace(param, values=tuple(values))


def with_last_updated(event: Resource) -> Resource:
    """The event with meta.lastUpdated: an AuditEvent never changes once recorded, so
    `recorded` is when it last did. Reads then send Last-Modified (If-Modified-Since
    works) and `_lastUpdated` searches it (the provider declares last_updated)."""
    meta = event.get("meta") or {}
    if meta.get("lastUpdated") or not isinstance(event.get("recorded"), str):
        return event
    return {**event, "meta": {**meta, "lastUpdated": event["recorded"]}}


class AuditEventProvider(ResourceProvider):
    """Read and search AuditEvents in an AuditTrail (see the module docstring)."""

    resource_type: ClassVar[str] = "AuditEvent"
    documentation: ClassVar[str] = (
        "The façade's audit trail: one AuditEvent (IHE BALP) per access, allowed or refused. Auditor role only. "
        "Newest first. `agent` matches an agent identifier value or reference id; `type` matches type or subtype "
        "codes; `patient` matches Patient entities."
    )
    interactions: ClassVar[tuple[str, ...]] = ("read", "search-type")
    cacheable: ClassVar[bool] = False
    last_updated: ClassVar[bool] = True  # meta.lastUpdated is `recorded` (with_last_updated)
    search_params: ClassVar[tuple[SearchParamSpec, ...]] = (
        SearchParamSpec(
            "patient",
            "reference",
            "A Patient the event is about (entity.what): 9000000009 or Patient/9000000009",
            SP + "AuditEvent-patient",
            path="entity.what",
            target_types=("Patient",),
            evaluated="local",
        ),
        # Evaluated here (upstream of the core): a bare value is also an identifier value.
        SearchParamSpec(
            "agent",
            "reference",
            "Who took part: a bare value matches agent.who.identifier.value "
            "(any system) or a reference id; agent:identifier=system|value matches the identifier",
            SP + "AuditEvent-agent",
            path="agent.who",
            target_types=AGENT_TYPES,
            evaluated="upstream",
        ),
        SearchParamSpec(
            "date",
            "date",
            "When the event was recorded (recorded)",
            SP + "AuditEvent-date",
            path="recorded",
            evaluated="local",
        ),
        SearchParamSpec(
            "outcome",
            "token",
            "0 success, 4 minor failure, 8 serious failure, 12 major failure",
            SP + "AuditEvent-outcome",
            path="outcome",
            evaluated="local",
        ),
        # type|subtype: `type=read` finds a read whose type is rest; :not is "in neither".
        SearchParamSpec(
            "type",
            "token",
            "A code of type (rest) or of any subtype (read, search-type, ...)",
            SP + "AuditEvent-type",
            path="type|subtype",
            evaluated="local",
        ),
        SearchParamSpec(
            "subtype",
            "token",
            "The RESTful interaction (http://hl7.org/fhir/restful-interaction)",
            SP + "AuditEvent-subtype",
            path="subtype",
            evaluated="local",
        ),
        SearchParamSpec(
            "action",
            "token",
            "C, R, U, D or E (E for searches and operations)",
            SP + "AuditEvent-action",
            path="action",
            evaluated="local",
        ),
        SearchParamSpec(
            "entity",
            "reference",
            "Any resource the event names (entity.what), e.g. MedicationRequest/abc",
            SP + "AuditEvent-entity",
            path="entity.what",
            evaluated="local",
        ),
    )

    def __init__(self, trail: AuditTrail, *, max_results: int = 10_000) -> None:
        self.trail = trail
        self.max_results = max_results
        self._specs = {p.name: p for p in self.search_params}

    async def read(self, resource_id: str, ctx: RequestContext) -> Resource:
        try:
            event = await self.trail.get(resource_id)
        except AuditUnavailable as err:
            raise ServiceUnavailable(str(err), headers=dict(RETRY_AFTER)) from None
        if event is None:
            raise NotFound(f"AuditEvent/{resource_id} is not known")
        return with_last_updated(event)

    async def fetch(self, request: SearchRequest, ctx: RequestContext) -> SearchResult:
        wanted = store_filters(request)
        try:
            found = await self.trail.find(**dataclasses.asdict(wanted), limit=self.max_results)
        except AuditUnavailable as err:
            raise ServiceUnavailable(str(err), headers=dict(RETRY_AFTER)) from None
        agents = [_bare_agent_values(p) for p in request.get("agent")]
        issues: list[Issue] = []
        if len(found) >= self.max_results:
            issues.append(
                issue(
                    "incomplete",
                    f"Only the newest {self.max_results} events the search could match "
                    "were examined; narrow it by date or patient to see older ones",
                    severity="warning",
                )
            )
        if self.trail.status() == "spooling":
            issues.append(
                issue(
                    "incomplete",
                    "Some recent events wait in the local spool for the database and are not searchable yet",
                    severity="warning",
                )
            )
        # agent is this provider's own rule (a bare value is also an identifier value), so
        # it is applied here, by the one matcher; the core applies every other parameter.
        kept = [with_last_updated(e) for e in found if matches(e, agents, self._specs)]
        return SearchResult(matches=kept, issues=issues)
