"""Access control over real sockets: authentication, scopes, roles, purpose, relationship,
patient compartments (includes, revincludes, page links), the PAS endpoints, and the
audit trail that records every access (issue 8, "Done when").

Tokens are real JWTs of the test issuer (tests/support/tokens.py), verified by the
façade; the NHS APIs are the emulator, counted through its /_control API.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import os
import subprocess
import sys
import time
from typing import Any

import aiohttp
import orjson
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from tests.support.access import (
    AUDITOR,
    CLINICIAN,
    CPT,
    JANE,
    JANE_APP,
    JAYNE,
    PAS_SYSTEM,
    audit_events,
    auth,
    by_request_id,
    included,
    matches,
    warnings,
)
from tests.support.checked_client import CheckedClient
from tests.support.emulator_control import gpconnect_jwt_claims, upstream_counts, upstream_total
from tests.support.servers import Emulator, running_facade
from tests.support.tokens import TEST_AUDIENCE, signing_key, token

HL7 = (
    "MSH|^~\\&|PAS|RX1|FACADE|NHS|20260101120000||ADT^A04^ADT_A01|{control}|P|2.4\rEVN|A04|20260101120000\r"
    "PID|1||{hn}^^^RX1^MR||SMITH^JANE||20101022|F\r"
)

CLERK = token("user/*.rs", roles=["clerk"])


# ---- authentication -------------------------------------------------------------------


async def test_no_token_is_401_with_a_bearer_challenge_and_is_audited(fhir: CheckedClient) -> None:
    answer = await fhir.get(f"/Patient/{JANE}", anonymous=True)
    assert answer.status == 401 and answer.issue["code"] == "login"
    assert answer.headers["WWW-Authenticate"] == 'Bearer realm="nhs-fhir-facade"'
    assert answer.headers["Cache-Control"] == "no-store"
    [event] = by_request_id(await audit_events(fhir), answer.headers["X-Request-ID"])
    assert event["outcome"] == "4" and event["agent"][0]["who"] == {"display": "unauthenticated caller"}
    assert "no bearer token" in event["outcomeDesc"]


def _forged(claims: dict[str, Any], header: dict[str, Any], key: Any) -> str:
    return jwt.encode(header, claims, key)


def _claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": "urn:nhs-fhir-facade:dev-issuer",
        "sub": "mallory",
        "aud": TEST_AUDIENCE,
        "iat": now,
        "exp": now + 300,
        "scope": "user/*.rs",
        "roles": ["clinician"],
        "purpose_of_use": "TREAT",
        **over,
    }


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _none_alg(claims: dict[str, Any]) -> str:
    return f"{_b64(orjson.dumps({'alg': 'none', 'typ': 'JWT'}))}.{_b64(orjson.dumps(claims))}."


def _hs256_with_public_key(claims: dict[str, Any]) -> str:
    """The HS/RS confusion: an HMAC whose secret is the issuer's public key PEM (libraries
    that pick the algorithm from the header verify it with the RSA key's bytes)."""
    signing_input = f"{_b64(orjson.dumps({'alg': 'HS256', 'kid': 'dev-issuer-1'}))}.{_b64(orjson.dumps(claims))}"
    mac = hmac.new(signing_key().as_pem(private=False), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


BAD_TOKENS = {
    "garbage": lambda: "not-a-jwt",
    "expired": lambda: token(lifetime=-3600),
    "not yet valid": lambda: token(now=time.time() + 3600),
    "wrong audience": lambda: token(audience="https://another.example"),
    "alg none": lambda: _none_alg(_claims()),
    "another key": lambda: _forged(
        _claims(),
        {"alg": "RS256", "kid": "dev-issuer-1"},
        RSAKey.generate_key(2048, parameters={"kid": "dev-issuer-1"}),
    ),
    "HS256 with the public key": lambda: _hs256_with_public_key(_claims()),
    "unknown issuer": lambda: _forged(
        _claims(iss="https://idp.example"), {"alg": "RS256", "kid": "dev-issuer-1"}, signing_key()
    ),
}


@pytest.mark.parametrize("kind", sorted(BAD_TOKENS))
async def test_a_bad_token_is_401_invalid_token_saying_nothing_more(
    fhir: CheckedClient, emulator: Emulator, http: aiohttp.ClientSession, kind: str
) -> None:
    before = await upstream_total(http, emulator)
    answer = await fhir.get(f"/Patient/{JANE}", headers=auth(BAD_TOKENS[kind]()))
    assert answer.status == 401, kind
    assert answer.headers["WWW-Authenticate"] == 'Bearer realm="nhs-fhir-facade", error="invalid_token"'
    assert answer.issue["diagnostics"] == "The access token is not valid"
    assert await upstream_total(http, emulator) == before  # NHS never asked
    [event] = by_request_id(await audit_events(fhir), answer.headers["X-Request-ID"])
    assert event["outcome"] == "4" and "invalid token" in event["outcomeDesc"]


async def test_discovery_documents_need_no_token(fhir: CheckedClient) -> None:
    assert (await fhir.get("/metadata", anonymous=True)).status == 200


# ---- scopes, roles, purpose -----------------------------------------------------------


async def test_a_scope_for_another_type_is_403_insufficient_scope(
    fhir: CheckedClient, emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    narrow = token("user/Patient.rs", roles=["clinician"])
    answer = await fhir.get(f"/MedicationRequest?patient={JANE}", headers=auth(narrow, **CPT))
    assert answer.status == 403 and answer.issue["code"] == "forbidden"
    assert 'error="insufficient_scope"' in answer.headers["WWW-Authenticate"]
    assert "scopes do not allow search MedicationRequest" in answer.issue["diagnostics"]
    assert await upstream_counts(http, emulator) == {}
    read_only = token("user/Patient.r", roles=["clinician"])
    assert (await fhir.get(f"/Patient/{JANE}", headers=auth(read_only))).status == 200
    assert (await fhir.get(f"/Patient?identifier={JANE}", headers=auth(read_only))).status == 403


async def test_v1_scopes_are_honoured(fhir: CheckedClient) -> None:
    v1 = token("user/Patient.read", roles=["clerk"])
    assert (await fhir.get(f"/Patient?identifier={JANE}", headers=auth(v1))).status == 200


async def test_a_clerk_sees_demographics_but_no_clinical_types(fhir: CheckedClient) -> None:
    assert (await fhir.get(f"/Patient/{JANE}", headers=auth(CLERK))).status == 200
    answer = await fhir.get(f"/AllergyIntolerance?patient={JANE}", headers=auth(CLERK))
    assert answer.status == 403 and "roles (clerk) may search AllergyIntolerance" in answer.issue["diagnostics"]


async def test_an_auditor_reads_the_audit_trail_and_nothing_else(fhir: CheckedClient) -> None:
    assert (await fhir.get(f"/Patient/{JANE}", headers=auth(token("user/*.rs", roles=["auditor"])))).status == 403
    assert (await fhir.get("/AuditEvent", headers=auth(CLINICIAN))).status == 403


async def test_clinical_types_need_a_purpose_of_use(fhir: CheckedClient) -> None:
    no_purpose = token("user/*.rs", roles=["clinician"], purpose=None)
    answer = await fhir.get(f"/AllergyIntolerance?patient={JANE}", headers=auth(no_purpose))
    assert answer.status == 403 and "purpose of use" in answer.issue["diagnostics"]
    ok = await fhir.get(
        f"/AllergyIntolerance?patient={JANE}", headers=auth(no_purpose, **{"X-Purpose-Of-Use": "TREAT"})
    )
    assert ok.status == 200
    bad = await fhir.get(f"/Patient/{JANE}", headers=auth(no_purpose, **{"X-Purpose-Of-Use": "treat me kindly"}))
    assert bad.status == 400 and bad.issue["code"] == "value"


# ---- patient compartment --------------------------------------------------------------


async def test_a_patient_token_reads_its_own_patient_only(
    fhir: CheckedClient, emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    assert (await fhir.get(f"/Patient/{JANE}", headers=auth(JANE_APP))).status == 200
    other = await fhir.get(f"/Patient/{JAYNE}", headers=auth(JANE_APP))
    assert other.status == 403 and "patient compartment" in other.issue["diagnostics"]
    before = await upstream_counts(http, emulator)
    search = await fhir.get(f"/MedicationRequest?patient={JAYNE}", headers=auth(JANE_APP, **CPT))
    assert search.status == 403 and "own patient" in search.issue["diagnostics"]
    unnamed = await fhir.get("/Patient?family=Smith&birthdate=2010-10-22", headers=auth(JANE_APP))
    assert unnamed.status == 403 and "must name its patient" in unnamed.issue["diagnostics"]
    assert await upstream_counts(http, emulator) == before  # refused before any NHS call
    own = await fhir.get(
        f"/MedicationRequest?patient={JANE}&_include=MedicationRequest:patient", headers=auth(JANE_APP, **CPT)
    )
    assert own.status == 200 and matches(own.body)
    assert {p["id"] for p in included(own.body)} == {JANE}


async def test_a_patient_token_without_a_patient_claim_sees_nothing(fhir: CheckedClient) -> None:
    answer = await fhir.get(f"/Patient/{JANE}", headers=auth(token("patient/*.rs", roles=["clinician"])))
    assert answer.status == 403 and "patient context" in answer.issue["diagnostics"]


async def test_revinclude_leaves_out_what_a_scope_does_not_cover(
    fhir: CheckedClient, emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    patient_only = token("user/Patient.rs", roles=["clinician"])
    answer = await fhir.get(
        f"/Patient?identifier={JANE}&_revinclude=AllergyIntolerance:patient", headers=auth(patient_only)
    )
    assert answer.status == 200 and [p["id"] for p in matches(answer.body)] == [JANE]
    assert included(answer.body) == []
    assert any("_revinclude of AllergyIntolerance left out" in w for w in warnings(answer.body))
    assert not [k for k in await upstream_counts(http, emulator) if "gpconnect" in k]  # never asked


async def test_page_links_are_bound_to_the_caller(fhir: CheckedClient) -> None:
    first = await fhir.get(f"/MedicationRequest?patient={JANE}&_count=1", headers=auth(CLINICIAN, **CPT))
    assert first.status == 200
    [nxt] = [link["url"] for link in first.body["link"] if link["relation"] == "next"]
    mine = await fhir.get(nxt, headers=auth(CLINICIAN, **CPT))
    assert mine.status == 200 and len(matches(mine.body)) == 1
    someone_else = token("user/*.rs", roles=["clinician"], subject="another-clinician")
    stolen = await fhir.get(nxt, headers=auth(someone_else, **CPT))
    assert stolen.status == 404 and "entry" not in stolen.body
    narrower = token("user/MedicationRequest.rs", roles=["clinician"])  # same user, other scopes
    assert (await fhir.get(nxt, headers=auth(narrower, **CPT))).status == 404
    assert (await fhir.get(nxt, anonymous=True)).status == 401


# ---- legitimate relationship -----------------------------------------------------------


async def test_clinical_data_needs_a_relationship_or_break_glass(
    strict: CheckedClient, emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    refused = await strict.get(f"/AllergyIntolerance?patient={JANE}", headers=auth(CLINICIAN))
    assert refused.status == 403 and "legitimate relationship" in refused.issue["diagnostics"]
    assert not [k for k in await upstream_counts(http, emulator) if "gpconnect" in k]
    # Demographics need none: finding the patient is how care starts.
    assert (await strict.get(f"/Patient/{JANE}", headers=auth(CLINICIAN))).status == 200
    glass = await strict.get(
        f"/AllergyIntolerance?patient={JANE}", headers=auth(CLINICIAN, **{"X-Purpose-Of-Use": "ETREAT"})
    )
    assert glass.status == 200 and matches(glass.body)
    [event] = by_request_id(await audit_events(strict), glass.headers["X-Request-ID"])
    assert event["extension"] == [{"url": "urn:nhs-fhir-facade:audit:break-glass", "valueBoolean": True}]
    assert event["purposeOfEvent"][0]["coding"][0]["code"] == "ETREAT"
    # Registration in the PAS (by the PAS system) is the relationship.
    async with http.post(
        strict.base_url + "/pas/v1/patients",
        headers=auth(PAS_SYSTEM),
        json={
            "hospitalNumber": "H1",
            "surname": "Smith",
            "forenames": "Jane",
            "dateOfBirth": "22/10/2010",
            "sex": "F",
            "nhsNumber": JANE,
        },
    ) as resp:
        assert resp.status == 201, await resp.text()
    assert (await strict.get(f"/AllergyIntolerance?patient={JANE}", headers=auth(CLINICIAN))).status == 200


async def test_a_patient_context_is_a_relationship(strict: CheckedClient) -> None:
    launched = token("user/*.rs", roles=["clinician"], patient=JANE)
    assert (await strict.get(f"/AllergyIntolerance?patient={JANE}", headers=auth(launched))).status == 200


async def test_revinclude_asks_nhs_only_for_related_patients(
    strict: CheckedClient, emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    answer = await strict.get(
        f"/Patient?identifier={JANE}&_revinclude=AllergyIntolerance:patient", headers=auth(CLINICIAN)
    )
    assert answer.status == 200 and [p["id"] for p in matches(answer.body)] == [JANE]
    assert included(answer.body) == []
    assert any("not asked for 1 match" in w for w in warnings(answer.body))
    assert not [k for k in await upstream_counts(http, emulator) if "gpconnect" in k]


# ---- the PAS endpoints ------------------------------------------------------------------


@pytest.mark.parametrize("who", ["anonymous", "clinician", "auditor", "patient app"])
async def test_pas_rest_and_hl7_refuse_the_wrong_callers(
    fhir: CheckedClient, http: aiohttp.ClientSession, who: str
) -> None:
    credentials = {"anonymous": None, "clinician": CLINICIAN, "auditor": AUDITOR, "patient app": JANE_APP}[who]
    headers = auth(credentials) if credentials else {}
    record = {
        "hospitalNumber": "H2",
        "surname": "Smith",
        "forenames": "Jane",
        "dateOfBirth": "22/10/2010",
        "sex": "F",
        "nhsNumber": JANE,
    }
    async with http.post(fhir.base_url + "/pas/v1/patients", json=record, headers=headers) as resp:
        assert resp.status == (401 if credentials is None else 403)
    async with http.post(
        fhir.base_url + "/pas/v1/hl7",
        data=HL7.format(control="C1", hn="H3").encode(),
        headers={**headers, "Content-Type": "application/hl7-v2"},
    ) as resp:
        assert resp.status == (401 if credentials is None else 403)
    async with http.get(fhir.base_url + "/pas/v1/patients/H2", headers=headers) as resp:
        assert resp.status == (401 if credentials is None else 403)


async def test_the_pas_system_may_use_hl7_and_rest(fhir: CheckedClient, http: aiohttp.ClientSession) -> None:
    async with http.post(
        fhir.base_url + "/pas/v1/hl7",
        data=HL7.format(control="C2", hn="H4").encode(),
        headers={**auth(PAS_SYSTEM), "Content-Type": "application/hl7-v2"},
    ) as resp:
        assert resp.status == 200 and "MSA|AA" in await resp.text()
    async with http.get(fhir.base_url + "/pas/v1/patients/H4", headers=auth(PAS_SYSTEM)) as resp:
        assert resp.status == 200
    async with http.get(fhir.base_url + "/pas/v1/patients/H4", headers=auth(CLERK)) as resp:
        assert resp.status == 200  # registration desk: demographics
    async with http.get(fhir.base_url + "/pas/v1/patients/H4/allergies", headers=auth(CLERK)) as resp:
        assert resp.status == 403  # but no clinical lists


# ---- the audit trail ----------------------------------------------------------------------


async def test_every_access_leaves_exactly_one_audit_event(fhir: CheckedClient) -> None:
    asks = [
        (f"/Patient/{JANE}", CLINICIAN),
        (f"/AllergyIntolerance?patient={JANE}", CLINICIAN),
        (f"/AllergyIntolerance?patient={JANE}", CLERK),
        ("/Patient/9000000000", CLINICIAN),
        (f"/MedicationRequest?patient={JANE}", CLINICIAN),
    ]
    answers = [await fhir.get(path, headers=auth(who, **CPT)) for path, who in asks]
    assert [a.status for a in answers] == [200, 200, 403, 400, 200]
    events = await audit_events(fhir)
    for (path, _), answer in zip(asks, answers):
        [event] = by_request_id(events, answer.headers["X-Request-ID"])
        assert event["outcome"] == ("0" if answer.status < 400 else "4"), path
    read = by_request_id(events, answers[0].headers["X-Request-ID"])[0]
    assert read["subtype"][0]["code"] == "read" and read["action"] == "R"
    assert {"reference": f"Patient/{JANE}"} in [e.get("what") for e in read["entity"]]
    user = read["agent"][0]
    assert user["requestor"] is True and user["who"]["identifier"]["value"] == "test-user"
    assert {"system": "urn:nhs-fhir-facade:role", "code": "clinician"} in [r["coding"][0] for r in user["role"]]
    search = by_request_id(events, answers[1].headers["X-Request-ID"])[0]
    assert search["subtype"][0]["code"] == "search-type" and search["action"] == "E"
    query = [e for e in search["entity"] if e.get("role", {}).get("code") == "24"]
    assert base64.b64decode(query[0]["query"]).decode().startswith(f"GET /AllergyIntolerance?patient={JANE}")
    assert any(
        e["what"].get("reference", "").startswith("AllergyIntolerance/") for e in search["entity"] if "what" in e
    )
    # The audit trail is searchable by patient, outcome and type.
    for_jane = await audit_events(fhir, patient=f"Patient/{JANE}")
    assert {e["id"] for e in by_request_id(for_jane, answers[0].headers["X-Request-ID"])} == {read["id"]}
    refused = await audit_events(fhir, outcome="4")
    assert by_request_id(refused, answers[2].headers["X-Request-ID"])
    assert not by_request_id(refused, answers[0].headers["X-Request-ID"])


async def test_audit_failure_refuses_the_access(emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Any) -> None:
    """MongoDB unreachable and the spool unwritable: fail closed, 503, and nothing served."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    dead_mongo = "mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=200&connectTimeoutMS=200"
    async with running_facade(
        emulator, mongodb_uri=dead_mongo, mongodb_timeout_ms=200, audit_spool_dir=blocker / "spool"
    ) as url:
        fhir = CheckedClient(url, http)
        answer = await fhir.get(f"/Patient/{JANE}")
        assert answer.status == 503 and answer.headers["Retry-After"] == "5"
        assert "audit trail" in answer.issue["diagnostics"]
        assert "Jane" not in answer.raw.decode() and JANE not in answer.raw.decode()
        assert (await fhir.get("/metadata")).status == 200  # discovery is not an access to data


# ---- GP Connect sees who asked, even through the cache ------------------------------------


async def test_gp_connect_is_asked_once_per_user_even_with_the_cache(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    async with running_facade(emulator, cache_enabled=True) as url:
        fhir = CheckedClient(url, http)
        users = [
            token("user/*.rs", roles=["clinician"], subject=s, extra={"sds_user_id": sds})
            for s, sds in (("dr-a", "555000000001"), ("dr-b", "555000000002"))
        ]
        for user in users + users:
            assert (await fhir.get(f"/AllergyIntolerance?patient={JANE}", headers=auth(user))).status == 200
    seen = [c["requesting_practitioner"]["id"] for c in await gpconnect_jwt_claims(http, emulator)]
    assert seen == ["555000000001", "555000000002"]  # the second round came from the cache, per user


# ---- the development issuer from the command line, and tokens never logged ---------------


async def test_the_token_command_prints_a_token_a_sandbox_facade_accepts(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Any
) -> None:
    key = tmp_path / "dev-issuer.pem"
    env = {**os.environ, "FACADE_DEV_ISSUER_KEY_PATH": str(key), "FACADE_BASE_URL": "http://facade.test"}
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "server", "token", "--scope", "user/Patient.rs", "--role", "clerk"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    printed = done.stdout.strip().splitlines()[-1]
    assert printed.count(".") == 2 and "audience http://facade.test" in done.stderr
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    async with running_facade(emulator, dev_issuer_key_path=key, auth_audience=["http://facade.test"]) as url:
        fhir = CheckedClient(url, http)
        assert (await fhir.get(f"/Patient/{JANE}", headers=auth(printed))).status == 200
        assert (await fhir.get(f"/AllergyIntolerance?patient={JANE}", headers=auth(printed))).status == 403  # clerk
    refused = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "server", "token", "--scope", "user/*.rs", "--patient", "12345"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2 and "10-digit NHS number" in refused.stderr


async def test_inbound_tokens_never_reach_the_logs(fhir: CheckedClient, caplog: pytest.LogCaptureFixture) -> None:
    good, expired = CLINICIAN, token(lifetime=-3600)
    with caplog.at_level(logging.DEBUG):
        await fhir.get(f"/Patient/{JANE}", headers=auth(good, **{"X-NHS-User-Token": "cis2-secret-value"}))
        await fhir.get(f"/Patient/{JANE}", headers=auth(expired))
        await fhir.get(f"/Patient/{JANE}", headers=auth("garbage.token.value"))
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert logged  # the access log did run
    for secret in (good, expired, good.split(".")[2], "cis2-secret-value", "garbage.token.value"):
        assert secret not in logged
