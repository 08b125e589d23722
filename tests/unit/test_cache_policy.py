"""Pure cache policy: Cache-Control parsing, freshness, keys, restricted patients."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from server.cache.policy import (
    CachePolicy,
    Directives,
    age_seconds,
    is_restricted_patient,
    parse_cache_control,
    patient_ids,
    search_key,
)
from server.fhir.search_params import SearchParamSpec
from server.fhir.search_request import SearchDeclaration, parse_search
from server.providers.base import RequestContext
from server.settings import Settings
from server.sources.config import SourceConfig
from server.sources.registry import SOURCES

CONF = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
DECL = SearchDeclaration(
    "Patient",
    (
        SearchParamSpec("family", "string", "", path="name"),
        SearchParamSpec("birthdate", "date", "", path="birthDate"),
        SearchParamSpec("given", "string", "", path="name"),
    ),
    includes=("Patient:general-practitioner",),
)


def test_cache_control_directives() -> None:
    assert parse_cache_control(None) == Directives()
    assert parse_cache_control("no-cache") == Directives(no_cache=True)
    assert parse_cache_control("No-Store") == Directives(no_store=True)
    assert parse_cache_control("max-age=30, no-cache") == Directives(no_cache=True, max_age=30)
    assert parse_cache_control('max-age="10", max-age=5') == Directives(max_age=5)
    assert parse_cache_control("max-age=-1, max-age=abc, private") == Directives()


def test_pragma_counts_only_without_cache_control() -> None:
    assert parse_cache_control(None, "no-cache") == Directives(no_cache=True)
    assert parse_cache_control("max-age=60", "no-cache") == Directives(max_age=60)


@settings(max_examples=200)
@given(st.text(max_size=80), st.one_of(st.none(), st.text(max_size=20)))
def test_any_header_parses_without_error(cache_control: str, pragma: str | None) -> None:
    directives = parse_cache_control(cache_control, pragma)
    assert directives.max_age is None or directives.max_age >= 0
    assert directives.no_store == any(
        p.strip().partition("=")[0].strip().lower() == "no-store" for p in cache_control.split(",")
    )


def test_freshness_per_type_from_the_sources_and_settings() -> None:
    settings = Settings(cache_ttl_by_type={"Observation": 5.0, "AllergyIntolerance": 60})
    policy = CachePolicy.from_settings(settings, SourceConfig.resolve(settings, SOURCES).freshness())
    assert policy.ttl("Patient") == 3600  # as PDS declares it
    assert policy.ttl("AllergyIntolerance") == 60  # the setting wins over GP Connect's 900
    assert policy.ttl("MedicationRequest") == 300
    assert policy.ttl("Observation") == 5
    assert policy.ttl("Unheard") == 300
    plain = Directives()
    assert policy.is_fresh("Patient", 3599, plain) and not policy.is_fresh("Patient", 3600, plain)
    assert not policy.is_fresh("MedicationRequest", 301, plain)
    assert not policy.is_fresh("Patient", 0, Directives(no_cache=True))
    assert not policy.is_fresh("Patient", 61, Directives(max_age=60))
    assert policy.is_fresh("Patient", 60, Directives(max_age=60))


def test_expiry_covers_the_stale_window() -> None:
    policy = CachePolicy(default_ttl=10, stale_if_error=100)
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert policy.expires_at("X", t0) == t0 + timedelta(seconds=100)
    assert CachePolicy(default_ttl=500, stale_if_error=100).expires_at("X", t0) == t0 + timedelta(seconds=500)
    assert policy.may_serve_stale(99) and not policy.may_serve_stale(100)
    assert not CachePolicy(default_ttl=10, stale_if_error=0).may_serve_stale(0)


def test_age_never_negative() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert age_seconds(t0, t0 - timedelta(seconds=5)) == 0
    assert age_seconds(t0, t0 + timedelta(seconds=5)) == 5


def test_search_key_ignores_order_and_result_only_params() -> None:
    a = parse_search([("family", "Smith"), ("birthdate", "2010")], DECL)
    b = parse_search(
        [
            ("birthdate", "2010"),
            ("_count", "5"),
            ("family", "Smith"),
            ("_summary", "true"),
            ("_include", "Patient:general-practitioner"),
            ("_elements", "name"),
            ("_total", "none"),
        ],
        DECL,
    )
    c = parse_search([("family", "Smith"), ("birthdate", "2011")], DECL)
    d = parse_search([("family:exact", "Smith"), ("birthdate", "2010")], DECL)
    assert search_key(a) == search_key(b)
    assert search_key(a) != search_key(c)
    assert search_key(a) != search_key(d)
    assert search_key(a).kind == "search" and search_key(a).type == "Patient"


@settings(max_examples=60)
@given(
    st.permutations([("family", "Smith"), ("given", "Jane"), ("birthdate", "ge2010-01-01"), ("birthdate", "le2011")])
)
def test_search_key_is_canonical_under_reordering(pairs: list[tuple[str, str]]) -> None:
    reference = search_key(
        parse_search(
            [("family", "Smith"), ("given", "Jane"), ("birthdate", "ge2010-01-01"), ("birthdate", "le2011")], DECL
        )
    )
    assert search_key(parse_search(pairs, DECL)) == reference


def test_cache_scope_is_per_caller_and_hides_the_token() -> None:
    def scope(token: str | None = None, **headers: str) -> str:
        return RequestContext("r", "http://x", user_token=token, headers=headers).caller_identity()

    assert scope() == "" and scope("") == ""  # anonymous callers share entries
    assert scope(**{"X-Request-ID": "1"}) == ""  # only identity headers count
    secret = scope("secret-token")
    assert secret and "secret" not in secret and secret == scope("secret-token")
    assert secret != scope("other-token")
    # The same token acting in another NHS role (session URID) sees its own entries.
    assert scope("t", **{"NHSD-Session-URID": "1"}) != scope("t", **{"NHSD-Session-URID": "2"})
    assert scope(**{"nhsd-session-urid": "1"}) != ""


def patient(code: str | None, system: str | None = CONF) -> dict:
    meta = {"security": [{"system": system, "code": code}]} if code else {}
    return {"resourceType": "Patient", "id": "9000000025", "meta": meta}


def test_restricted_patients() -> None:
    assert is_restricted_patient(patient("R"))
    assert is_restricted_patient(patient("V"))
    assert not is_restricted_patient(patient("U"))
    assert not is_restricted_patient(patient(None))
    assert not is_restricted_patient(patient("R", system="http://example.org/other"))
    assert not is_restricted_patient({"resourceType": "Observation", "meta": {"security": [{"code": "R"}]}})


def test_patient_ids_of_resources() -> None:
    assert patient_ids({"resourceType": "Patient", "id": "9000000009"}) == {"9000000009"}
    assert patient_ids(
        {"resourceType": "MedicationRequest", "id": "m1", "subject": {"reference": "Patient/9000000009"}}
    ) == {"9000000009"}
    assert patient_ids(
        {
            "resourceType": "ServiceRequest",
            "id": "s1",
            "subject": {"reference": "http://x/fhir/Patient/9000000017/_history/2"},
        }
    ) == {"9000000017"}
    assert patient_ids(
        {
            "resourceType": "AllergyIntolerance",
            "id": "a1",
            "patient": {"identifier": {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9000000033"}},
        }
    ) == {"9000000033"}
    assert patient_ids({"resourceType": "Organization", "id": "o1"}) == set()


def test_patient_ids_are_the_access_layers_patient_keys() -> None:
    """One answer for the cache purge, the access checks and the audit trail: a Patient's NHS
    number identifiers count, and a reference is read wherever `Patient/{id}` stands in it."""
    pas_patient = {
        "resourceType": "Patient",
        "id": "pas-H1",
        "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9000000025"}],
    }
    assert patient_ids(pas_patient) == {"pas-H1", "9000000025"}
    assert patient_ids({"resourceType": "Coverage", "beneficiary": {"reference": "Patient/9000000009"}}) == {
        "9000000009"
    }
    assert patient_ids({"resourceType": "MedicationRequest", "subject": {"reference": "Group/1"}}) == set()
