"""The CapabilityStatement must not lie: every search parameter it advertises is really
parsed (no "unknown parameter" under Prefer: handling=strict), and every searchInclude /
searchRevInclude it lists works, and the access rules rest.security, the SMART configuration
and the OpenAPI document publish are the ones enforced. Black-box: the tests read the
documents and try each entry."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest

from tests.support.checked_client import CheckedClient
from tests.support.tokens import bearer, token

NHS = "https://fhir.nhs.uk/Id/nhs-number"
CPT_SESSION = {"nhsd-session-urid": "555254242106", "nhsd-organization-uuid": "A83008", "nhsd-session-jobrole": "R8000"}
STRICT = {"Prefer": "handling=strict", **CPT_SESSION}
UNKNOWN = "Unknown or unsupported search parameters"

# The search that finds the emulator's 9000000009 records, per type; each parameter under
# test is added to it (or replaces it, when it is the parameter the base search uses).
BASE = {
    "Patient": [("family", "Smith"), ("given", "Jane"), ("birthdate", "ge2000")],  # a fuzzy search needs all three
    "MedicationRequest": [("patient", "9000000009")],
    "ServiceRequest": [("patient", "9000000009")],
    "AllergyIntolerance": [("patient", "9000000009")],
    "AuditEvent": [("patient", "9000000009")],  # the façade's own trail, when registered
}
# A plausible value per FHIR search type, and for the token parameters whose values are a
# closed set, one of that set (a value the parameter's documentation names).
BY_TYPE = {
    "date": "ge2000-01-01",
    "string": "Smi",
    "reference": "Patient/9000000009",
    "token": "x",
    "number": "1",
    "special": "true",
}
TOKENS = {
    ("Patient", "identifier"): f"{NHS}|9000000009",
    ("Patient", "gender"): "female",
    ("Patient", "email"): "jane.smith@example.com",
    ("Patient", "phone"): "01632960587",
    ("Patient", "general-practitioner"): "Y12345",
    ("Patient", "_fuzzy-match"): "true",
    ("Patient", "_exact-match"): "false",
    ("Patient", "_history"): "true",
    ("MedicationRequest", "status"): "active",
    ("MedicationRequest", "intent"): "order",
    ("MedicationRequest", "identifier"): "https://fhir.nhs.uk/Id/prescription-order-item-number|x",
    ("ServiceRequest", "status"): "active",
    ("ServiceRequest", "intent"): "plan",
    ("ServiceRequest", "priority"): "routine",
    ("ServiceRequest", "identifier"): "urn:example|x",
    ("AllergyIntolerance", "clinical-status"): "active",
    ("AllergyIntolerance", "verification-status"): "confirmed",
    ("AllergyIntolerance", "category"): "food",
    ("AllergyIntolerance", "criticality"): "high",
}
COMMON = {"_count": "1", "_summary": "true", "_elements": "id", "_total": "accurate"}


async def advertised(fhir: CheckedClient) -> list[dict[str, Any]]:
    statement = await fhir.get("/metadata")
    assert statement.status == 200
    return statement.body["rest"][0]["resource"]


def query_for(rtype: str, name: str, value: str) -> str:
    base = [(k, v) for k, v in BASE[rtype] if k != name]
    if rtype == "Patient" and name == "identifier":
        base = []  # an NHS number search is a PDS read: it combines with nothing else
    return urlencode(base + [(name, value)])


async def test_every_advertised_search_parameter_is_parsed(fhir: CheckedClient) -> None:
    refused: list[str] = []
    not_ok: list[str] = []
    for resource in await advertised(fhir):
        rtype = resource["type"]
        assert rtype in BASE, f"{rtype} is advertised but this test has no search for it"
        for param in resource["searchParam"]:
            name = param["name"]
            value = TOKENS.get((rtype, name), BY_TYPE[param["type"]])
            answer = await fhir.get(f"/{rtype}?{query_for(rtype, name, value)}", headers=STRICT)
            if answer.status == 400 and UNKNOWN in answer.issue.get("diagnostics", ""):
                refused.append(f"{rtype}?{name}: {answer.issue['diagnostics']}")
            elif answer.status != 200:
                not_ok.append(f"{rtype}?{name}={value}: {answer.status} {answer.body}")
    assert not refused, "advertised but unknown under strict handling:\n" + "\n".join(refused)
    assert not not_ok, "advertised but not searchable with a plausible value:\n" + "\n".join(not_ok)


async def test_every_common_search_parameter_is_parsed(fhir: CheckedClient) -> None:
    statement = (await fhir.get("/metadata")).body
    common = statement["rest"][0]["searchParam"]
    for resource in statement["rest"][0]["resource"]:
        rtype = resource["type"]
        date = next(p["name"] for p in resource["searchParam"] if p["type"] == "date")
        for param in common:
            value = f"-{date}" if param["name"] == "_sort" else COMMON[param["name"]]
            answer = await fhir.get(f"/{rtype}?{query_for(rtype, param['name'], value)}", headers=STRICT)
            assert answer.status == 200, (rtype, param["name"], answer.body)


async def test_every_search_include_works(fhir: CheckedClient) -> None:
    tried = 0
    for resource in await advertised(fhir):
        rtype = resource["type"]
        for include in resource.get("searchInclude", []):
            answer = await fhir.get(f"/{rtype}?{urlencode(BASE[rtype] + [('_include', include)])}", headers=STRICT)
            assert answer.status == 200, (include, answer.body)
            included = [e for e in answer.body["entry"] if e["search"]["mode"] == "include"]
            assert included, f"_include={include} included nothing"
            tried += 1
    assert tried >= 3


@pytest.mark.parametrize("search", [[("identifier", f"{NHS}|9000000009")], BASE["Patient"]])
async def test_every_search_rev_include_works(fhir: CheckedClient, search: list[tuple[str, str]]) -> None:
    tried = 0
    for resource in await advertised(fhir):
        rtype = resource["type"]
        for rev in resource.get("searchRevInclude", []):
            answer = await fhir.get(f"/{rtype}?{urlencode(search + [('_revinclude', rev)])}", headers=STRICT)
            assert answer.status == 200, (rev, answer.body)
            source = rev.split(":")[0]
            included = [e for e in answer.body["entry"] if e["search"]["mode"] == "include"]
            # Every one finds records for 9000000009 but AuditEvent:agent: no event in the
            # trail has a Patient acting (no patient-facing app calls the façade here).
            assert included or rev == "AuditEvent:agent", rev
            assert all(e["resource"]["resourceType"] == source for e in included), rev
            warnings = [
                i
                for e in answer.body["entry"]
                if e["search"]["mode"] == "outcome"
                for i in e["resource"]["issue"]
                if i["severity"] in ("warning", "error")
            ]
            assert not warnings, (rev, warnings)
            tried += 1
    assert tried == 7  # Patient's, derived from the clinical types' and AuditEvent's reference parameters


# A value each search type cannot match in the emulator's data for 9000000009.
NO_MATCH = {
    "date": "eq1800-01-01",
    "string": "Zzqxv",
    "reference": "Patient/9000000017",
    "token": "no-such-code",
    "number": "-1",
}
NO_MATCH_TOKENS = {
    ("Patient", "identifier"): "urn:example:other|x",
    ("Patient", "general-practitioner"): "Z99999",
    ("Patient", "email"): "nobody@example.com",
    ("Patient", "phone"): "00000000000",
    ("Patient", "gender"): "other",
    # The trail records this test's own requests, 9000000017 included: ids no request names.
    ("AuditEvent", "patient"): "Patient/no-such-patient",
    ("AuditEvent", "entity"): "Patient/no-such",
    ("AuditEvent", "agent"): "no-such-agent",
}


async def test_every_advertised_filter_is_applied(fhir: CheckedClient) -> None:
    """Parsed is not enough: a parameter the server accepted and then ignored would return
    every record. With a value nothing matches, the search must find nothing (or refuse).
    PDS's own control switches (_fuzzy-match, _exact-match, _history) are not filters."""
    ignored: list[str] = []
    for resource in await advertised(fhir):
        rtype = resource["type"]
        for param in resource["searchParam"]:
            name = param["name"]
            if name.startswith("_"):
                continue
            value = NO_MATCH_TOKENS.get((rtype, name), NO_MATCH[param["type"]])
            if name in dict(BASE[rtype]) and rtype != "Patient":
                # The base parameter itself: AND a second, different patient (nothing is for both).
                query = urlencode(BASE[rtype] + [(name, value)])
            else:
                query = query_for(rtype, name, value)
            answer = await fhir.get(f"/{rtype}?{query}", headers=STRICT)
            assert answer.status in (200, 400), (rtype, name, answer.body)
            if answer.status == 200 and answer.body["total"] != 0:
                ignored.append(f"{rtype}?{name}={value}: total {answer.body['total']}")
    assert not ignored, "advertised filters that filtered nothing:\n" + "\n".join(ignored)


# ---- The access rules rest.security, the SMART configuration and OpenAPI publish ---------------


async def test_every_operation_is_as_public_as_the_openapi_document_says(
    fhir: CheckedClient, http: aiohttp.ClientSession
) -> None:
    async with http.get(fhir.base_url + "/openapi.json") as resp:
        doc = await resp.json()
    for path, item in doc["paths"].items():
        if "{" in path or "get" not in item:
            continue
        async with http.get(fhir.base_url + path) as resp:
            status, challenge = resp.status, resp.headers.get("WWW-Authenticate")
        if item["get"]["security"] == []:
            assert status == 200, path
        else:  # no token: 401 and a challenge without an error attribute (RFC 6750 3.1)
            assert (status, challenge) == (401, 'Bearer realm="nhs-fhir-facade"'), path


async def test_a_bad_token_and_a_query_suffixed_scope_are_refused_as_published(fhir: CheckedClient) -> None:
    async with fhir.session.get(fhir.base_url + "/.well-known/smart-configuration") as smart:
        assert (await smart.json())["facade_scope_query_suffixes"] == "refused"
    bad = await fhir.get("/Patient/9000000009", headers={"Authorization": "Bearer not.a.token"})
    assert bad.status == 401 and 'error="invalid_token"' in bad.headers["WWW-Authenticate"]
    suffixed = await fhir.get(
        "/Patient/9000000009", headers=bearer(token("user/Patient.rs?gender=female", roles=("clerk",)))
    )
    assert suffixed.status == 403 and 'error="insufficient_scope"' in suffixed.headers["WWW-Authenticate"]
    plain = await fhir.get("/Patient/9000000009", headers=bearer(token("user/Patient.rs", roles=("clerk",))))
    assert plain.status == 200


async def test_roles_patient_scopes_and_purpose_of_use_are_enforced_as_described(fhir: CheckedClient) -> None:
    security = (await fhir.get("/metadata")).body["rest"][0]["security"]["description"]
    assert re.search(r"^- `clerk`[^:]*: read and search Patient;", security, flags=re.M)
    clerk = bearer(token("user/*.rs", roles=("clerk",)))
    assert (await fhir.get("/MedicationRequest?patient=9000000009", headers=clerk)).status == 403
    # patient/ scopes: confined to the token's patient claim.
    own = bearer(token("patient/Patient.rs", roles=("clerk",), patient="9000000009"))
    assert (await fhir.get("/Patient/9000000009", headers=own)).status == 200
    other = f"/Patient?identifier={NHS}|9000000017"
    assert (await fhir.get(other, headers=own)).status == 403
    # Clinical types: a purpose of use, by claim or by the header the documents name.
    assert "X-Purpose-Of-Use header" in security
    no_purpose = bearer(token("user/*.rs", roles=("clinician",), purpose=None))
    allergies = "/AllergyIntolerance?patient=9000000009"
    assert (await fhir.get(allergies, headers=no_purpose)).status == 403
    assert (await fhir.get(allergies, headers={**no_purpose, "X-Purpose-Of-Use": "TREAT"})).status == 200
