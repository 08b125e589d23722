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

from tests.support.access import CPT_PRACTITIONER
from tests.support.checked_client import CheckedClient
from tests.support.tokens import bearer, token

NHS = "https://fhir.nhs.uk/Id/nhs-number"
STRICT = {"Prefer": "handling=strict", **CPT_PRACTITIONER}
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


PDS_SWITCHES = ("_fuzzy-match", "_exact-match", "_history")


async def test_every_advertised_filter_is_applied(fhir: CheckedClient) -> None:
    """Parsed is not enough: a parameter the server accepted and then ignored would return
    every record. With a value nothing matches, the search must find nothing (or refuse).
    PDS's own control switches (_fuzzy-match, _exact-match, _history) are not filters."""
    ignored: list[str] = []
    for resource in await advertised(fhir):
        rtype = resource["type"]
        for param in resource["searchParam"]:
            name = param["name"]
            if name in PDS_SWITCHES:
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


# ---- Modifiers and chains: /metadata and /openapi.json print the parser's own list -------------

MODIFIER_VALUES = {"missing": "false", "exact": "Smith", "contains": "mit", "text": "x"}
IDENTIFIER_VALUES = {
    ("Patient", "general-practitioner"): "https://fhir.nhs.uk/Id/ods-organization-code|Y12345",
    ("AuditEvent", "agent"): "urn:example|no-such",
    ("AuditEvent", "entity"): "urn:example|no-such",
}
TYPED_VALUES = {"Patient": "9000000009", "Organization": "Y12345"}


def modified_query(rtype: str, name: str, key: str, value: str) -> str:
    base = [(k, v) for k, v in BASE[rtype] if k != name]
    return urlencode(base + [(key, value)])


async def test_every_advertised_modifier_and_chain_is_answered(
    fhir: CheckedClient, http: aiohttp.ClientSession
) -> None:
    """Each modifier and chain the OpenAPI document lists (x-fhir-modifiers, x-fhir-chains),
    which /metadata names in the same words, is accepted and answered (200) under strict
    handling; one the parser refuses says which it supports."""
    async with http.get(fhir.base_url + "/openapi.json") as resp:
        doc = await resp.json()
    documented = {
        r["type"]: {p["name"]: p.get("documentation", "") for p in r["searchParam"]} for r in await advertised(fhir)
    }
    tried: list[str] = []
    failed: list[str] = []
    for rtype in documented:
        for param in doc["paths"][f"/{rtype}"]["get"]["parameters"]:
            if "x-fhir-modifiers" not in param:
                continue
            name = param["name"]
            for suffix in param["x-fhir-modifiers"] + param["x-fhir-chains"]:
                assert suffix in documented[rtype][name], (rtype, name, suffix, "missing from /metadata")
                word = suffix[1:]
                if word in MODIFIER_VALUES:
                    value = MODIFIER_VALUES[word]
                elif word[:1].isupper():
                    value = TYPED_VALUES.get(word, "no-such-id")
                elif word == "identifier":
                    value = IDENTIFIER_VALUES.get((rtype, name), f"{NHS}|9000000009")
                else:  # :not on a token
                    value = TOKENS.get((rtype, name), "x")
                answer = await fhir.get(f"/{rtype}?{modified_query(rtype, name, name + suffix, value)}", headers=STRICT)
                tried.append(f"{rtype}?{name}{suffix}")
                if answer.status != 200:
                    failed.append(f"{rtype}?{name}{suffix}={value}: {answer.status} {answer.issue.get('diagnostics')}")
    assert not failed, "advertised but refused:\n" + "\n".join(failed)
    assert {"Patient?family:exact", "MedicationRequest?patient.identifier", "AllergyIntolerance?category:not"} <= set(
        tried
    )


async def test_an_unadvertised_modifier_is_refused_naming_the_supported_ones(fhir: CheckedClient) -> None:
    answer = await fhir.get("/Patient?" + urlencode(BASE["Patient"][1:] + [("family:contains", "mit")]))
    assert answer.status == 400
    assert "':contains' is not supported on 'family' (supported: :exact)" in answer.issue["diagnostics"]


# ---- conditionalRead, per type, from what the provider declares ---------------------------------


async def test_conditional_read_is_what_each_type_declares(fhir: CheckedClient) -> None:
    checked = {}
    for resource in await advertised(fhir):
        rtype = resource["type"]
        found = await fhir.get(f"/{rtype}?{urlencode(BASE[rtype])}", headers=CPT_PRACTITIONER)
        rid = next(e["resource"]["id"] for e in found.body["entry"] if e["search"]["mode"] == "match")
        read = await fhir.get(f"/{rtype}/{rid}", headers=CPT_PRACTITIONER)
        mode = resource["conditionalRead"]
        checked[rtype] = mode
        by_etag = await fhir.get(f"/{rtype}/{rid}", headers={**CPT_PRACTITIONER, "If-None-Match": read.headers["ETag"]})
        assert by_etag.status == 304, rtype
        if mode == "full-support":
            since = {**CPT_PRACTITIONER, "If-Modified-Since": read.headers["Last-Modified"]}
            assert (await fhir.get(f"/{rtype}/{rid}", headers=since)).status == 304, rtype
            assert any(p["name"] == "_lastUpdated" for p in resource["searchParam"]), rtype
        else:
            # Some of the type's records may carry meta.lastUpdated (the emulator's PDS
            # does; PDS's own examples do not): not every one does, so no more is claimed.
            assert mode == "not-match", rtype
            assert all(p["name"] != "_lastUpdated" for p in resource["searchParam"]), rtype
    assert checked["AllergyIntolerance"] == checked["MedicationRequest"] == "not-match"
    assert checked["AuditEvent"] == "full-support"


# ---- The Patient compartment, for the registered types only -------------------------------------


async def test_every_documented_compartment_search_is_the_type_search(
    fhir: CheckedClient, http: aiohttp.ClientSession
) -> None:
    statement = (await fhir.get("/metadata")).body
    assert statement["rest"][0]["compartment"] == ["http://hl7.org/fhir/CompartmentDefinition/patient"]
    async with http.get(fhir.base_url + "/openapi.json") as resp:
        paths = (await resp.json())["paths"]
    compartment = sorted(p.rsplit("/", 1)[1] for p in paths if p.startswith("/Patient/{patient}/"))
    served = {r["type"] for r in statement["rest"][0]["resource"]}
    assert compartment == sorted({"AllergyIntolerance", "AuditEvent", "MedicationRequest", "ServiceRequest"} & served)
    for rtype in compartment:
        inside = await fhir.get(f"/Patient/9000000009/{rtype}", headers=CPT_PRACTITIONER)
        typed = await fhir.get(f"/{rtype}?patient=9000000009", headers=CPT_PRACTITIONER)
        assert inside.status == typed.status == 200, (rtype, inside.body)
        ids = [e["resource"]["id"] for e in inside.body["entry"] if e["search"]["mode"] == "match"]
        if rtype == "AuditEvent":  # the trail grows with these very requests
            assert ids and inside.body["link"][0]["url"].endswith("/AuditEvent?patient=Patient%2F9000000009")
            continue
        assert ids and ids == [e["resource"]["id"] for e in typed.body["entry"] if e["search"]["mode"] == "match"]
    assert (await fhir.get("/Patient/9000000009/Patient")).status == 404


# ---- System interactions, operations and formats: each one declared is tried -------------------


async def test_every_declared_system_interaction_operation_and_format_works(fhir: CheckedClient) -> None:
    rest = (await fhir.get("/metadata")).body["rest"][0]
    interactions = {i["code"] for i in rest.get("interaction", [])}
    assert interactions <= {"batch"}, interactions  # a new one needs a case here
    if "batch" in interactions:
        bundle = {
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [{"request": {"method": "GET", "url": "Patient/9000000009"}}],
        }
        answer = await fhir.post("/", json=bundle, headers={"Content-Type": "application/fhir+json"})
        assert answer.status == 200 and answer.body["type"] == "batch-response"
        assert answer.body["entry"][0]["response"]["status"].startswith("200")
    operations = [(r["type"], op["name"]) for r in rest["resource"] for op in r.get("operation", [])]
    assert set(operations) <= {("Patient", "everything")}, operations  # likewise
    for rtype, name in operations:
        answer = await fhir.get(f"/{rtype}/9000000009/${name}", headers=CPT_PRACTITIONER)
        assert answer.status == 200 and answer.body["type"] == "searchset", name
        assert any(e["resource"]["resourceType"] == "Patient" for e in answer.body["entry"])
    formats = (await fhir.get("/metadata")).body["format"]
    for fmt in formats:
        xml = "xml" in fmt
        answer = await fhir.request("GET", f"/Patient/9000000009?{urlencode({'_format': fmt})}", xml=xml)
        assert answer.status == 200 and answer.body["id"] == "9000000009", fmt
