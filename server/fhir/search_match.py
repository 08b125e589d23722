"""Does a resource satisfy parsed search parameters? The one local matcher. Pure.

Evaluated in memory, generically, from each parameter's SearchParamSpec.path, with the
typed values of server.fhir.search_params. Parameters are AND-ed, a parameter's values
OR-ed. It runs in one place for every provider: ResourceProvider.search applies the
parameters a provider declares `evaluated="local"` to whatever the provider answers (NHS
and PAS records alike). The PAS composites also apply the parameters an NHS API
evaluates upstream to their PAS records, which no NHS API saw, with this same matcher.

What it evaluates (anything else raises Unevaluable, never "matches everything"):
- token: `code` elements (the implied code system from CODE_SYSTEMS, so `system|code`
  works for the elements listed there), Coding, CodeableConcept, Identifier,
  ContactPoint and booleans; modifiers none, :not (true also when the element is
  absent, as FHIR R4 defines it), :text (starts-with on CodeableConcept.text and
  Coding.display, case- and accent-insensitive) and :missing.
- date: date/dateTime/instant strings and Periods, with the FHIR prefixes of
  DateValue.matches; :missing.
- string: strings, and every string part of a complex value (HumanName, Address);
  starts-with by default and :contains (case- and accent-insensitive), :exact
  (exactly); :missing.
- reference: Reference.reference by type and id (relative or absolute), :identifier
  on Reference.identifier, a type modifier, :missing.
A union path (`identifier|groupIdentifier`) searches every branch, each with its own
implied code system.

Decisions where the four filters this replaced disagreed (FHIR R4 search.html):
- A Period's missing end is +infinity (the period is ongoing) and its missing start is
  -infinity, so `gt2030` finds an open-ended occurrence; one filter had ended open
  periods at 9999-12-31T00:00, which a `gt9999-12-30` search fell short of.
- A Period bound that is present but not a date, and a Period with no bound at all,
  give no range: such a Period matches no date value (it says nothing about when); one
  filter had read a malformed bound as an open one.
- :missing is about the element's presence (`true` when the resource has no value at
  the path), whatever the value holds: a CodeableConcept with text and no coding is
  present; one filter had looked at codings (or parsed dates) only.
- :text and :not are evaluated for every token parameter evaluated here; the bespoke
  filters had refused them (a 400) on the NHS half while the PAS half answered them.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from mappings.paths import branches, values_at
from server.fhir.search_params import (
    TYPE_MODIFIERS,
    DateValue,
    MissingValue,
    ParsedParam,
    ReferenceValue,
    SearchParamSpec,
    StringValue,
    TokenValue,
    fhir_date_range,
)

Resource = dict[str, Any]
Pair = tuple[str | None, str | None]

# Implied code systems of `code` elements (required bindings, FHIR R4): a bare code has
# no system in the JSON, but `system|code` searches must still find it.
CODE_SYSTEMS: dict[str, str] = {
    "AuditEvent.outcome": "http://hl7.org/fhir/audit-event-outcome",
    "AuditEvent.action": "http://hl7.org/fhir/audit-event-action",
    "AllergyIntolerance.category": "http://hl7.org/fhir/allergy-intolerance-category",
    "AllergyIntolerance.criticality": "http://hl7.org/fhir/allergy-intolerance-criticality",
    "AllergyIntolerance.type": "http://hl7.org/fhir/allergy-intolerance-type",
    "MedicationRequest.status": "http://hl7.org/fhir/CodeSystem/medicationrequest-status",
    "MedicationRequest.intent": "http://hl7.org/fhir/CodeSystem/medicationrequest-intent",
    "MedicationRequest.priority": "http://hl7.org/fhir/request-priority",
    "ServiceRequest.status": "http://hl7.org/fhir/request-status",
    "ServiceRequest.intent": "http://hl7.org/fhir/request-intent",
    "ServiceRequest.priority": "http://hl7.org/fhir/request-priority",
    "Patient.gender": "http://hl7.org/fhir/administrative-gender",
}
# What the matcher evaluates: each type's default modifiers, declared once (search_params).
_MODIFIERS = {kind: {None, *modifiers} for kind, modifiers in TYPE_MODIFIERS.items()}
_FAR_PAST = datetime.min.replace(tzinfo=timezone.utc)
_FAR_FUTURE = datetime.max.replace(tzinfo=timezone.utc)


class Unevaluable(Exception):
    """This parameter cannot be evaluated in memory (no path, unsupported type or modifier)."""

    def __init__(self, name: str, why: str) -> None:
        super().__init__(f"'{name}': {why}")
        self.name = name
        self.why = why


def check_evaluable(param: ParsedParam, spec: SearchParamSpec | None) -> SearchParamSpec:
    """The spec to evaluate `param` with; raises Unevaluable when there is none that works."""
    if spec is None:
        raise Unevaluable(param.name, "no declaration for this parameter")
    if not spec.path:
        raise Unevaluable(param.name, "the parameter has no element path")
    allowed = _MODIFIERS.get(spec.type)
    if allowed is None:
        raise Unevaluable(param.name, f"{spec.type} parameters are not evaluated here")
    type_modifier = spec.type == "reference" and (param.modifier or "")[:1].isupper()
    if param.modifier not in allowed and not type_modifier:
        raise Unevaluable(param.name, f"the :{param.modifier} modifier is not evaluated here")
    return spec


def local_params(params: Iterable[ParsedParam], specs: Mapping[str, SearchParamSpec]) -> list[ParsedParam]:
    """The parameters of a search the core evaluates (declared `evaluated="local"`), each
    checked first: raises Unevaluable before anything is fetched. Upstream-evaluated and
    undeclared parameters are not among them."""
    local = []
    for param in params:
        spec = specs.get(param.name)
        if spec is not None and spec.evaluated == "local":
            check_evaluable(param, spec)
            local.append(param)
    return local


def matches(resource: Resource, params: Iterable[ParsedParam], specs: Mapping[str, SearchParamSpec]) -> bool:
    """True when `resource` satisfies every parameter (raises Unevaluable first if any
    parameter cannot be evaluated, whatever the resource)."""
    checked = [(p, check_evaluable(p, specs.get(p.name))) for p in params]
    return all(_param_matches(resource, p, spec) for p, spec in checked)


def _param_matches(resource: Resource, param: ParsedParam, spec: SearchParamSpec) -> bool:
    assert spec.path is not None
    rtype = resource.get("resourceType")
    # Each value with the implied code system of the branch it was found on.
    located = [
        (value, CODE_SYSTEMS.get(f"{rtype}.{branch}"))
        for branch in branches(spec.path)
        for value in values_at(resource, branch)
    ]
    found = [value for value, _ in located]
    if param.modifier == "missing":
        value = param.values[0]
        assert isinstance(value, MissingValue)
        return value.missing == (not found)
    if spec.type == "token":
        return _token(located, param)
    if spec.type == "date":
        spans = [s for v in found for s in date_spans(v)]
        return any(isinstance(v, DateValue) and v.matches(*s) for v in param.values for s in spans)
    if spec.type == "string":
        texts = [t for v in found for t in _strings(v)]
        return any(
            isinstance(v, StringValue) and _string_hit(v.value, t, param.modifier) for v in param.values for t in texts
        )
    return any(isinstance(v, ReferenceValue) and _reference_hit(v, r) for v in param.values for r in found)


# --- token -------------------------------------------------------------------------------


def _pairs(value: Any, implied_system: str | None) -> list[Pair]:
    if isinstance(value, bool):
        return [(None, "true" if value else "false")]
    if isinstance(value, str):
        return [(implied_system, value)]
    if not isinstance(value, dict):
        return []
    if "coding" in value or ("text" in value and "code" not in value and "value" not in value):
        return [p for c in value.get("coding") or [] for p in _pairs(c, None)]
    if "code" in value:
        return [(value.get("system"), value.get("code"))]
    if "value" in value:
        return [(value.get("system"), value.get("value"))]
    return []


def _texts(value: Any) -> list[str]:
    """What :text searches: CodeableConcept.text and every Coding.display."""
    if not isinstance(value, dict):
        return []
    out = [value["text"]] if isinstance(value.get("text"), str) else []
    if isinstance(value.get("display"), str):
        out.append(value["display"])
    return out + [t for c in value.get("coding") or [] for t in _texts(c)]


def _token(located: list[tuple[Any, str | None]], param: ParsedParam) -> bool:
    """`located`: each value found with the implied code system of its element."""
    tokens = [v for v in param.values if isinstance(v, TokenValue)]
    if param.modifier == "text":
        texts = [_fold(t) for v, _ in located for t in _texts(v)]
        wanted = [_fold(t.code or "") if t.any_system else _fold(f"{t.system or ''}|{t.code or ''}") for t in tokens]
        return any(text.startswith(w) for w in wanted for text in texts)
    hit = any(t.matches(system, code) for t in tokens for v, implied in located for system, code in _pairs(v, implied))
    return not hit if param.modifier == "not" else hit


# --- date --------------------------------------------------------------------------------


def date_spans(value: Any) -> list[tuple[datetime, datetime]]:
    """The instant ranges [start, end) a date, dateTime, instant or Period covers (none for
    anything else). A Period's missing end is +infinity and its missing start -infinity
    (FHIR R4: an open end is ongoing); a bound that is present but not a date, or no
    bound at all, gives no range (see the module docstring)."""
    if isinstance(value, str):
        span = fhir_date_range(value)
        return [span] if span else []
    if isinstance(value, dict) and ("start" in value or "end" in value):  # Period
        start = fhir_date_range(value["start"]) if isinstance(value.get("start"), str) else None
        end = fhir_date_range(value["end"]) if isinstance(value.get("end"), str) else None
        if (value.get("start") is not None and start is None) or (value.get("end") is not None and end is None):
            return []  # a malformed bound: no usable range
        return [(start[0] if start else _FAR_PAST, end[1] if end else _FAR_FUTURE)]
    return []


# --- string ------------------------------------------------------------------------------


def _fold(text: str) -> str:
    """Case- and accent-insensitive form (FHIR string search)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in (v if isinstance(v, list) else [v]) if isinstance(s, str)]
    return []


def _string_hit(wanted: str, text: str, modifier: str | None) -> bool:
    """:exact is exact (case and accents count); otherwise both sides are folded."""
    if modifier == "exact":
        return wanted == text
    if modifier == "contains":
        return _fold(wanted) in _fold(text)
    return _fold(text).startswith(_fold(wanted))


# --- reference ---------------------------------------------------------------------------


def _reference_hit(wanted: ReferenceValue, found: Any) -> bool:
    if not isinstance(found, dict):
        return False
    if wanted.identifier is not None:
        ident = found.get("identifier")
        return isinstance(ident, dict) and wanted.identifier.matches(ident.get("system"), ident.get("value"))
    ref = found.get("reference")
    if not isinstance(ref, str) or not ref:
        return False
    parts = ref.rstrip("/").split("/")
    rid = parts[-1]
    rtype = parts[-2] if len(parts) >= 2 else None
    if rid != wanted.id:
        return False
    return wanted.resource_type is None or rtype == wanted.resource_type
