"""The Clinical Prescription Tracker emulator: CPT's shapes and rules on synthetic data.

`GET /RequestGroup?nhsNumber=|prescriptionId=` answers a searchset of the Patient
(include) and one summary RequestGroup per prescription issue; `GET /RequestGroup/{id}
[?issueNumber=]` answers the details bundle (RequestGroup, one MedicationRequest per item
with the dispensing-information extension, MedicationDispenses, Patient,
PractitionerRoles) linked by urn:uuid references, as the real API does (examples in
shared/nhs-examples/eps-tracker/). Enforced: X-Request-ID present and a UUID, the three
nhsd session headers, nhsNumber Modulus-11, exactly one of nhsNumber / prescriptionId,
404 with CPT's http-error-codes OperationOutcome for unknown prescriptions or issues,
401 for a malformed bearer token or the synthetic REFUSED_TOKEN.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.nhs.identifiers import NHS_NUMBER_SYSTEM, ODS_SYSTEM
from server.nhs.nhs_number import is_valid_nhs_number
from server.sandbox.outcome import nhs_error
from server.sources.cpt.emulator_data import PRESCRIPTIONS, Issue, Prescription

ERRORS = "https://fhir.nhs.uk/CodeSystem/http-error-codes"
SD = "https://fhir.nhs.uk/StructureDefinition/"
ODS = ODS_SYSTEM
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
SESSION_HEADERS = ("nhsd-session-urid", "nhsd-organization-uuid", "nhsd-session-jobrole")
_NS = uuid.UUID("5d1b6d4e-2f0a-4c37-9a57-3c2f6c1e9b11")
_DISPLAYS = {
    400: ("BAD_REQUEST", "400: The Server was unable to process the request."),
    401: ("UNAUTHORIZED", "401: The Server deemed you unauthorized to make this request."),
    404: ("NOT_FOUND", "404: The Server was unable to find the specified resource."),
}
# Like the NHS sandbox the emulator is open access, but a bearer token it is given must be
# well formed, and this synthetic one is refused, so tests can see the caller's token arrive.
REFUSED_TOKEN = "expired-cis2-token"


def cpt_error(status: int, issue_code: str, diagnostics: str, request: Request) -> Response:
    code, display = _DISPLAYS[status]
    return nhs_error(
        status,
        system=ERRORS,
        code=code,
        display=display,
        issue_code=issue_code,
        diagnostics=diagnostics,
        meta={"lastUpdated": "2026-03-01T00:00:00.000Z"},
        headers=_mirror(request),
    )


def _mirror(request: Request) -> dict[str, str]:
    return {
        "x-request-id": request.headers.get("x-request-id", ""),
        "x-correlation-id": request.headers.get("x-correlation-id", ""),
    }


def _check_headers(request: Request) -> Response | None:
    rid = request.headers.get("x-request-id")
    if not rid or not UUID_RE.match(rid):
        return cpt_error(400, "value", "Missing or invalid required header, x-request-id.", request)
    auth = request.headers.get("authorization")
    if auth is not None and (not re.match(r"^Bearer [\x21-\x7e]+$", auth) or auth == f"Bearer {REFUSED_TOKEN}"):
        return cpt_error(401, "forbidden", "unauthorized", request)
    for name in SESSION_HEADERS:
        if not request.headers.get(name):
            return cpt_error(400, "value", f"Missing required header, {name}.", request)
    return None


def _urn(*parts: object) -> str:
    return f"urn:uuid:{uuid.uuid5(_NS, '/'.join(str(p) for p in parts))}"


def _coding(system: str, code: str, display: str) -> dict[str, Any]:
    return {"system": system, "code": code, "display": display}


def _patient(rx: Prescription, detailed: bool) -> dict[str, Any]:
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": rx.nhs_number}],
        "name": [{"prefix": [rx.prefix], "given": [rx.given], "family": rx.family}],
    }
    if detailed:
        patient["id"] = _urn("patient", rx.nhs_number)[9:]
    return patient


def _group_extensions(rx: Prescription, issue: Issue) -> list[dict[str, Any]]:
    exts: list[dict[str, Any]] = [
        {
            "url": SD + "Extension-EPS-PrescriptionStatusHistory",
            "extension": [
                {
                    "url": "status",
                    "valueCoding": _coding(
                        "https://fhir.nhs.uk/CodeSystem/EPS-task-business-status",
                        issue.status_code,
                        issue.status_display,
                    ),
                }
            ],
        }
    ]
    if issue.number is not None:
        exts.append(
            {
                "url": SD + "Extension-EPS-RepeatInformation",
                "extension": [
                    {"url": "numberOfRepeatsIssued", "valueInteger": issue.number},
                    {"url": "numberOfRepeatsAllowed", "valueInteger": rx.repeats_allowed or issue.number},
                ],
            }
        )
    exts.append(
        {
            "url": SD + "Extension-PendingCancellation",
            "extension": [{"url": "prescriptionPendingCancellation", "valueBoolean": False}],
        }
    )
    return exts


def _summary_group(rx: Prescription, issue: Issue, patient_urn: str) -> dict[str, Any]:
    return {
        "resourceType": "RequestGroup",
        "identifier": [{"system": "https://fhir.nhs.uk/Id/prescription-order-number", "value": rx.id}],
        "subject": {"reference": patient_urn},
        "status": "active",
        "intent": rx.intent,
        "authoredOn": rx.authored_on,
        "extension": _group_extensions(rx, issue),
    }


def search_bundle(found: list[tuple[Prescription, Issue]]) -> dict[str, Any]:
    entries: list[dict[str, Any]] = []
    if found:
        rx0 = found[0][0]
        patient_urn = _urn("search-patient", rx0.nhs_number)
        entries.append({"fullUrl": patient_urn, "search": {"mode": "include"}, "resource": _patient(rx0, False)})
        for rx, issue in found:
            entries.append(
                {
                    "fullUrl": _urn("search-group", rx.id, issue.number),
                    "search": {"mode": "match"},
                    "resource": _summary_group(rx, issue, patient_urn),
                }
            )
    return {"resourceType": "Bundle", "type": "searchset", "total": len(found), "entry": entries}


def detail_bundle(rx: Prescription, issue: Issue) -> dict[str, Any]:
    patient = _patient(rx, True)
    patient_urn = f"urn:uuid:{patient['id']}"
    prescriber = {
        "resourceType": "PractitionerRole",
        "id": _urn("role", rx.prescriber_ods)[9:],
        "organization": {"identifier": {"system": ODS, "value": rx.prescriber_ods}},
    }
    dispenser = {
        "resourceType": "PractitionerRole",
        "id": _urn("role", rx.dispenser_ods)[9:],
        "organization": {"identifier": {"system": ODS, "value": rx.dispenser_ods}},
    }
    resources: list[dict[str, Any]] = [patient, prescriber]
    requests, dispenses = [], []
    for item, state in zip(rx.items, issue.items):
        mr_id = _urn("item", rx.id, issue.number, item.number)[9:]
        requests.append(
            {
                "resourceType": "MedicationRequest",
                "id": mr_id,
                "identifier": [
                    {"system": "https://fhir.nhs.uk/Id/prescription-order-item-number", "value": item.number}
                ],
                "subject": {"reference": patient_urn},
                "status": state.status,
                "intent": rx.intent,
                "requester": {"reference": f"urn:uuid:{prescriber['id']}"},
                # CPT writes Reference.identifier as a list here (not valid R4; the façade repairs it).
                "performer": {"identifier": [{"system": ODS, "value": rx.dispenser_ods}]},
                "groupIdentifier": {"system": "https://fhir.nhs.uk/Id/prescription-order-number", "value": rx.id},
                "medicationCodeableConcept": {"text": item.medication},
                "courseOfTherapyType": {
                    "coding": [
                        _coding("http://terminology.hl7.org/CodeSystem/medicationrequest-course-of-therapy", *rx.course)
                    ]
                },
                "dispenseRequest": {
                    "quantity": {"value": item.quantity, "unit": item.unit},
                    "performer": {"identifier": [{"system": ODS, "value": rx.dispenser_ods}]},
                },
                "dosageInstruction": [{"text": item.dosage}],
                "substitution": {"allowedBoolean": False},
                "extension": [
                    {
                        "url": SD + "Extension-EPS-DispensingInformation",
                        "extension": [
                            {
                                "url": "dispenseStatus",
                                "valueCoding": _coding(
                                    "https://fhir.nhs.uk/CodeSystem/medicationdispense-type",
                                    state.dispense_code,
                                    state.dispense_display,
                                ),
                            }
                        ],
                    },
                    {
                        "url": SD + "Extension-PendingCancellation",
                        "extension": [{"url": "lineItemPendingCancellation", "valueBoolean": False}],
                    },
                ],
            }
        )
        if state.dispense_code in ("0001", "0003"):
            dispenses.append(
                {
                    "resourceType": "MedicationDispense",
                    "id": _urn("dispense", rx.id, issue.number, item.number)[9:],
                    "identifier": [
                        {"system": "https://fhir.nhs.uk/Id/prescription-order-item-number", "value": item.number}
                    ],
                    "subject": {"reference": patient_urn},
                    "status": "in-progress",
                    "performer": [{"actor": {"reference": f"urn:uuid:{dispenser['id']}"}}],
                    "type": {
                        "coding": [
                            _coding(
                                "https://fhir.nhs.uk/CodeSystem/medicationdispense-type",
                                state.dispense_code,
                                state.dispense_display,
                            )
                        ]
                    },
                    "authorizingPrescription": [{"reference": f"urn:uuid:{mr_id}"}],
                    "medicationCodeableConcept": {"text": item.medication},
                }
            )
    group = _summary_group(rx, issue, patient_urn)
    group["id"] = _urn("group", rx.id, issue.number)[9:]
    group["author"] = {"identifier": {"system": ODS, "value": rx.prescriber_ods}}
    group["action"] = [
        {
            "title": "Prescription Line Items(Medications)",
            "action": [{"resource": {"reference": f"urn:uuid:{r['id']}"}} for r in requests],
        }
    ]
    resources += requests + ([dispenser] if dispenses else []) + dispenses
    entries = [{"fullUrl": f"urn:uuid:{r['id']}", "search": {"mode": "include"}, "resource": r} for r in resources]
    entries.append({"fullUrl": f"urn:uuid:{group['id']}", "search": {"mode": "match"}, "resource": group})
    return {"resourceType": "Bundle", "type": "searchset", "total": 1, "entry": entries}


def _current(rx: Prescription) -> Issue:
    """Without issueNumber CPT answers the latest issue that is not a future one."""
    return rx.issues[-1]


async def search(request: Request) -> Response:
    bad = _check_headers(request)
    if bad:
        return bad
    nhs = request.query_params.get("nhsNumber")
    prescription_id = request.query_params.get("prescriptionId")
    if not nhs and not prescription_id:
        return cpt_error(
            400,
            "value",
            "Missing required query string parameter; either prescriptionId or nhsNumber must be included.",
            request,
        )
    if nhs and prescription_id:
        return cpt_error(
            400,
            "value",
            "Invalid query string parameters; only prescriptionId or nhsNumber must be provided, not both.",
            request,
        )
    if nhs is not None and not is_valid_nhs_number(nhs):
        return cpt_error(400, "value", "Invalid nhsNumber.", request)
    found = [
        (rx, issue)
        for rx in PRESCRIPTIONS
        for issue in rx.issues
        if (nhs and rx.nhs_number == nhs) or (prescription_id and rx.id == prescription_id)
    ]
    if not found:
        return cpt_error(404, "not-found", "Prescription not found", request)
    return JSONResponse(search_bundle(found), headers=_mirror(request), media_type="application/fhir+json")


async def details(request: Request) -> Response:
    bad = _check_headers(request)
    if bad:
        return bad
    prescription_id = request.path_params["prescription_id"]
    rx = next((p for p in PRESCRIPTIONS if p.id == prescription_id), None)
    if rx is None:
        return cpt_error(404, "not-found", "not found", request)
    wanted = request.query_params.get("issueNumber")
    issue: Issue | None
    if wanted is None:
        issue = _current(rx)
    else:
        issue = next((i for i in rx.issues if str(i.number or 1) == wanted), None)
        if issue is None:
            return cpt_error(404, "not-found", "not found", request)
    return JSONResponse(detail_bundle(rx, issue), headers=_mirror(request), media_type="application/fhir+json")


ROUTES = [
    Route("/RequestGroup", search, methods=["GET"]),
    Route("/RequestGroup/{prescription_id}", details, methods=["GET"]),
]
