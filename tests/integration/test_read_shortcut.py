"""The read shortcut (server/fhir/read_shortcut.py) answers exactly as the full stack does.

Two façades on loopback, one emulator: A with the shortcut, B with FACADE_READ_SHORTCUT off
(both with the cache, so the same requests meet the same cache states in the same order).
Every request below goes to A, then to B, with the same X-Request-ID; then the answers
are compared: status, every header but Date and Server (Vary as a set of names, Age within
a second), the body, and the AuditEvent each façade recorded for it (all but its id and
time). The requests cover each way a plain read ends: a hit, a miss, 304s, a superseded
and an invalidated number, restricted patients, unknown and malformed ids, a type not
served, each refusal (no token, a bad token, scopes, role, patient compartment, a bad
purpose), and each type's read. A's shortcut is checked to have answered them.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

import server.app
from server.app import create_app
from server.fhir.read_shortcut import ReadShortcut
from server.serving import serving
from server.settings import Settings
from tests.support.access import AUDITOR, CLINICIAN, CPT, JANE, JANE_APP, JAYNE, auth, by_request_id, matches
from tests.support.servers import Emulator, free_port
from tests.support.tokens import facade_access_settings, token

SKIPPED_HEADERS = {"date", "server"}
RESTRICTED, VERY_RESTRICTED, SUPERSEDED, INVALIDATED = "9000000025", "9000000084", "9000000041", "9000000076"
NO_READ_SCOPE = token("user/Observation.rs", roles=["clinician"])


class Facade:
    def __init__(self, url: str, app: Any, http: aiohttp.ClientSession) -> None:
        self.url, self.app, self.http = url, app, http

    async def get(self, path: str, headers: dict[str, str]) -> tuple[int, list[tuple[str, str]], bytes]:
        """Status, headers and body, with this façade's own base URL written as {base}."""
        async with self.http.get(self.url + path, headers=headers) as resp:
            raw = [(k.lower(), v.replace(self.url, "{base}")) for k, v in resp.headers.items()]
            return resp.status, raw, (await resp.read()).replace(self.url.encode(), b"{base}")

    def shortcut(self) -> ReadShortcut | None:
        """The app's ReadShortcut, once its middleware stack is built (after a request)."""
        layer = getattr(self.app.middleware_stack, "app", None)  # inside ServerErrorMiddleware
        return layer if isinstance(layer, ReadShortcut) else None


@pytest.fixture
async def pair(emulator: Emulator, http: aiohttp.ClientSession) -> AsyncIterator[tuple[Facade, Facade]]:
    async with facade(emulator, http, read_shortcut=True) as a, facade(emulator, http, read_shortcut=False) as b:
        yield a, b


def facade(emulator: Emulator, http: aiohttp.ClientSession, **overrides: Any) -> Any:
    @contextlib.asynccontextmanager
    async def running() -> AsyncIterator[Facade]:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        settings = Settings(
            **{
                "base_url": base,
                "port": port,
                "cache_enabled": True,
                "console": "off",
                **facade_access_settings(base),
                **emulator.upstream_settings(emulator.sources),
                **overrides,
            }
        )
        app = create_app(settings, emulator.sources)
        async with serving(app, port=port, ready_path="/metadata") as url:
            yield Facade(url, app, http)

    return running()


def comparable_headers(headers: list[tuple[str, str]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in headers:
        if name in SKIPPED_HEADERS:
            continue
        if name == "vary":
            out[name] = frozenset(v.strip().lower() for v in value.split(","))
        elif name == "age":
            out[name] = int(value)
        else:
            assert name not in out, f"{name} sent twice"
            out[name] = value
    return out


def assert_same_answer(case: str, a: tuple[int, list[tuple[str, str]], bytes], b: Any) -> None:
    status_a, headers_a, body_a = a
    status_b, headers_b, body_b = b
    assert status_a == status_b, case
    ha, hb = comparable_headers(headers_a), comparable_headers(headers_b)
    age_a, age_b = ha.pop("age", None), hb.pop("age", None)
    assert (age_a is None) == (age_b is None), case
    if age_a is not None:
        assert abs(age_a - age_b) <= 1, case
    assert ha == hb, case
    assert body_a == body_b, case


def comparable_event(event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k not in ("id", "recorded", "meta", "source")} | {
        "source": {k: v for k, v in event["source"].items() if k != "site"}  # each façade's own base URL
    }


async def audit_of(facade: Facade, request_id: str) -> dict[str, Any]:
    async with facade.http.get(f"{facade.url}/AuditEvent?_count=100&_sort=-date", headers=auth(AUDITOR)) as resp:
        assert resp.status == 200
        found = by_request_id(matches(await resp.json(content_type=None)), request_id)
    assert len(found) == 1, f"one AuditEvent per request, found {len(found)}"
    return found[0]


async def ids_of(facade: Facade, query: str, headers: dict[str, str]) -> list[str]:
    status, _, body = await facade.get(query, {**auth(CLINICIAN), **headers})
    assert status == 200
    return [e["resource"]["id"] for e in orjson.loads(body).get("entry", []) if e["search"]["mode"] == "match"]


async def test_the_shortcut_answers_and_audits_as_the_full_stack(pair: tuple[Facade, Facade]) -> None:
    a, b = pair
    allergy = (await ids_of(b, f"/AllergyIntolerance?patient={JANE}", {}))[0]
    prescription = (await ids_of(b, f"/MedicationRequest?patient={JANE}", CPT))[0]
    clinician = auth(CLINICIAN)
    cases: list[tuple[str, str, dict[str, str]]] = [
        ("miss", f"/Patient/{JANE}", clinician),
        ("hit", f"/Patient/{JANE}", clinician),
        ("another patient", f"/Patient/{JAYNE}", clinician),
        ("restricted", f"/Patient/{RESTRICTED}", clinician),
        ("restricted again", f"/Patient/{RESTRICTED}", clinician),
        ("very restricted", f"/Patient/{VERY_RESTRICTED}", clinician),
        ("superseded", f"/Patient/{SUPERSEDED}", clinician),
        ("superseded again", f"/Patient/{SUPERSEDED}", clinician),
        ("invalidated", f"/Patient/{INVALIDATED}", clinician),
        ("unknown patient", "/Patient/9000000999", clinician),
        ("malformed id", "/Patient/a_b", clinician),
        ("PAS id not held", "/Patient/pas-H999", clinician),
        ("type not served", "/Observation/1", clinician),
        ("not a type", "/patient/1", clinician),
        ("allergy", f"/AllergyIntolerance/{allergy}", clinician),
        ("allergy hit", f"/AllergyIntolerance/{allergy}", clinician),
        ("prescription", f"/MedicationRequest/{prescription}", {**clinician, **CPT}),
        ("prescription without CPT session", f"/MedicationRequest/{prescription}", clinician),
        ("no token", f"/Patient/{JANE}", {}),
        ("not bearer", f"/Patient/{JANE}", {"Authorization": "Basic dXNlcjpwYXNz"}),
        ("bad token", f"/Patient/{JANE}", auth("not.a.token")),
        ("no read scope", f"/Patient/{JANE}", auth(NO_READ_SCOPE)),
        ("auditor reads a patient", f"/Patient/{JANE}", auth(AUDITOR)),
        ("own patient", f"/Patient/{JANE}", auth(JANE_APP)),
        ("another patient's record", f"/Patient/{JAYNE}", auth(JANE_APP)),
        ("bad purpose", f"/Patient/{JANE}", {**clinician, "X-Purpose-Of-Use": "NOT-A-PURPOSE"}),
        ("break glass", f"/Patient/{JANE}", {**clinician, "X-Purpose-Of-Use": "ETREAT"}),
        ("accept json", f"/Patient/{JANE}", {**clinician, "Accept": "application/json"}),
        ("accept R4", f"/Patient/{JANE}", {**clinician, "Accept": "application/fhir+json; fhirVersion=4.0"}),
        ("accept two headers", f"/Patient/{JANE}", {**clinician, "Accept": "text/html, */*;q=0.1"}),
        ("no-cache", f"/Patient/{JANE}", {**clinician, "Cache-Control": "no-cache"}),
        ("no-store", f"/Patient/{JANE}", {**clinician, "Cache-Control": "no-store"}),
        ("not modified since", f"/Patient/{JANE}", {**clinician, "If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"}),
        ("modified since", f"/Patient/{JANE}", {**clinician, "If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}),
        ("other etag", f"/Patient/{JANE}", {**clinician, "If-None-Match": 'W/"nope"'}),
        ("any etag", f"/Patient/{JANE}", {**clinician, "If-None-Match": "*"}),
        ("traceparent", f"/Patient/{JANE}", {**clinician, "traceparent": f"00-{'a' * 32}-{'b' * 16}-01"}),
        ("gzip", f"/Patient/{JANE}", {**clinician, "Accept-Encoding": "gzip"}),
    ]
    etag = None
    for case, path, headers in cases:
        request_id = str(uuid.uuid4())
        sent = {**headers, "X-Request-ID": request_id}
        answer_a = await a.get(path, sent)
        answer_b = await b.get(path, sent)
        assert_same_answer(case, answer_a, answer_b)
        assert comparable_event(await audit_of(a, request_id)) == comparable_event(await audit_of(b, request_id)), case
        if case == "hit":
            etag = dict(answer_a[1])["etag"]
    assert etag is not None
    request_id = str(uuid.uuid4())
    conditional = {**clinician, "If-None-Match": etag, "X-Request-ID": request_id}
    answer_a, answer_b = await a.get(f"/Patient/{JANE}", conditional), await b.get(f"/Patient/{JANE}", conditional)
    assert answer_a[0] == 304
    assert_same_answer("matching etag", answer_a, answer_b)
    shortcut = a.shortcut()
    assert shortcut is not None and b.shortcut() is None
    assert shortcut.answered == len(cases) + 1  # every one of them went to the read handler


async def test_a_client_request_id_that_is_no_uuid_is_replaced_alike(pair: tuple[Facade, Facade]) -> None:
    a, b = pair
    for facade in (a, b):
        status, headers, _ = await facade.get(f"/Patient/{JANE}", {**auth(CLINICIAN), "X-Request-ID": JANE})
        assert status == 200
        minted = dict(headers)["x-request-id"]
        assert minted != JANE and uuid.UUID(minted)


async def test_a_body_large_enough_to_compress_is_compressed_alike(
    emulator: Emulator, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With gzip's minimum below a Patient's size, the shortcut's answers go through gzip as
    the stack's do: compressed for a client that accepts it, Vary and length alike."""
    monkeypatch.setattr(server.app, "GZIP_MINIMUM_SIZE", 256)
    async with facade(emulator, http, read_shortcut=True) as a, facade(emulator, http, read_shortcut=False) as b:
        for accept_encoding in ("gzip", "identity", "gzip", "br"):
            sent = {**auth(CLINICIAN), "Accept-Encoding": accept_encoding, "X-Request-ID": str(uuid.uuid4())}
            answer_a, answer_b = await a.get(f"/Patient/{JANE}", sent), await b.get(f"/Patient/{JANE}", sent)
            assert_same_answer(accept_encoding, answer_a, answer_b)
            encoding = dict(answer_a[1]).get("content-encoding")
            assert encoding == ("gzip" if accept_encoding == "gzip" else None)
        shortcut = a.shortcut()
        assert shortcut is not None and shortcut.answered == 4


async def test_an_unexpected_failure_is_the_same_500_and_audit(pair: tuple[Facade, Facade]) -> None:
    a, b = pair

    async def broken(resource_id: str, ctx: Any) -> dict[str, Any]:
        raise RuntimeError(f"unexpected, quoting {resource_id}")  # a message that names the patient

    for side in (a, b):
        side.app.state.runtime.registry.get("Patient").read = broken
    request_id = str(uuid.uuid4())
    sent = {**auth(CLINICIAN), "X-Request-ID": request_id}
    answer_a, answer_b = await a.get(f"/Patient/{JANE}", sent), await b.get(f"/Patient/{JANE}", sent)
    assert_same_answer("unexpected failure", answer_a, answer_b)
    status, headers, body = answer_a
    assert status == 500 and dict(headers)["cache-control"] == "no-store"
    outcome = orjson.loads(body)
    assert request_id in outcome["issue"][0]["diagnostics"] and JANE.encode() not in body
    event_a, event_b = await audit_of(a, request_id), await audit_of(b, request_id)
    assert comparable_event(event_a) == comparable_event(event_b)
    assert event_a["outcome"] == "8" and "internal error" in event_a["outcomeDesc"]


async def test_an_audit_trail_that_cannot_record_refuses_alike(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Any
) -> None:
    """MongoDB unreachable and the spool unwritable: the same 503 both ways, for a caller
    allowed and for one refused (whose refusal cannot be recorded either)."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    broken = {
        "mongodb_uri": "mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=200&connectTimeoutMS=200",
        "mongodb_timeout_ms": 200,
        "audit_spool_dir": blocker / "spool",
        "cache_enabled": False,
    }
    async with (
        facade(emulator, http, read_shortcut=True, **broken) as a,
        facade(emulator, http, read_shortcut=False, **broken) as b,
    ):
        for case, headers in (("allowed", auth(CLINICIAN)), ("no token", {})):
            sent = {**headers, "X-Request-ID": str(uuid.uuid4())}
            answer_a, answer_b = await a.get(f"/Patient/{JANE}", sent), await b.get(f"/Patient/{JANE}", sent)
            assert_same_answer(case, answer_a, answer_b)
            assert answer_a[0] == 503 and dict(answer_a[1])["retry-after"] == "5"
            assert JANE.encode() not in answer_a[2]
        shortcut = a.shortcut()
        assert shortcut is not None and shortcut.answered == 2
