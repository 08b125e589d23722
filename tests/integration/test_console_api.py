"""The console's JSON API over real sockets (issue 12): traces of real requests, faults set
through the console and seen in the trace, who may read traces (and that each read is
audited), development tokens, the scenario catalogue, the page's files, and the console
switched off."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from server.access.dev_issuer import public_key_set
from server.app import create_app
from server.console.trace_middleware import TraceMiddleware
from server.settings import Settings
from tests.support.access import AUDITOR, CLINICIAN, JANE, audit_events, by_request_id
from tests.support.checked_client import CheckedClient
from tests.support.emulator_control import upstream_counts
from tests.support.mongo import MongoTarget
from tests.support.servers import Emulator, running_facade
from tests.support.tokens import facade_access_settings, signing_key, token

ADMIN = token("user/*.rs", roles=["admin"], purpose=None)
CLERK = token("user/Patient.rs", roles=["clerk"])
GPCONNECT_API = "GP Connect"  # the API name NHS events carry (server/sources/gpconnect/client.py)


@pytest.fixture
async def console(emulator: Emulator) -> AsyncIterator[str]:
    """A sandbox façade (every NHS API is the loopback emulator) with the cache on."""
    async with running_facade(emulator, console="auto", cache_enabled=True, upstream_backoff_base=0.01) as url:
        yield url


async def call(
    http: aiohttp.ClientSession, method: str, url: str, *, bearer: str | None = None, **kwargs: Any
) -> tuple[int, dict[str, str], Any]:
    headers = dict(kwargs.pop("headers", {}))
    if bearer:
        headers["Authorization"] = f"Bearer {bearer}"
    async with http.request(method, url, headers=headers, **kwargs) as resp:
        raw = await resp.read()
        try:
            body: Any = await resp.json(content_type=None) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        return resp.status, dict(resp.headers), body


async def read_traced(http: aiohttp.ClientSession, url: str, path: str, bearer: str = CLERK, **headers: str) -> str:
    request_id = str(uuid.uuid4())
    status, answered, _ = await call(
        http, "GET", url + path, bearer=bearer, headers={"X-Request-ID": request_id, **headers}
    )
    assert answered["X-Request-ID"] == request_id
    return request_id


async def trace_of(http: aiohttp.ClientSession, url: str, request_id: str) -> dict[str, Any]:
    status, _, body = await call(http, "GET", f"{url}/_console/api/traces/{request_id}", bearer=ADMIN)
    assert status == 200, body
    return dict(body)


def kinds(trace: dict[str, Any]) -> list[str]:
    return [e["kind"] for e in trace["events"]]


def of_kind(trace: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in trace["events"] if e["kind"] == kind]


# ---- traces of real requests --------------------------------------------------------


async def test_a_read_leaves_a_trace_with_access_cache_and_nhs_events(
    console: str, http: aiohttp.ClientSession
) -> None:
    first = await read_traced(http, console, f"/Patient/{JANE}")
    trace = await trace_of(http, console, first)
    assert trace["request_id"] == first and trace["status"] == 200 and trace["method"] == "GET"
    assert trace["path"] == f"/Patient/{JANE}" and trace["redacted"] is False
    assert kinds(trace)[0] == "access" and kinds(trace)[-1] == "response"
    access = of_kind(trace, "access")[0]
    assert access["detail"]["roles"] == ["clerk"] and access["detail"]["decision"] == "authenticated"
    assert trace["request_headers"]["authorization"] == "…redacted…"  # the header was sent; its value is not kept
    assert CLERK not in str(trace)  # never the token
    lookup, result = of_kind(trace, "cache")
    assert lookup["detail"] == {"backend": "memory", "found": False} and lookup["duration_ms"] is not None
    assert result["detail"]["result"] == "MISS"
    [validated] = of_kind(trace, "conversion")  # the R4 check where PDS's answer enters, with its time
    assert validated["label"] == "validated as R4 Patient" and validated["detail"]["problems"] == []
    assert validated["duration_ms"] > 0
    [nhs] = of_kind(trace, "nhs")
    assert lookup["at_ms"] <= nhs["at_ms"] <= validated["at_ms"] <= result["at_ms"]  # the waterfall's order
    assert nhs["detail"]["api"] == "PDS" and nhs["detail"]["method"] == "GET" and nhs["detail"]["status"] == 200
    assert nhs["detail"]["path"].endswith(f"Patient/{JANE}") and nhs["detail"]["attempt"] == 1
    assert nhs["duration_ms"] is not None and nhs["duration_ms"] >= 0
    assert trace["duration_ms"] >= nhs["at_ms"]
    # The second read is a cache hit: no NHS call in its trace.
    again = await trace_of(http, console, await read_traced(http, console, f"/Patient/{JANE}"))
    assert [e["detail"].get("result") for e in of_kind(again, "cache")] == [None, "HIT"] and not of_kind(again, "nhs")
    assert of_kind(again, "cache")[0]["detail"]["found"] is True
    # The list, newest first.
    status, _, listed = await call(http, "GET", f"{console}/_console/api/traces?limit=2", bearer=ADMIN)
    assert status == 200 and [t["request_id"] for t in listed["traces"]] == [again["request_id"], first]
    assert listed["traces"][0]["status"] == 200 and listed["mode"] == "sandbox"


async def test_an_unknown_request_id_is_a_404_outcome(console: str, http: aiohttp.ClientSession) -> None:
    status, headers, body = await call(http, "GET", f"{console}/_console/api/traces/{uuid.uuid4()}", bearer=ADMIN)
    assert status == 404 and body["resourceType"] == "OperationOutcome" and body["issue"][0]["code"] == "not-found"
    assert headers["Content-Type"].startswith("application/fhir+json")


async def test_a_bad_trace_limit_is_a_400(console: str, http: aiohttp.ClientSession) -> None:
    for limit in ("x", "0", "-3"):
        status, _, body = await call(http, "GET", f"{console}/_console/api/traces?limit={limit}", bearer=ADMIN)
        assert status == 400 and body["resourceType"] == "OperationOutcome", limit


async def test_console_and_health_paths_are_not_traced(console: str, http: aiohttp.ClientSession) -> None:
    await call(http, "GET", f"{console}/_health")
    await call(http, "GET", f"{console}/_console/api/config")
    status, _, listed = await call(http, "GET", f"{console}/_console/api/traces", bearer=ADMIN)
    assert status == 200 and listed["traces"] == []


async def test_a_refused_request_shows_the_refusal(console: str, http: aiohttp.ClientSession) -> None:
    no_token = await read_traced(http, console, f"/Patient/{JANE}", bearer="")
    trace = await trace_of(http, console, no_token)
    assert trace["status"] == 401 and of_kind(trace, "access")[0]["detail"]["decision"] == "refused"
    auditor = await read_traced(http, console, f"/Patient/{JANE}", bearer=AUDITOR)
    trace = await trace_of(http, console, auditor)
    assert trace["status"] == 403
    assert [e["detail"]["decision"] for e in of_kind(trace, "access")] == ["authenticated", "refused"]
    assert not of_kind(trace, "nhs")


async def test_conversion_warnings_are_on_the_trace(console: str, http: aiohttp.ClientSession) -> None:
    """GP Connect's degraded record gives the allergy search a warning (an outcome entry)."""
    request_id = await read_traced(http, console, "/AllergyIntolerance?patient=9000000092", bearer=CLINICIAN)
    trace = await trace_of(http, console, request_id)
    assert trace["status"] == 200
    conversions = of_kind(trace, "conversion")
    warnings = [c for c in conversions if "severity" in c["detail"]]
    assert warnings and all(w["detail"]["severity"] in ("warning", "information") for w in warnings)
    validations = [c for c in conversions if c["label"].startswith("validated as R4")]
    assert validations and all(v["duration_ms"] is not None for v in validations)
    assert {n["detail"]["api"] for n in of_kind(trace, "nhs")} == {GPCONNECT_API}


# ---- faults set through the console ---------------------------------------------------


async def test_a_fault_set_in_the_console_shows_retries_and_the_final_status(
    console: str, http: aiohttp.ClientSession, emulator: Emulator
) -> None:
    status, _, added = await call(
        http,
        "POST",
        f"{console}/_console/api/faults",
        bearer=ADMIN,
        json={"api": "pds", "kind": "status", "status": 503, "times": 2},
    )
    assert status == 201 and added["added"]["status"] == 503
    status, _, listed = await call(http, "GET", f"{console}/_console/api/faults", bearer=ADMIN)
    assert status == 200 and listed["faults"] == [
        {"api": "pds", "kind": "status", "status": 503, "delay": None, "retry_after": None, "times": 2}
    ]
    trace = await trace_of(http, console, await read_traced(http, console, f"/Patient/{JANE}"))
    assert trace["status"] == 200
    assert [(e["detail"]["status"], e["detail"]["attempt"]) for e in of_kind(trace, "nhs")] == [
        (503, 1),
        (503, 2),
        (200, 3),
    ]
    retries = of_kind(trace, "retry")
    assert [r["detail"]["next_attempt"] for r in retries] == [2, 3] and all(
        r["detail"]["api"] == "PDS" for r in retries
    )
    # All attempts of one logical request share one X-Request-ID towards NHS.
    assert len({e["detail"]["nhs_request_id"] for e in of_kind(trace, "nhs")}) == 1
    status, _, listed = await call(http, "GET", f"{console}/_console/api/faults", bearer=ADMIN)
    assert listed["faults"] == []  # used up


async def test_a_persistent_fault_gives_the_client_status_until_cleared(
    console: str, http: aiohttp.ClientSession
) -> None:
    fault = {"api": "pds", "kind": "rate_limit", "retry_after": "0", "times": -1}
    assert (await call(http, "POST", f"{console}/_console/api/faults", bearer=ADMIN, json=fault))[0] == 201
    trace = await trace_of(http, console, await read_traced(http, console, "/Patient/9000000017"))
    assert trace["status"] == 503 and {e["detail"]["status"] for e in of_kind(trace, "nhs")} == {429}
    assert trace["events"][-1]["kind"] == "response" and trace["events"][-1]["detail"]["status"] == 503
    status, _, cleared = await call(http, "POST", f"{console}/_console/api/faults/clear", bearer=ADMIN, json={})
    assert status == 200 and cleared == {"cleared": "all"}
    assert (await call(http, "GET", f"{console}/_console/api/faults", bearer=ADMIN))[2]["faults"] == []
    trace = await trace_of(http, console, await read_traced(http, console, "/Patient/9000000017"))
    assert trace["status"] == 200


@pytest.mark.parametrize(
    ("kind", "extra", "client_status"),
    [
        ("malformed", {}, 502),
        ("wrong_type", {}, 502),
        ("reset", {}, 503),
        ("latency", {"delay": 0.2}, 200),
    ],
)
async def test_each_fault_kind_reaches_the_client_as_documented(
    console: str, http: aiohttp.ClientSession, kind: str, extra: dict[str, Any], client_status: int
) -> None:
    fault = {"api": "pds", "kind": kind, "times": -1, **extra}
    assert (await call(http, "POST", f"{console}/_console/api/faults", bearer=ADMIN, json=fault))[0] == 201
    listed = (await call(http, "GET", f"{console}/_console/api/faults", bearer=ADMIN))[2]["faults"]
    assert [f["kind"] for f in listed] == [kind]
    trace = await trace_of(http, console, await read_traced(http, console, "/Patient/9000000017"))
    assert trace["status"] == client_status
    if kind == "latency":
        assert of_kind(trace, "nhs")[0]["duration_ms"] >= 200


@pytest.mark.parametrize(
    "fault",
    [
        {"api": "nowhere", "kind": "status", "status": 503},
        {"api": "pds", "kind": "explode"},
        {"api": "pds", "kind": "status", "status": 200},
        {"api": "pds", "kind": "status"},
        {"api": "pds", "kind": "latency"},
        {"api": "pds", "kind": "latency", "delay": 999},
        {"api": "pds", "kind": "reset", "times": 0},
        {"api": "pds", "kind": "reset", "times": "2"},
        {"api": "pds", "kind": "reset", "path_prefix": "/"},
        {"api": "pds", "kind": "rate_limit", "retry_after": ["1"]},
    ],
)
async def test_a_bad_fault_is_a_400_and_nothing_is_set(
    console: str, http: aiohttp.ClientSession, emulator: Emulator, fault: dict[str, Any]
) -> None:
    status, _, body = await call(http, "POST", f"{console}/_console/api/faults", bearer=ADMIN, json=fault)
    assert status == 400 and body["resourceType"] == "OperationOutcome"
    assert emulator.state.faults == []


async def test_a_fault_body_that_is_not_an_object_is_a_400(console: str, http: aiohttp.ClientSession) -> None:
    for body in (b"[1]", b"{not json"):
        status, _, answer = await call(
            http,
            "POST",
            f"{console}/_console/api/faults",
            bearer=ADMIN,
            data=body,
            headers={"Content-Type": "application/json"},
        )
        assert status == 400 and answer["resourceType"] == "OperationOutcome"


# ---- who may read traces and set faults -----------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/_console/api/traces"),
        ("GET", "/_console/api/traces/00000000-0000-4000-8000-000000000000"),
        ("GET", "/_console/api/faults"),
        ("POST", "/_console/api/faults"),
        ("POST", "/_console/api/faults/clear"),
    ],
)
async def test_traces_and_faults_need_a_console_role(
    console: str, http: aiohttp.ClientSession, emulator: Emulator, method: str, path: str
) -> None:
    body = {"api": "pds", "kind": "reset"}
    status, headers, answer = await call(http, method, console + path, json=body)
    assert status == 401 and answer["issue"][0]["code"] == "login" and "Bearer" in headers["WWW-Authenticate"]
    status, headers, answer = await call(http, method, console + path, bearer=CLINICIAN, json=body)
    assert status == 403 and answer["issue"][0]["code"] == "forbidden"
    assert "insufficient_scope" in headers["WWW-Authenticate"]
    assert emulator.state.faults == []
    status, _, _ = await call(http, method, console + path, bearer=AUDITOR, json=body)
    assert status in (200, 201, 404)  # 404: the made-up request id


async def test_every_trace_read_is_audited(console: str, http: aiohttp.ClientSession) -> None:
    target = await read_traced(http, console, f"/Patient/{JANE}")
    reads = {}
    for name, bearer in (("anonymous", None), ("clinician", CLINICIAN), ("auditor", AUDITOR), ("admin", ADMIN)):
        request_id = str(uuid.uuid4())
        await call(
            http, "GET", f"{console}/_console/api/traces/{target}", bearer=bearer, headers={"X-Request-ID": request_id}
        )
        reads[name] = request_id
    events = await audit_events(CheckedClient(console, http))
    outcomes = {name: [e["outcome"] for e in by_request_id(events, rid)] for name, rid in reads.items()}
    assert outcomes == {"anonymous": ["4"], "clinician": ["4"], "auditor": ["0"], "admin": ["0"]}
    refused = by_request_id(events, reads["clinician"])[0]
    assert "no console role" in str(refused)


# ---- development tokens -----------------------------------------------------------------


async def test_a_minted_token_reads_what_its_role_allows(console: str, http: aiohttp.ClientSession) -> None:
    status, headers, minted = await call(
        http,
        "POST",
        f"{console}/_console/api/token",
        json={"scope": "user/*.rs", "role": "clinician", "patient": JANE, "purpose": "treat"},
    )
    assert status == 200 and minted["expires_in"] > 0 and headers["Cache-Control"] == "no-store"
    status, _, body = await call(
        http, "GET", f"{console}/AllergyIntolerance?patient={JANE}", bearer=minted["access_token"]
    )
    assert status == 200 and body["resourceType"] == "Bundle"
    status, _, _ = await call(http, "GET", f"{console}/AuditEvent", bearer=minted["access_token"])
    assert status == 403  # a clinician's token is no auditor's


@pytest.mark.parametrize(
    "fields",
    [
        {"role": "clinician"},
        {"scope": "", "role": "clinician"},
        {"scope": "user/*.rs", "role": "superuser"},
        {"scope": "user/*.rs"},
        {"scope": "user/*.rs", "role": "clinician", "patient": "12345"},
        {"scope": "user/*.rs", "role": "clinician", "patient": 9000000009},
        {"scope": "user/*.rs", "role": "clinician", "purpose": "treat me"},
        {"scope": "user/*.rs", "role": "clinician", "lifetime": 999999},
        {"scope": "x" * 501, "role": "clinician"},
        {"scope": "user/*.rs", "role": "clinician", "subject": "a b"},
    ],
)
async def test_a_bad_token_request_is_a_400(console: str, http: aiohttp.ClientSession, fields: dict[str, Any]) -> None:
    status, _, body = await call(http, "POST", f"{console}/_console/api/token", json=fields)
    assert status == 400 and body["resourceType"] == "OperationOutcome" and body["issue"][0]["code"] == "value"


async def test_a_token_request_that_is_not_json_is_a_400(console: str, http: aiohttp.ClientSession) -> None:
    status, _, body = await call(http, "POST", f"{console}/_console/api/token", data=b"scope=x")
    assert status == 400 and body["issue"][0]["code"] == "structure"


# ---- config, scenarios and the page ---------------------------------------------------


async def test_config_says_what_the_page_may_offer(console: str, http: aiohttp.ClientSession) -> None:
    status, _, config = await call(http, "GET", f"{console}/_console/api/config")
    assert status == 200
    assert config["mode"] == "sandbox" and config["dev_tokens"] is True and config["fault_control"] is True
    assert config["apis"] == ["pds", "bars", "ers", "cpt", "gpconnect"]
    assert {"clinician", "clerk", "auditor", "admin"} <= set(config["roles"])
    assert config["console_roles"] == ["admin", "auditor"] and "TREAT" in config["purposes"]


async def test_every_scenario_runs_with_the_token_it_names(console: str, http: aiohttp.ClientSession) -> None:
    status, _, body = await call(http, "GET", f"{console}/_console/api/scenarios")
    assert status == 200
    scenarios = body["scenarios"]
    ids = " ".join(s["id"] for s in scenarios)
    for shown in ("restricted", "superseded", "no-consent", "nothing-recorded", "many-matches", "invalidated"):
        assert shown in ids, shown
    assert len({s["id"] for s in scenarios}) == len(scenarios)
    for scenario in scenarios:
        status, _, minted = await call(http, "POST", f"{console}/_console/api/token", json=scenario["token"])
        assert status == 200, (scenario["id"], minted)
        request = scenario["request"]
        request_id = str(uuid.uuid4())
        status, _, answer = await call(
            http,
            request["method"],
            console + request["path"],
            params=request["query"],
            bearer=minted["access_token"],
            headers={**request["headers"], "X-Request-ID": request_id},
        )
        assert status < 500 and status not in (401, 403) or "consent" in scenario["id"], (
            scenario["id"],
            status,
            answer,
        )
        assert (await trace_of(http, console, request_id))["status"] == status


async def test_the_page_and_its_files_are_served_with_a_strict_policy(
    console: str, http: aiohttp.ClientSession
) -> None:
    for path in ("/_console", "/_console/"):
        status, headers, body = await call(http, "GET", console + path)
        assert status == 200 and headers["Content-Type"].startswith("text/html")
        policy = headers["Content-Security-Policy"]
        assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy and "unsafe-inline" not in policy
    status, headers, _ = await call(http, "GET", f"{console}/_console/static/console.css")
    assert status == 200 and headers["Content-Type"].startswith("text/css")


@pytest.mark.parametrize(
    "name", ["../routes.py", "..%2Froutes.py", "%2e%2e/state.py", ".hidden", "nope.js", "static/index.html", "%00"]
)
async def test_no_file_outside_the_static_directory_is_served(
    console: str, http: aiohttp.ClientSession, name: str
) -> None:
    """aiohttp resolves dot segments before sending: those reach a protected path (401)."""
    async with http.get(f"{console}/_console/static/{name}", allow_redirects=False) as resp:
        assert resp.status in (401, 404)
        assert "import" not in await resp.text()


# ---- console off --------------------------------------------------------------------------


async def test_console_off_serves_nothing_and_traces_nothing(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    async with running_facade(emulator, console="off") as url:
        for path in (
            "/_console",
            "/_console/",
            "/_console/api/config",
            "/_console/api/scenarios",
            "/_console/static/console.css",
        ):
            status, _, body = await call(http, "GET", url + path)
            assert status == 404 and body["resourceType"] == "OperationOutcome", path
            assert "console is off" in body["issue"][0]["diagnostics"]  # the console's mount, not a FHIR handler
        status, _, body = await call(http, "POST", url + "/_console/api/token", json={"scope": "x", "role": "clerk"})
        assert status == 404 and "console is off" in body["issue"][0]["diagnostics"]
        status, _, _ = await call(http, "GET", url + "/_console/api/traces", bearer=ADMIN)
        assert status == 404
        status, _, _ = await call(http, "GET", f"{url}/Patient/{JANE}", bearer=CLERK)
        assert status == 200
    settings = Settings(console="off", **facade_access_settings("http://127.0.0.1:1"), **emulator.upstream_settings())
    assert not any(m.cls is TraceMiddleware for m in create_app(settings).user_middleware)
    on = Settings(**facade_access_settings("http://127.0.0.1:1"), **emulator.upstream_settings())
    assert any(m.cls is TraceMiddleware for m in create_app(on).user_middleware)


async def test_the_emulator_counts_are_untouched_by_clearing_faults(
    console: str, http: aiohttp.ClientSession, emulator: Emulator
) -> None:
    await read_traced(http, console, f"/Patient/{JANE}")
    before = await upstream_counts(http, emulator)
    assert (await call(http, "POST", f"{console}/_console/api/faults/clear", bearer=ADMIN, json={}))[0] == 200
    assert await upstream_counts(http, emulator) == before


# ---- live mode: FACADE_CONSOLE=on against an NHS API that is not the emulator ----------------

LIVE_ISSUER = "urn:nhs-fhir-facade:tests:live-issuer"


def live_token(scope: str, role: str, **claims: Any) -> str:
    """A token of the façade's configured issuer (the test key, published as a JWKS file)."""
    return token(scope, roles=[role], extra={"iss": LIVE_ISSUER, **claims})


@pytest.fixture
async def live(emulator: Emulator, tmp_path: Any) -> AsyncIterator[str]:
    """PDS at an address that is no emulator (0.0.0.0: refused at once), so the façade counts
    as live; its own issuer instead of the development one, the relationship check on."""
    jwks = tmp_path / "jwks.json"
    jwks.write_bytes(orjson.dumps(public_key_set(signing_key()).as_dict()))
    async with running_facade(
        emulator,
        console="on",
        pds_base_url="http://0.0.0.0:1/personal-demographics/FHIR/R4",
        auth_issuer=LIVE_ISSUER,
        auth_jwks_file=jwks,
        relationship_required=True,
        upstream_backoff_base=0.01,
    ) as url:
        yield url


async def test_live_traces_are_redacted_and_the_sandbox_helpers_are_gone(
    live: str, http: aiohttp.ClientSession
) -> None:
    clerk, admin = live_token("user/Patient.rs", "clerk"), live_token("user/*.rs", "admin")
    request_id = str(uuid.uuid4())
    status, _, _ = await call(
        http,
        "GET",
        f"{live}/Patient/{JANE}?_count=5&name=Smith",
        bearer=clerk,
        headers={"X-Request-ID": request_id, "nhsd-session-urid": "555254240100", "Prefer": "handling=lenient"},
    )
    assert status == 503  # PDS refused the connection
    status, _, trace = await call(http, "GET", f"{live}/_console/api/traces/{request_id}", bearer=admin)
    assert status == 200 and trace["redacted"] is True
    text = orjson.dumps(trace).decode()
    assert JANE not in text and "Smith" not in text and "555254240100" not in text and clerk not in text
    assert trace["path"] == "/Patient/…redacted…" and "_count=5" in trace["query"]
    assert trace["request_headers"]["prefer"] == "handling=lenient"
    nhs = of_kind(trace, "nhs")
    assert nhs and all(e["detail"]["path"] == "Patient/…redacted…" for e in nhs)
    assert all(e["detail"]["status"] is None for e in nhs) and of_kind(trace, "retry")
    # A search: its NHS query is kept in shape, its values redacted.
    search = str(uuid.uuid4())
    await call(
        http,
        "GET",
        f"{live}/Patient?family=Smith&birthdate=eq2010-10-22",
        bearer=clerk,
        headers={"X-Request-ID": search},
    )
    status, _, trace = await call(http, "GET", f"{live}/_console/api/traces/{search}", bearer=admin)
    assert (
        status == 200
        and "Smith" not in orjson.dumps(trace).decode()
        and "2010-10-22" not in orjson.dumps(trace).decode()
    )
    assert of_kind(trace, "nhs") and all("family=…redacted…" in e["detail"]["query"] for e in of_kind(trace, "nhs"))
    # What only the sandbox offers is not there.
    status, _, config = await call(http, "GET", f"{live}/_console/api/config")
    assert (
        status == 200
        and config["mode"] == "live"
        and config["dev_tokens"] is False
        and config["fault_control"] is False
    )
    assert (await call(http, "GET", f"{live}/_console/api/scenarios"))[2] == {"scenarios": []}
    status, _, body = await call(
        http, "POST", f"{live}/_console/api/token", json={"scope": "user/*.rs", "role": "admin"}
    )
    assert status == 404 and body["resourceType"] == "OperationOutcome"
    for method, path in (
        ("GET", "/_console/api/faults"),
        ("POST", "/_console/api/faults"),
        ("POST", "/_console/api/faults/clear"),
    ):
        status, _, _ = await call(http, method, live + path, bearer=admin, json={"api": "pds", "kind": "reset"})
        assert status == 404, path
    # Traces still need a console role.
    assert (await call(http, "GET", f"{live}/_console/api/traces", bearer=clerk))[0] == 403
    assert (await call(http, "GET", f"{live}/_console/api/traces"))[0] == 401
    assert (await call(http, "GET", f"{live}/_console"))[0] == 200


async def test_auto_is_off_against_live_nhs(emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Any) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_bytes(orjson.dumps(public_key_set(signing_key()).as_dict()))
    async with running_facade(
        emulator,
        console="auto",
        pds_base_url="http://0.0.0.0:1/personal-demographics/FHIR/R4",
        auth_issuer=LIVE_ISSUER,
        auth_jwks_file=jwks,
        relationship_required=True,
    ) as url:
        assert (await call(http, "GET", f"{url}/_console"))[0] == 404
        assert (await call(http, "GET", f"{url}/_console/api/config"))[0] == 404


# ---- the guards on the trace: circuit breaker, single flight, rate limit -----------------------


async def test_an_open_circuit_is_on_the_trace(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    async with running_facade(
        emulator,
        console="auto",
        upstream_breaker_threshold=1,
        upstream_retry_attempts=1,
        upstream_breaker_open_seconds=60,
    ) as url:
        fault = {"api": "pds", "kind": "status", "status": 500, "times": 1}
        assert (await call(http, "POST", f"{url}/_console/api/faults", bearer=ADMIN, json=fault))[0] == 201
        failed = await trace_of(http, url, await read_traced(http, url, f"/Patient/{JANE}"))
        assert failed["status"] == 502
        assert [e["detail"]["state"] for e in of_kind(failed, "circuit")] == ["open"]
        refused = await trace_of(http, url, await read_traced(http, url, f"/Patient/{JANE}"))
        assert refused["status"] == 503 and not of_kind(refused, "nhs")
        [circuit] = of_kind(refused, "circuit")
        assert circuit["detail"]["api"] == "PDS" and circuit["label"] == "PDS circuit open"


async def test_a_joined_flight_is_on_the_joiners_trace(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    async with running_facade(emulator, console="auto") as url:
        fault = {"api": "pds", "kind": "latency", "delay": 0.3, "times": 1}
        assert (await call(http, "POST", f"{url}/_console/api/faults", bearer=ADMIN, json=fault))[0] == 201
        ids = await asyncio.gather(*(read_traced(http, url, f"/Patient/{JANE}") for _ in range(3)))
        traces = [await trace_of(http, url, request_id) for request_id in ids]
        assert all(t["status"] == 200 for t in traces)
        assert sum(len(of_kind(t, "nhs")) for t in traces) == 1  # the leader's call, on the leader's trace
        joins = [e for t in traces for e in of_kind(t, "single_flight")]
        assert len(joins) == 2 and all(j["detail"]["name"] == "PDS" for j in joins)


async def test_a_rate_limit_wait_is_on_the_trace(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    async with running_facade(emulator, console="auto", upstream_rate_limits={"PDS": 2.0}) as url:
        ids = [await read_traced(http, url, f"/Patient/{JANE}") for _ in range(4)]
        waits = [e for request_id in ids for e in of_kind(await trace_of(http, url, request_id), "rate_limit")]
        assert waits and all(w["duration_ms"] > 0 and w["detail"]["api"] == "PDS" for w in waits)


async def test_clearing_one_apis_faults_keeps_the_others(
    console: str, http: aiohttp.ClientSession, emulator: Emulator
) -> None:
    for api in ("pds", "gpconnect"):
        fault = {"api": api, "kind": "reset", "times": -1}
        assert (await call(http, "POST", f"{console}/_console/api/faults", bearer=ADMIN, json=fault))[0] == 201
    status, _, body = await call(
        http, "POST", f"{console}/_console/api/faults/clear", bearer=ADMIN, json={"api": "pds"}
    )
    assert status == 200 and body == {"cleared": "pds"}
    listed = (await call(http, "GET", f"{console}/_console/api/faults", bearer=ADMIN))[2]["faults"]
    assert [f["api"] for f in listed] == ["gpconnect"]
    status, _, body = await call(http, "POST", f"{console}/_console/api/faults/clear", bearer=ADMIN, json={"api": "x"})
    assert status == 400 and body["resourceType"] == "OperationOutcome"
    status, _, body = await call(http, "POST", f"{console}/_console/api/faults/clear", bearer=ADMIN)  # no body: all
    assert status == 200 and body == {"cleared": "all"} and emulator.state.faults == []


# ---- several workers: traces shared through MongoDB ------------------------------------------


@pytest.mark.mongo
async def test_with_mongodb_any_facade_shows_a_trace_another_recorded(
    emulator: Emulator, http: aiohttp.ClientSession, mongo_db: MongoTarget
) -> None:
    shared = {"mongodb_uri": mongo_db.uri, "mongodb_database": mongo_db.database}
    async with (
        running_facade(emulator, console="auto", **shared) as a,
        running_facade(emulator, console="auto", **shared) as b,
    ):
        request_id = await read_traced(http, a, f"/Patient/{JANE}")
        deadline = asyncio.get_running_loop().time() + 5
        while True:  # written after A's response went, in the background
            status, _, body = await call(http, "GET", f"{b}/_console/api/traces/{request_id}", bearer=ADMIN)
            if status == 200 or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.05)
        assert status == 200, body
        assert body["request_id"] == request_id and body["status"] == 200 and body["path"] == f"/Patient/{JANE}"
        assert [e["kind"] for e in body["events"]][0] == "access" and any(e["kind"] == "nhs" for e in body["events"])
        assert body["request_headers"]["authorization"] == "…redacted…"
        status, _, listed = await call(http, "GET", f"{b}/_console/api/traces?limit=5", bearer=ADMIN)
        assert status == 200 and listed["shared"] is True
        assert request_id in [t["request_id"] for t in listed["traces"]]
        status, _, missing = await call(http, "GET", f"{b}/_console/api/traces/{uuid.uuid4()}", bearer=ADMIN)
        assert status == 404 and "façade's recent traces" in missing["issue"][0]["diagnostics"]
