"""The PAS service: register, read, update and merge PAS patients; trace NHS numbers
against PDS; fetch their NHS records through the FHIR providers.

Used by the PAS REST routes, the HL7 intake and the FHIR providers alike, so the three
entry points share one set of rules. I/O (store, PDS, providers) happens here; the
decisions it applies (mapping, tracing, merging) are pure modules.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from mappings.engine import MappingFailed, Problem, to_pas
from server.fhir.search_params import ParsedParam, ReferenceValue
from server.fhir.search_request import SearchRequest
from server.nhs.errors import UpstreamError
from server.pas.errors import PASError, store_unavailable
from server.pas.merge import WITHHELD, merge_with_pds, security_code
from server.pas.records import PASMappings, parse_document, patient_id, patient_resource
from server.pas.restriction import pds_said, restriction, restriction_of, shown
from server.pas.store import (
    AlreadyExists,
    PASStore,
    PatientData,
    PDSSecurity,
    StoredPatient,
    StoreUnavailable,
    UnknownPatient,
    VersionConflict,
)
from server.pas.tracing import TraceOutcome, TraceQuery, judge_exact, judge_fuzzy, no_fuzzy_possible
from server.providers.base import RequestContext
from server.providers.failures import PROVIDER_FAILURES, as_fhir_error
from server.providers.registry import ProviderRegistry
from server.providers.upstream_errors import to_fhir_error
from server.sources.pds.client import PDSClient, PDSTooManyMatches

log = logging.getLogger("facade.pas")

NOT_TRACED = "02"  # NHS number present but not traced (supplied by the PAS without a status)
TRACE_REQUIRED = "03"  # PDS could not be asked: trace still required
RELATED = {"allergies": "AllergyIntolerance", "medications": "MedicationRequest", "referrals": "ServiceRequest"}

Refresh = Literal["refreshed", "not-traced", "not-found", "unavailable"]


@contextlib.contextmanager
def store_errors() -> Iterator[None]:
    """A store-of-record outage becomes the PAS 503 (never swallowed, never a 500)."""
    try:
        yield
    except StoreUnavailable as exc:
        raise store_unavailable(exc) from None


def _keeping_restriction(data: PatientData, current: StoredPatient) -> PatientData:
    """A PAS update (a PUT, an HL7 A08/A31 carrying the whole record) that says nothing about
    confidentiality keeps the R/V restriction the PAS (or, in records stored before PDS's
    answer was kept apart, an earlier trace) put on the record: losing it would show the
    address again whenever PDS is down. PDS's own answer is kept by the store itself."""
    known = current.record.get("confidentiality")
    if known in WITHHELD and not data.record.get("confidentiality"):
        return dataclasses.replace(data, record={**data.record, "confidentiality": known})
    return data


@dataclass(frozen=True)
class PatientView:
    """A PAS patient as shown to callers: the stored record refreshed from PDS."""

    stored: StoredPatient
    fhir: dict[str, Any]
    refresh: Refresh


@dataclass(frozen=True)
class Written:
    stored: StoredPatient
    trace: TraceOutcome | None
    trace_error: str | None = None


@dataclass(frozen=True)
class RelatedRecord:
    record: dict[str, Any]
    source: Literal["NHS", "PAS"]
    unmapped: list[Problem]


@dataclass
class PASService:
    mappings: PASMappings
    store: PASStore
    registry: ProviderRegistry
    pds: PDSClient | None = None
    fuzzy_min_score: float = 0.95
    pds_max_results: int | None = None

    # --- writes ---------------------------------------------------------------

    def validate(self, body: Any) -> PatientData:
        try:
            return parse_document(self.mappings, body)
        except MappingFailed as failed:
            raise PASError(422, problems=failed.problems) from None

    async def register(self, body: Any, ctx: RequestContext) -> Written:
        """Validate, trace when there is no NHS number, store. Nothing is stored on a problem."""
        data = self.validate(body)
        hn = data.record["hospitalNumber"]
        with store_errors():
            known = await self.store.get(hn)
        if known is not None:
            raise PASError(
                409,
                f"hospital number {hn} is already registered; use PUT to update it",
                problems=[Problem("hospitalNumber", hn, "already registered")],
            )
        data, trace, trace_error = await self._with_nhs_number(data, ctx)
        try:
            with store_errors():
                stored = await self.store.create(data)
        except AlreadyExists:
            raise PASError(409, problems=[Problem("hospitalNumber", hn, "already registered")]) from None
        return Written(stored, trace, trace_error)

    async def update(
        self, hospital_number: str, body: Any, expected_version: int | None, ctx: RequestContext
    ) -> Written:
        """Replace a record; `expected_version` None = unconditional (HL7), else If-Match."""
        data = self.validate(body)
        if data.record["hospitalNumber"] != hospital_number:
            raise PASError(
                422,
                problems=[
                    Problem(
                        "hospitalNumber",
                        data.record["hospitalNumber"],
                        f"does not match the hospital number in the URL ({hospital_number})",
                    )
                ],
            )
        current = await self.stored(hospital_number)
        if expected_version is not None and expected_version != current.version:
            raise PASError(
                412,
                f"the record has changed (current version {current.version}); read it again",
                headers={"ETag": current.etag},
            )
        data = _keeping_restriction(data, current)
        data, trace, trace_error = await self._with_nhs_number(data, ctx)
        try:
            with store_errors():
                stored = await self.store.replace(current.hospital_number, data, expected_version=expected_version)
        except VersionConflict as conflict:
            raise PASError(
                412,
                f"the record has changed (current version {conflict.current}); read it again",
                headers={"ETag": f'W/"{conflict.current}"'},
            ) from None
        except UnknownPatient:
            raise PASError(404, f"no PAS patient with hospital number {hospital_number}") from None
        return Written(stored, trace, trace_error)

    async def upsert(self, body: Any, ctx: RequestContext) -> Written:
        """Register or replace unconditionally (HL7 A04/A08/A28/A31 carry no version)."""
        data = self.validate(body)
        with store_errors():
            current = await self.store.get(data.record["hospitalNumber"])
        if current is None:
            try:
                return await self.register(body, ctx)
            except PASError as err:
                if err.status != 409:
                    raise
                # Another message registered this patient while ours was being traced (a PDS
                # round trip): HL7 carries no version, so ours applies as an update.
                with store_errors():
                    current = await self.store.get(data.record["hospitalNumber"])
                if current is None:
                    raise
        keep = PatientData(data.record, data.allergies or current.allergies, data.medications or current.medications)
        body = {**keep.record, "allergies": list(keep.allergies), "medications": list(keep.medications)}
        return await self.update(current.hospital_number, body, None, ctx)

    async def merge(self, old: str, surviving: str) -> StoredPatient:
        try:
            with store_errors():
                return await self.store.merge(old, surviving)
        except UnknownPatient as unknown:
            raise PASError(404, f"no PAS patient with hospital number {unknown}") from None
        except ValueError as err:
            raise PASError(422, str(err)) from None
        except VersionConflict:
            raise PASError(409, "the records changed while being merged; send the merge again") from None

    async def _with_nhs_number(
        self, data: PatientData, ctx: RequestContext
    ) -> tuple[PatientData, TraceOutcome | None, str | None]:
        """A supplied NHS number is kept (status 02 unless given); otherwise trace. Either
        way, what PDS says about the patient's confidentiality goes with the write
        (`pds_security`), so reads made while PDS is down withhold what PDS would."""
        record = dict(data.record)
        if record.get("nhsNumber"):
            record.setdefault("nhsNumberStatus", NOT_TRACED)
            said = await self._pds_security(record["nhsNumber"], ctx)
            return dataclasses.replace(data, record=record, pds_security=said), None, None
        record.pop("nhsNumberStatus", None)
        trace, error = await self.trace(patient_resource(self.mappings, record), ctx)
        said = None
        if trace is None:
            record["nhsNumberStatus"] = TRACE_REQUIRED
        else:
            record["nhsNumberStatus"] = trace.status
            if trace.nhs_number:
                record["nhsNumber"] = trace.nhs_number
                said = pds_said(trace.security, trace.nhs_number)
        return dataclasses.replace(data, record=record, pds_security=said), trace, error

    async def _pds_security(self, nhs_number: str, ctx: RequestContext) -> PDSSecurity | None:
        """PDS's confidentiality for a supplied NHS number; None when PDS could not be asked
        (the write is not refused for it: the record stays unconfirmed, so withheld)."""
        if self.pds is None:
            return None
        try:
            patient = (await self.pds.get_patient(nhs_number, ctx)).patient
        except UpstreamError as err:  # stays: PDS down never refuses the write; the record stays withheld
            log.info("restriction check: PDS failed (%s) request_id=%s", type(err).__name__, ctx.request_id)
            return None
        return pds_said(security_code(patient), nhs_number)

    # --- tracing ----------------------------------------------------------------

    async def _search(self, params: list[tuple[str, str]], ctx: RequestContext) -> list[Any] | None:
        assert self.pds is not None
        if self.pds_max_results is not None:
            params = [*params, ("_max-results", str(self.pds_max_results))]
        try:
            return await self.pds.search(params, ctx)
        except PDSTooManyMatches:
            return None

    async def trace(self, patient: dict[str, Any], ctx: RequestContext) -> tuple[TraceOutcome | None, str | None]:
        """Exact then fuzzy PDS search (rules in server.pas.tracing). (None, why) when PDS
        could not be asked: the record is then stored as 03 (trace required), never guessed."""
        query = TraceQuery.from_patient(patient)
        if query is None or self.pds is None:
            return None, "no-pds" if self.pds is None else "insufficient-data"
        try:
            verdict = judge_exact(query, await self._search(query.exact_params(), ctx))
            if verdict is None:
                fuzzy = query.fuzzy_params()
                verdict = (
                    judge_fuzzy(query, await self._search(fuzzy, ctx), self.fuzzy_min_score)
                    if fuzzy
                    else no_fuzzy_possible()
                )
        except UpstreamError as err:  # stays: PDS down stores the record as 03 (trace required)
            log.warning("trace: PDS failed (%s) request_id=%s", type(err).__name__, ctx.request_id)
            return None, f"pds-{to_fhir_error(err).status}"
        log.info("trace: %s request_id=%s", verdict.header(), ctx.request_id)
        return verdict, None

    # --- reads ----------------------------------------------------------------------

    async def find(self, hospital_number: str) -> StoredPatient | None:
        """The stored patient (aliases followed), or None; a store outage is a PAS 503."""
        with store_errors():
            return await self.store.get(hospital_number)

    async def find_by_nhs_number(self, nhs_number: str) -> list[StoredPatient]:
        with store_errors():
            return await self.store.find_by_nhs_number(nhs_number)

    async def stored(self, hospital_number: str) -> StoredPatient:
        with store_errors():
            stored = await self.store.get(hospital_number)
        if stored is None:
            raise PASError(404, f"no PAS patient with hospital number {hospital_number}")
        return stored

    async def view(self, hospital_number: str, ctx: RequestContext) -> PatientView:
        """The stored patient refreshed with PDS (server.pas.merge rules)."""
        return await self.view_of(await self.stored(hospital_number), ctx)

    async def view_of(self, stored: StoredPatient, ctx: RequestContext) -> PatientView:
        """Every rendering of a PAS patient goes through here or `written_record`: the
        restriction rules are server.pas.restriction's. Without a PDS answer, the last one
        kept for this NHS number applies, and with none the record is withheld as R."""
        pas = patient_resource(self.mappings, stored.record)
        nhs = stored.nhs_number
        if not nhs or self.pds is None:
            return self._offline(stored, pas, "not-traced")
        try:
            pds = (await self.pds.get_patient(nhs, ctx)).patient
        except UpstreamError as err:  # stays: without PDS the stored record is shown, as restricted as known
            status = to_fhir_error(err).status
            refresh: Refresh = "not-found" if status in (404, 410) else "unavailable"
            return self._offline(stored, pas, refresh)
        said = pds_said(security_code(pds), nhs)
        if said is not None and (
            stored.pds_security is None
            or (said.code, said.nhs_number) != (stored.pds_security.code, stored.pds_security.nhs_number)
        ):
            # Kept so a later PDS outage still knows; a store outage here is the read's 503.
            with store_errors():
                await self.store.record_pds_security(stored.hospital_number, said)
            stored = dataclasses.replace(stored, pds_security=said)
        rule = restriction(said.code if said else None, stored.record.get("confidentiality"))
        merged = shown(merge_with_pds(pas, pds), rule)
        merged["id"] = patient_id(stored.hospital_number)
        return PatientView(stored, merged, "refreshed")

    @staticmethod
    def _offline(stored: StoredPatient, pas: dict[str, Any], refresh: Refresh) -> PatientView:
        return PatientView(stored, shown(pas, restriction_of(stored)), refresh)

    def written_record(self, stored: StoredPatient) -> dict[str, Any]:
        """A written record as answered to its writer: as stored (not refreshed, so the
        writer sees what was kept), labelled and withheld by the restriction the store
        knows (server.pas.restriction: unconfirmed by PDS = withheld as R)."""
        record, _ = to_pas(
            self.mappings.record("Patient"),
            shown(patient_resource(self.mappings, stored.record), restriction_of(stored)),
        )
        record["hospitalNumber"] = stored.hospital_number
        return record

    def pas_record(self, view: PatientView) -> tuple[dict[str, Any], list[Problem]]:
        """The view in PAS format; FHIR values with no PAS form are returned as problems."""
        record, problems = to_pas(self.mappings.record("Patient"), view.fhir)
        record["hospitalNumber"] = view.stored.hospital_number
        return record, problems

    async def related(self, hospital_number: str, kind: str, ctx: RequestContext) -> list[RelatedRecord]:
        """NHS (and PAS-recorded) allergies, medications or referrals, in PAS format."""
        resource_type = RELATED[kind]
        stored = await self.stored(hospital_number)
        provider = self.registry.find(resource_type)
        if provider is None:
            raise PASError(501, f"no {resource_type} source is configured in this façade")
        param = next((p for p in ("patient", "subject") if provider.search_param(p)), None)
        if param is None:
            raise PASError(501, f"the {resource_type} source cannot search by patient")
        if provider.understands_pas_ids:
            subject = patient_id(stored.hospital_number)
        elif stored.nhs_number:
            subject = stored.nhs_number
        else:
            return []
        request = SearchRequest(
            resource_type, params=(ParsedParam(param, None, (ReferenceValue("Patient", subject),)),), count=1000
        )
        try:
            result = await provider.search(request, ctx)
        except PROVIDER_FAILURES as err:  # stays: a PAS caller gets the PAS error shape, same status
            raise PASError.from_fhir(as_fhir_error(err)) from None
        mapping = self.mappings.record(resource_type)
        out = []
        for resource in result.matches:
            record, problems = to_pas(mapping, resource)
            source: Literal["NHS", "PAS"] = (
                "PAS" if (resource.get("meta") or {}).get("source") == self.mappings.source_uri else "NHS"
            )
            out.append(RelatedRecord(record, source, problems))
        return out
