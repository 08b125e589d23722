"""The PDS FHIR R4 emulator: enforces what PDS enforces, on synthetic data.

Headers (X-Request-ID mandatory and a UUID), Modulus-11, superseded and invalidated
records, restricted-patient rules in search, search minimums, wildcards, fuzzy
(soundex) matching, _max-results and TOO_MANY_MATCHES (HTTP 200 with an
OperationOutcome, as the live API does). Reference: shared/reference/nhs-apis.md s.1.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.nhs.nhs_number import is_valid_nhs_number
from server.sources.pds.emulator_data import INVALIDATED, PATIENTS, SUPERSEDED

SPINE = "https://fhir.nhs.uk/R4/CodeSystem/Spine-ErrorOrWarningCode"
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
SEARCH_PARAMS = {
    "family",
    "given",
    "gender",
    "birthdate",
    "death-date",
    "address-postalcode",
    "address-postcode",
    "general-practitioner",
    "email",
    "phone",
    "_fuzzy-match",
    "_exact-match",
    "_history",
    "_max-results",
}
_DISPLAYS = {
    "INVALID_RESOURCE_ID": "Resource Id is invalid",
    "RESOURCE_NOT_FOUND": "Resource not found",
    "INVALIDATED_RESOURCE": "Resource that has been marked invalid was requested",
    "MISSING_VALUE": "Required value is missing",
    "INVALID_VALUE": "Provided value is invalid",
    "INVALID_SEARCH_DATA": "Search data is invalid",
    "UNSUPPORTED_SERVICE": "Unsupported Service",
    "ADDITIONAL_PROPERTIES": "Additional properties",
    "TOO_MANY_MATCHES": "Too Many Matches",
}


def spine_error(
    status: int,
    code: str,
    issue_code: str,
    diagnostics: str | None = None,
    severity: str = "error",
    headers: dict[str, str] | None = None,
) -> Response:
    issue: dict[str, Any] = {
        "severity": severity,
        "code": issue_code,
        "details": {"coding": [{"system": SPINE, "version": "1", "code": code, "display": _DISPLAYS.get(code, code)}]},
    }
    if diagnostics:
        issue["diagnostics"] = diagnostics
    return JSONResponse(
        {"resourceType": "OperationOutcome", "issue": [issue]},
        status_code=status,
        headers=headers,
        media_type="application/fhir+json",
    )


def _mirror(request: Request) -> dict[str, str]:
    out = {"X-Request-ID": request.headers.get("x-request-id", "")}
    if "x-correlation-id" in request.headers:
        out["X-Correlation-ID"] = request.headers["x-correlation-id"]
    return out


def _check_headers(request: Request) -> Response | None:
    rid = request.headers.get("x-request-id")
    if not rid:
        return spine_error(
            400,
            "MISSING_VALUE",
            "required",
            "Invalid request with error - X-Request-ID header must be supplied to access this resource",
        )
    if not UUID_RE.match(rid):
        return spine_error(400, "INVALID_VALUE", "value", f"Invalid value - '{rid}' in header 'X-Request-ID'")
    return None


async def get_patient(request: Request) -> Response:
    bad = _check_headers(request)
    if bad:
        return bad
    nhs = request.path_params["id"]
    if not is_valid_nhs_number(nhs):
        return spine_error(400, "INVALID_RESOURCE_ID", "value", headers=_mirror(request))
    if nhs in INVALIDATED:
        return spine_error(404, "INVALIDATED_RESOURCE", "not-found", severity="information", headers=_mirror(request))
    patient = PATIENTS.get(SUPERSEDED.get(nhs, nhs))
    if patient is None:
        return spine_error(404, "RESOURCE_NOT_FOUND", "not-found", severity="information", headers=_mirror(request))
    headers = {**_mirror(request), "ETag": f'W/"{patient["meta"]["versionId"]}"'}
    return JSONResponse(patient, headers=headers, media_type="application/fhir+json")


def soundex(name: str) -> str:
    codes = {
        **dict.fromkeys("bfpv", "1"),
        **dict.fromkeys("cgjkqsxz", "2"),
        **dict.fromkeys("dt", "3"),
        "l": "4",
        **dict.fromkeys("mn", "5"),
        "r": "6",
    }
    letters = [c for c in name.lower() if c.isalpha()]
    if not letters:
        return ""
    out, last = letters[0].upper(), codes.get(letters[0], "")
    for c in letters[1:]:
        code = codes.get(c, "")
        if code and code != last:
            out += code
        if c not in "hw":
            last = code
    return (out + "000")[:4]


def _text_match(pattern: str, value: str, fuzzy: bool) -> bool:
    pattern, value = pattern.lower().replace(" ", ""), value.lower().replace(" ", "")
    if fuzzy:
        return soundex(pattern) == soundex(value) and bool(value)
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    return pattern == value


def fuzzy_score(p: dict[str, Any], q: dict[str, list[str]]) -> float:
    """A fuzzy match's score: 1.0 when every name searched for matches as spelt, 0.04 less
    for each one matched only by sound (PDS scores spelling variants below 1)."""
    names = p.get("name") or []
    spelt = {
        "family": {n.get("family", "").lower() for n in names},
        "given": {g.lower() for n in names for g in n.get("given", [])},
    }
    variants = sum(1 for key in ("family", "given") for v in q.get(key, []) if v.lower() not in spelt[key])
    return round(1.0 - 0.04 * variants, 2)


def _date_ok(spec: str, value: str | None) -> bool:
    if value is None:
        return False
    prefix, date = (spec[:2], spec[2:]) if spec[:2] in ("eq", "ge", "le") else ("eq", spec)
    value = value[:10]
    return {"eq": value == date, "ge": value >= date, "le": value <= date}[prefix]


def _matches(p: dict[str, Any], q: dict[str, list[str]], fuzzy: bool) -> bool:
    names = p.get("name") or []
    families = [n.get("family", "") for n in names]
    givens = [g for n in names for g in n.get("given", [])]
    for fam in q.get("family", []):
        if not any(_text_match(fam, f, fuzzy) for f in families):
            return False
    for given in q.get("given", []):
        if not any(_text_match(given, g, fuzzy) for g in givens):
            return False
    if "gender" in q and p.get("gender") != q["gender"][0]:
        return False
    if any(not _date_ok(d, p.get("birthDate")) for d in q.get("birthdate", [])):
        return False
    if any(not _date_ok(d, (p.get("deceasedDateTime") or None)) for d in q.get("death-date", [])):
        return False
    postcodes = [a.get("postalCode", "") for a in p.get("address") or []]
    for pc in q.get("address-postalcode", []) + q.get("address-postcode", []):
        if not any(_text_match(pc, v, False) for v in postcodes):
            return False
    gps = [g.get("identifier", {}).get("value") for g in p.get("generalPractitioner") or []]
    if "general-practitioner" in q and q["general-practitioner"][0] not in gps:
        return False
    for system in ("email", "phone"):
        values = [t.get("value") for t in p.get("telecom") or [] if t.get("system") == system]
        if system in q and q[system][0] not in values:
            return False
    return True


def _search_view(patient: dict[str, Any]) -> dict[str, Any]:
    """PDS search results are reduced, and restricted patients lose location data."""
    view = copy.deepcopy(patient)
    view.pop("extension", None)
    if view["meta"]["security"][0]["code"] in ("R", "V"):
        for key in ("address", "telecom", "contact", "generalPractitioner"):
            view.pop(key, None)
    return view


async def search_patients(request: Request) -> Response:
    bad = _check_headers(request)
    if bad:
        return bad
    q: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        q.setdefault(key, []).append(value)
    if not q:
        return spine_error(400, "UNSUPPORTED_SERVICE", "not-supported", headers=_mirror(request))
    extra = sorted(set(q) - SEARCH_PARAMS)
    if extra:
        return spine_error(
            400,
            "ADDITIONAL_PROPERTIES",
            "structure",
            f"Invalid parameters: {', '.join(extra)}",
            headers=_mirror(request),
        )
    if "address-postcode" in q and "address-postalcode" in q:
        return spine_error(400, "INVALID_SEARCH_DATA", "invalid", headers=_mirror(request))
    fuzzy = q.get("_fuzzy-match", ["false"])[0] == "true"
    for name in ("family", "given", "address-postalcode"):
        for v in q.get(name, []):
            if "*" in v[:2] or (fuzzy and "*" in v):
                return spine_error(
                    400, "INVALID_SEARCH_DATA", "invalid", f"Invalid wildcard in '{name}'", headers=_mirror(request)
                )
    for d in q.get("birthdate", []) + q.get("death-date", []):
        if not re.match(r"^(eq|ge|le)?\d{4}-\d{2}-\d{2}$", d):
            return spine_error(400, "INVALID_SEARCH_DATA", "invalid", f"Invalid date '{d}'", headers=_mirror(request))
    if not fuzzy and not ({"family", "birthdate"} <= set(q)):
        # As live PDS answers (shared/nhs-examples/captured/pds_search_missing_params.json).
        return spine_error(
            400,
            "MISSING_VALUE",
            "required",
            "Not enough search parameters were provided for a valid search, you must supply "
            "family and birthdate as a minimum and only use recognised parameters from the api "
            "catalogue.",
            headers=_mirror(request),
        )
    try:
        max_results = int(q.get("_max-results", ["50"])[0])
    except ValueError:
        max_results = 0
    if not 1 <= max_results <= 50:
        return spine_error(
            400, "INVALID_VALUE", "value", "Invalid value in parameter '_max-results'", headers=_mirror(request)
        )
    location_query = bool({"address-postalcode", "address-postcode", "general-practitioner"} & set(q))
    hits = []
    for patient in PATIENTS.values():
        security = patient["meta"]["security"][0]["code"]
        if security == "V" or (security == "R" and location_query):
            continue
        if _matches(patient, q, fuzzy):
            hits.append(patient)
    if len(hits) > max_results:
        return spine_error(
            200, "TOO_MANY_MATCHES", "multiple-matches", severity="information", headers=_mirror(request)
        )
    exact = not fuzzy and not any(v.endswith("*") for k in ("family", "given") for v in q.get(k, []))
    base = str(request.base_url).rstrip("/") + request.scope.get("root_path", "")
    entries = [
        {
            "fullUrl": f"{base}/Patient/{p['id']}",
            "search": {"score": fuzzy_score(p, q) if fuzzy else 1 if exact else 0.8},
            "resource": _search_view(p),
        }
        for p in hits
    ]
    body = {
        "resourceType": "Bundle",
        "type": "searchset",
        "timestamp": "2026-11-26T00:00:00+00:00",
        "total": len(entries),
        "entry": entries,
    }
    return JSONResponse(body, headers=_mirror(request), media_type="application/fhir+json")


ROUTES = [
    Route("/Patient/{id}", get_patient, methods=["GET"]),
    Route("/Patient", search_patients, methods=["GET"]),
]
