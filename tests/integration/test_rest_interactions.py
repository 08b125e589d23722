"""Issue 10 over real sockets: search copies against reads (3), fhirVersion in Accept (6),
unsupported interactions at known endpoints (7), `_id`, `:subject` includes and the Patient
compartment. The rest of issue 10 (5, 8) is in test_capability_honesty.py."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from tests.support.access import AUDITOR, CLINICIAN, CPT, JANE, audit_events, auth, by_request_id, included, matches
from tests.support.checked_client import CheckedClient
from tests.support.tokens import token

NHS = "https://fhir.nhs.uk/Id/nhs-number"
PHARMACY = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NominatedPharmacy"
JANE_SEARCH = urlencode([("family", "Smith"), ("given", "Jane"), ("birthdate", "ge2000")])


# ---- 3: a search copy that holds less than the read is marked, and never revalidates as it ----


async def test_a_pds_search_copy_is_subsetted_and_does_not_revalidate_as_the_read(fhir: CheckedClient) -> None:
    read = await fhir.get(f"/Patient/{JANE}")
    [copy] = [r for r in matches((await fhir.get(f"/Patient?{JANE_SEARCH}")).body) if r["id"] == JANE]
    assert PHARMACY in {e["url"] for e in read.body["extension"]}
    assert PHARMACY not in {e["url"] for e in copy.get("extension", [])}  # the content differs
    assert {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}.items() <= (
        copy["meta"]["tag"][-1].items()
    )
    version = copy["meta"]["versionId"]
    assert read.headers["ETag"] == f'W/"{read.body["meta"]["versionId"]}"' != f'W/"{version}"'
    again = await fhir.get(f"/Patient/{JANE}", headers={"If-None-Match": f'W/"{version}"'})
    assert again.status == 200 and PHARMACY in {e["url"] for e in again.body["extension"]}
    # The read's own version still revalidates; the copy's is no version held (vread 404).
    assert (await fhir.get(f"/Patient/{JANE}", headers={"If-None-Match": read.headers["ETag"]})).status == 304
    assert (await fhir.get(f"/Patient/{JANE}/_history/{version}")).status == 404


async def test_a_complete_search_copy_keeps_the_reads_version(fhir: CheckedClient) -> None:
    [first, *_] = matches((await fhir.get("/AllergyIntolerance?patient=9000000009")).body)
    assert "tag" not in first["meta"]
    read = await fhir.get(f"/AllergyIntolerance/{first['id']}")
    assert read.headers["ETag"] == f'W/"{first["meta"]["versionId"]}"'


# ---- 6: fhirVersion other than R4 is 406 ----------------------------------------------------------


@pytest.mark.parametrize(
    "accept, status",
    [
        ("application/fhir+json; fhirVersion=3.0", 406),
        ("application/fhir+json; fhirVersion=5.0", 406),
        ("application/fhir+json; fhirVersion=4.0", 200),
        ("application/fhir+json; fhirVersion=4.0.1", 200),
        ("application/fhir+json; fhirVersion=3.0, application/fhir+json; fhirVersion=4.0", 200),
    ],
)
async def test_fhir_version_in_accept(fhir: CheckedClient, accept: str, status: int) -> None:
    answer = await fhir.get(f"/Patient/{JANE}", headers={"Accept": accept})
    assert answer.status == status
    if status == 406:
        assert answer.issue["code"] == "not-supported"


async def test_fhir_version_in_format_parameter(fhir: CheckedClient) -> None:
    refused = await fhir.get(f"/Patient/{JANE}?" + urlencode({"_format": "application/fhir+json;fhirVersion=3.0"}))
    assert refused.status == 406 and "R4" in refused.issue["diagnostics"]
    assert (await fhir.get(f"/Patient/{JANE}?" + urlencode({"_format": "json;fhirVersion=4.0"}))).status == 200


# ---- 7: a known endpoint with an interaction not served is 501, never 404 ------------------------


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/?_type=Patient"),
        ("GET", "/_history"),
        ("GET", "/$meta"),
        ("GET", f"/Patient/{JANE}/_history"),
        ("GET", "/Patient/_history"),
        ("GET", "/Patient/$foo"),
        ("POST", "/Patient/$match"),
        ("GET", f"/Patient/{JANE}/$lastn"),
        ("POST", "/MedicationRequest/x/$foo"),
    ],
)
async def test_an_interaction_not_served_is_501_not_supported(fhir: CheckedClient, method: str, path: str) -> None:
    answer = await fhir.request(method, path)
    assert answer.status == 501, answer.body
    assert answer.issue["code"] == "not-supported"
    assert "not supported" in answer.issue["diagnostics"]


async def test_an_operation_on_an_unknown_type_is_still_404(fhir: CheckedClient) -> None:
    assert (await fhir.get("/Nothing/$foo")).status == 404
    assert (await fhir.get("/Nothing/1/_history")).status == 404


# ---- _id --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rtype", ["Patient", "MedicationRequest", "ServiceRequest", "AllergyIntolerance"])
async def test_id_finds_that_resource_or_none(fhir: CheckedClient, rtype: str) -> None:
    found = await fhir.get(
        f"/{rtype}?patient=9000000009" if rtype != "Patient" else f"/Patient?{JANE_SEARCH}", headers=CPT
    )
    wanted = matches(found.body)[0]["id"]
    by_id = await fhir.get(f"/{rtype}?_id={wanted}", headers=CPT)
    assert by_id.status == 200, by_id.body
    assert [r["id"] for r in matches(by_id.body)] == [wanted] and by_id.body["total"] == 1
    none = await fhir.get(f"/{rtype}?_id=no-such-id", headers=CPT)
    assert none.status == 200 and none.body["total"] == 0
    # With a patient: the source's search, filtered by the one matcher.
    if rtype != "Patient":
        both = await fhir.get(f"/{rtype}?patient=9000000009&_id={wanted},other", headers=CPT)
        assert [r["id"] for r in matches(both.body)] == [wanted]


async def test_last_updated_searches_the_audit_trail(fhir: CheckedClient) -> None:
    assert (await fhir.get(f"/Patient/{JANE}")).status == 200  # one event at least
    assert (await fhir.get("/AuditEvent?_lastUpdated=ge2000-01-01&_count=1", headers=auth(AUDITOR))).body["total"] > 0
    assert (await fhir.get("/AuditEvent?_lastUpdated=lt2000-01-01", headers=auth(AUDITOR))).body["total"] == 0


# ---- _include=...:subject -------------------------------------------------------------------------


@pytest.mark.parametrize("include", ["MedicationRequest:subject", "ServiceRequest:subject"])
async def test_subject_includes_the_patient(fhir: CheckedClient, include: str) -> None:
    rtype = include.split(":")[0]
    answer = await fhir.get(f"/{rtype}?patient=9000000009&_include={include}", headers=CPT)
    assert answer.status == 200
    assert [r["id"] for r in included(answer.body)] == [JANE]
    assert f"_include={include.replace(':', '%3A')}" in answer.body["link"][0]["url"]


# ---- The Patient compartment: the type search, same Guard, same audit ----------------------------


async def test_a_compartment_search_is_the_type_search(fhir: CheckedClient) -> None:
    inside = await fhir.get(f"/Patient/{JANE}/MedicationRequest?status=active", headers=CPT)
    typed = await fhir.get(f"/MedicationRequest?patient={JANE}&status=active", headers=CPT)
    assert inside.status == typed.status == 200
    assert [r["id"] for r in matches(inside.body)] == [r["id"] for r in matches(typed.body)]
    assert inside.body["link"][0]["url"] == typed.body["link"][0]["url"]
    posted = await fhir.post(
        f"/Patient/{JANE}/MedicationRequest/_search",
        data="status=active",
        headers={**CPT, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert [r["id"] for r in matches(posted.body)] == [r["id"] for r in matches(typed.body)]
    # Another patient given in the query is AND-ed: nobody is both.
    assert (await fhir.get(f"/Patient/{JANE}/MedicationRequest?patient=9000000017", headers=CPT)).body["total"] == 0


async def test_a_compartment_search_is_guarded_and_audited_as_the_type_search(fhir: CheckedClient) -> None:
    other = "9000000017"
    app = auth(token("patient/*.rs", roles=["clinician"], patient=JANE))
    assert (await fhir.get(f"/Patient/{other}/AllergyIntolerance", headers=app)).status == 403
    assert (await fhir.get(f"/AllergyIntolerance?patient={other}", headers=app)).status == 403
    assert (await fhir.get(f"/Patient/{JANE}/AllergyIntolerance", headers=app)).status == 200
    clerk = auth(token("user/*.rs", roles=["clerk"]))
    assert (await fhir.get(f"/Patient/{JANE}/AllergyIntolerance", headers=clerk)).status == 403
    answer = await fhir.get(f"/Patient/{JANE}/AllergyIntolerance", headers=auth(CLINICIAN))
    [event] = by_request_id(await audit_events(fhir), answer.headers["X-Request-ID"])
    assert event["subtype"][0]["code"] == "search-type"
    assert f"Patient/{JANE}" in [e.get("what", {}).get("reference") for e in event["entity"]]


async def test_a_compartment_outside_what_is_served_is_404(fhir: CheckedClient) -> None:
    assert (await fhir.get(f"/Patient/{JANE}/Patient")).status == 404
    assert (await fhir.get(f"/Patient/{JANE}/Observation")).status == 404
    assert (await fhir.get("/Practitioner/1/MedicationRequest")).status == 404
    assert (await fhir.get("/Patient/not%20an%20id/MedicationRequest")).status == 400


async def test_a_compartment_page_is_a_page_of_that_compartment_only(fhir: CheckedClient) -> None:
    """A page key from Patient/A's compartment does not page through Patient/B's path (the
    audit record would name B for A's records)."""
    first = await fhir.get(f"/Patient/{JANE}/MedicationRequest?_count=1", headers=CPT)
    following = next(link["url"] for link in first.body["link"] if link["relation"] == "next")
    key = parse_qs(urlsplit(following).query)["_getpages"][0]
    page = f"MedicationRequest?{urlencode({'_getpages': key, '_offset': 1, '_count': 1})}"
    assert (await fhir.get(f"/Patient/{JANE}/{page}", headers=CPT)).status == 200
    assert (await fhir.get(f"/{page}", headers=CPT)).status == 200  # the page link as issued
    assert (await fhir.get(f"/Patient/9000000017/{page}", headers=CPT)).status == 410
