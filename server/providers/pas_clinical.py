"""AllergyIntolerance and MedicationRequest from NHS and from the PAS: one composite each.

Wraps whichever NHS provider is registered for the type (or stands alone when none
is), and adds the PAS-recorded records of the patient searched for:
- `patient=pas-H123` finds H123's PAS records, and the NHS records of H123's NHS number;
- `patient=9000000009` (or patient.identifier with the NHS number system) finds the NHS
  records and the PAS records of every PAS patient with that NHS number;
- patient.identifier with the hospital-number system works like `pas-H123`.
Every record says where it came from in `meta.source`; a PAS record that an NHS record
already describes is not repeated (server.pas.dedup).

The other declared parameters (clinical-status, category, date, status, intent,
authoredon, identifier, ...) apply to the PAS records exactly as to the NHS ones, by
one matcher (server.fhir.search_match), so a filtered search filters both sources
alike; a PAS record lacking the element does not match (FHIR semantics). Those the NHS
provider declares `evaluated="local"` are applied by ResourceProvider.search to this
composite's whole answer (this class implements `fetch`); those its NHS API evaluates
upstream, and the NHS source's default filters, no NHS API saw on the PAS records, so
they are applied to the PAS records here. The patient parameters are answered here
(this composite declares them upstream-evaluated): a `pas-` id is no reference an NHS
record carries. A parameter that cannot be evaluated in memory (no path, an unsupported
type or modifier) is a 400 whenever PAS records are in play, before any NHS API is
asked: leaving the PAS records out would return an incomplete list as if complete, and
keeping them would ignore the filter; either is unsafe for allergies and medications.
The PAS store being down is a 503 (Retry-After) for the same reason: no partial
clinical lists.
"""

from __future__ import annotations

import copy
import dataclasses

from server.fhir.errors import InvalidSearchParameter, NotFound, NotSupportedParameter
from server.fhir.outcome import issue
from server.fhir.search_match import Unevaluable, check_evaluable, matches
from server.fhir.search_params import ParsedParam, ReferenceValue, SearchParamSpec, accepted_modifiers, parse_param
from server.fhir.search_request import SearchRequest
from server.nhs.nhs_number import NHS_NUMBER_SYSTEM
from server.pas.dedup import without_duplicates
from server.pas.errors import PASError
from server.pas.records import PAS_ID_PREFIX, clinical_resources, hospital_number_of
from server.pas.service import PASService
from server.pas.store import StoredPatient
from server.providers.base import RequestContext, Resource, ResourceProvider, SearchResult, with_common_params

NHS_SOURCE = "urn:nhs-fhir-facade:nhs"
SP = "http://hl7.org/fhir/SearchParameter/"
_PROFILES = {
    "AllergyIntolerance": "https://fhir.hl7.org.uk/StructureDefinition/UKCore-AllergyIntolerance",
    "MedicationRequest": "https://fhir.hl7.org.uk/StructureDefinition/UKCore-MedicationRequest",
}
_SUBJECT = {"AllergyIntolerance": "patient", "MedicationRequest": "subject"}
SUBJECT_PARAMS = ("patient", "subject")


class ClinicalWithPAS(ResourceProvider):
    resource_type = "AllergyIntolerance"
    understands_pas_ids = True  # `patient=pas-{hospitalNumber}` is answered here

    def __init__(self, resource_type: str, inner: ResourceProvider | None, service: PASService) -> None:
        self.resource_type = resource_type  # type: ignore[misc]
        self.inner = inner
        self.service = service
        system = service.mappings.hospital_number_system
        self.profile = inner.profile if inner else _PROFILES[resource_type]  # type: ignore[misc]
        note = (
            f"Includes records from the PAS (meta.source {service.mappings.source_uri}) for "
            f"patient=pas-{{hospital number}} or patient.identifier={system}|{{hospital number}}."
        )
        self.documentation = (inner.documentation + " " if inner else "") + note  # type: ignore[misc]
        self.interactions = inner.interactions if inner else ("read", "vread", "search-type")  # type: ignore[misc]
        self.includes = inner.includes if inner else ()  # type: ignore[misc]
        self.identifier_systems = inner.identifier_systems if inner else ()  # type: ignore[misc]
        self.default_filters = inner.default_filters if inner else ()  # type: ignore[misc]
        params = list(inner.search_params) if inner else []
        if not any(p.name == "patient" for p in params):
            params.append(
                SearchParamSpec(
                    "patient",
                    "reference",
                    "The patient: NHS number or pas-{hospital number}",
                    SP + "clinical-patient",
                    path=_SUBJECT[resource_type],
                    target_types=("Patient",),
                    modifiers=("identifier",),  # a patient must be named: no :missing
                )
            )
        # The patient is answered here, never matched by the core (see the module docstring).
        self.last_updated = inner.last_updated if inner else False  # type: ignore[misc]
        self.search_copies_complete = inner.search_copies_complete if inner else True  # type: ignore[misc]
        own = tuple(
            dataclasses.replace(p, evaluated="upstream", modifiers=accepted_modifiers(p))
            if p.name in SUBJECT_PARAMS
            else p
            for p in params
        )
        self.search_params = with_common_params(own, self.last_updated)  # type: ignore[misc]
        self.nhs_source = getattr(inner, "source_uri", NHS_SOURCE)

    async def read(self, resource_id: str, ctx: RequestContext) -> Resource:
        if resource_id.startswith(PAS_ID_PREFIX):
            hn, _, _ = resource_id[len(PAS_ID_PREFIX) :].partition("-")
            try:
                stored = await self.service.find(hn)
            except PASError as err:
                raise err.to_fhir() from None
            for resource in clinical_resources(self.service.mappings, self.resource_type, stored) if stored else []:
                if resource["id"] == resource_id:
                    return resource
            raise NotFound(f"{self.resource_type}/{resource_id} is not known")
        if self.inner is None:
            raise NotFound(f"{self.resource_type}/{resource_id} is not known")
        return self._tagged(await self.inner.read(resource_id, ctx))

    def _tagged(self, resource: Resource) -> Resource:
        if (resource.get("meta") or {}).get("source"):
            return resource
        out = copy.deepcopy(resource)
        out["meta"] = {**(out.get("meta") or {}), "source": self.nhs_source}
        return out

    async def _patients(self, param: ParsedParam) -> tuple[list[StoredPatient], list[str]]:
        """The PAS patients and the NHS numbers one `patient` parameter names."""
        patients: list[StoredPatient] = []
        numbers: list[str] = []
        for value in param.values:
            assert isinstance(value, ReferenceValue)
            hn = nhs = None
            if value.identifier is not None:
                if value.identifier.system == self.service.mappings.hospital_number_system:
                    hn = value.identifier.code
                elif value.identifier.system in (None, NHS_NUMBER_SYSTEM) or value.identifier.any_system:
                    nhs = value.identifier.code
            elif value.id:
                hn = hospital_number_of(value.id)
                nhs = None if hn else value.id
            if hn:
                stored = await self.service.find(hn)
                if stored:
                    patients.append(stored)
                    if stored.nhs_number:
                        numbers.append(stored.nhs_number)
            elif nhs:
                numbers.append(nhs)
                patients.extend(await self.service.find_by_nhs_number(nhs))
        return patients, list(dict.fromkeys(numbers))

    def _names_pas_patient(self, param: ParsedParam) -> bool:
        """True when a value names a PAS patient (pas- id or hospital-number identifier)."""
        for value in param.values:
            assert isinstance(value, ReferenceValue)
            if value.identifier is not None:
                if value.identifier.system == self.service.mappings.hospital_number_system:
                    return True
            elif value.id and hospital_number_of(value.id):
                return True
        return False

    def _subject_params(self, request: SearchRequest) -> list[ParsedParam]:
        """The occurrences naming the patient: `patient`, and `subject` where it is declared
        as a Patient reference (MedicationRequest), so `subject=pas-H1` works like `patient=`."""
        names = [
            n
            for n in SUBJECT_PARAMS
            if (spec := self.search_param(n)) is not None
            and spec.type == "reference"
            and "Patient" in spec.target_types
        ]
        return [p for p in request.params if p.name in names and p.modifier != "missing"]

    def _defaults(self, request: SearchRequest) -> list[ParsedParam]:
        """The NHS source's default filters for parameters this search does not mention."""
        out = []
        for name, raw in self.default_filters:
            spec = self.search_param(name)
            if spec is not None and not request.get(name):
                out.append(parse_param(spec, None, raw))
        return out

    async def fetch(self, request: SearchRequest, ctx: RequestContext) -> SearchResult:
        subject = self._subject_params(request)
        if not subject:
            if self.inner is None:
                raise InvalidSearchParameter(f"{self.resource_type} searches here need a patient parameter")
            inner = await self.inner.search(request, ctx)
            return dataclasses.replace(inner, matches=[self._tagged(m) for m in inner.matches])
        named = subject[0]
        try:
            patients, numbers = await self._patients(named)
        except PASError as err:
            raise err.to_fhir() from None
        if self.inner is not None and not patients and not any(self._names_pas_patient(p) for p in subject):
            # Nothing PAS-side: the NHS provider answers the request as sent, so its own
            # checks (NHS number Modulus-11, identifier systems) still apply.
            inner = await self.inner.search(request, ctx)
            return dataclasses.replace(inner, matches=[self._tagged(m) for m in inner.matches])
        if len(subject) > 1:
            # AND of two patient parameters when one names a PAS patient: the NHS side
            # cannot be asked about a pas- id, and an intersection of patients is not a
            # search anyone needs. Say so rather than guess.
            raise InvalidSearchParameter(
                f"Name the patient once ({' or '.join(p.key() for p in subject)} given together) "
                f"when searching the PAS-recorded {self.resource_type} records"
            )
        specs = {p.name: p for p in self.search_params}
        # What no NHS API evaluated on the PAS records and the core will not either: the
        # parameters the NHS side evaluates upstream (the local ones: ResourceProvider.search).
        filters = [
            p
            for p in request.params
            if p is not named and (spec := specs.get(p.name)) is not None and spec.evaluated == "upstream"
        ]
        defaults = self._defaults(request)
        self._check_filters(filters)
        result = SearchResult(matches=[])
        if self.inner is not None and numbers:
            rewritten = ParsedParam(named.name, None, tuple(ReferenceValue("Patient", n) for n in numbers))
            params = tuple(rewritten if p is named else p for p in request.params)
            inner = await self.inner.search(dataclasses.replace(request, params=params), ctx)
            result = dataclasses.replace(inner, matches=[self._tagged(m) for m in inner.matches])
        elif defaults:
            shown = "&".join(f"{p.key()}={p.text()}" for p in defaults)
            result.issues.append(
                issue(
                    "informational",
                    (
                        f"PAS-recorded {self.resource_type} records are filtered by {shown} when the search does not "
                        "name these parameters, as the NHS source's are; name them to see others"
                    ),
                    severity="information",
                )
            )
        pas = [
            r
            for stored in {p.hospital_number: p for p in patients}.values()
            for r in clinical_resources(self.service.mappings, self.resource_type, stored)
            if matches(r, filters + defaults, specs)
        ]
        result.matches.extend(without_duplicates(result.matches, pas))
        return result

    def _check_filters(self, filters: list[ParsedParam]) -> None:
        """400 for a parameter PAS records cannot be filtered by (see the module docstring)."""
        specs = {p.name: p for p in self.search_params}
        for param in filters:
            try:
                check_evaluable(param, specs.get(param.name))
            except Unevaluable as err:
                raise NotSupportedParameter(
                    f"Parameter '{param.key()}' cannot be applied to the PAS-recorded {self.resource_type} "
                    f"records of this patient ({err.why}); search without it"
                ) from None
