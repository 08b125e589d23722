"""_summary/_elements views, and the CapabilityStatement built from the registry alone."""

from __future__ import annotations

from typing import Any, ClassVar

from capability.statement import capability_statement
from server.fhir.search_params import SearchParamSpec
from server.fhir.subsetting import apply_view, mandatory_elements, summary_elements
from server.providers.base import RequestContext, ResourceProvider
from server.providers.registry import ProviderRegistry
from server.settings import Settings
from server.sources.pds.emulator_data import PATIENTS
from server.sources.pds.provider import PatientFromPDS
from tests.support.fhir_validation import validate_r4

FULL = PATIENTS["9000000009"]


def tags(resource: dict[str, Any]) -> list[str]:
    return [t["code"] for t in resource.get("meta", {}).get("tag", [])]


# -- subsetting -------------------------------------------------------------------------------


def test_patient_summary_elements_come_from_the_model() -> None:
    keys = summary_elements("Patient")
    assert {"identifier", "name", "gender", "birthDate", "address", "telecom", "link"} <= keys
    assert not {"contact", "photo", "communication", "generalPractitioner", "extension"} & keys


def test_summary_true_drops_non_summary_and_tags_subsetted() -> None:
    full = {**FULL, "photo": [{"contentType": "image/png"}], "text": {"status": "generated", "div": "<div/>"}}
    view = apply_view(full, "true", ())
    assert "photo" not in view and "text" not in view and "extension" not in view
    assert view["name"] == FULL["name"]
    assert tags(view) == ["SUBSETTED"]
    assert view["meta"]["security"] == FULL["meta"]["security"]  # meta kept, only a tag added
    assert "tag" not in FULL["meta"]  # original untouched
    validate_r4(view)


def test_elements_keeps_named_plus_mandatory_and_tags() -> None:
    view = apply_view(FULL, None, ("gender",))
    assert set(view) == {"resourceType", "id", "meta", "gender"}
    assert tags(view) == ["SUBSETTED"]
    validate_r4(view)


def test_elements_choice_base_name() -> None:
    resource = {"resourceType": "Patient", "id": "1", "deceasedDateTime": "2020-01-01", "gender": "male"}
    assert "deceasedDateTime" in apply_view(resource, None, ("deceased",))


def test_subsetted_tag_is_never_duplicated() -> None:
    once = apply_view(FULL, "true", ())
    twice = apply_view(once, None, ("gender",))
    assert tags(twice) == ["SUBSETTED"]


def test_summary_data_and_text() -> None:
    full = {**FULL, "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">x</div>'}}
    assert "text" not in apply_view(full, "data", ())
    text_view = apply_view(full, "text", ())
    assert set(text_view) == {"resourceType", "id", "meta", "text"}
    validate_r4(text_view)


def test_no_view_returns_resource_unchanged() -> None:
    assert apply_view(FULL, None, ()) is FULL


def test_mandatory_elements_of_a_type_with_required_fields() -> None:
    assert {"status", "intent", "subject"} <= mandatory_elements("MedicationRequest")
    assert summary_elements("NotAType") == frozenset({"resourceType", "id", "meta"})


# -- capability -------------------------------------------------------------------------------


class TinyProvider(ResourceProvider):
    resource_type: ClassVar[str] = "Device"
    profile: ClassVar[str | None] = "https://example.org/StructureDefinition/TinyDevice"
    documentation: ClassVar[str] = "A provider that exists only in this test"
    interactions: ClassVar[tuple[str, ...]] = ("read",)
    search_params: ClassVar[tuple[SearchParamSpec, ...]] = (
        SearchParamSpec("serial", "token", "Serial number", "http://example.org/sp/serial"),
    )
    includes: ClassVar[tuple[str, ...]] = ("Device:patient",)

    async def read(self, resource_id: str, ctx: RequestContext) -> dict[str, Any]:
        return {"resourceType": "Device", "id": resource_id}


def registry(*providers: ResourceProvider) -> ProviderRegistry:
    reg = ProviderRegistry()
    for p in providers:
        reg.register(p)
    return reg


def statement(reg: ProviderRegistry, terse: bool = False) -> dict[str, Any]:
    return capability_statement(reg, Settings(), "http://facade.test", terse=terse)


def test_statement_describes_each_provider_from_its_declarations() -> None:
    cs = statement(registry(PatientFromPDS(None), TinyProvider()))  # type: ignore[arg-type]
    validate_r4(cs)
    assert cs["fhirVersion"] == "4.0.1" and cs["kind"] == "instance" and cs["status"] == "active"
    assert cs["implementation"]["url"] == "http://facade.test"
    rest = cs["rest"][0]
    assert rest["mode"] == "server"
    assert [c["code"] for c in rest["security"]["service"][0]["coding"]] == ["OAuth", "SMART-on-FHIR"]
    by_type = {r["type"]: r for r in rest["resource"]}
    assert list(by_type) == ["Device", "Patient"]
    device = by_type["Device"]
    assert device["profile"] == TinyProvider.profile
    assert device["interaction"] == [{"code": "read"}]
    assert device["versioning"] == "no-version"
    assert device["searchInclude"] == ["Device:patient"]
    assert device["searchParam"] == [
        {
            "name": "serial",
            "type": "token",
            "definition": "http://example.org/sp/serial",
            "documentation": "Serial number (modifiers :missing, :not, :text)",  # the parser's list
        },
        {  # every type gets _id (server.providers.base.ID_PARAM)
            "name": "_id",
            "type": "token",
            "definition": "http://hl7.org/fhir/SearchParameter/Resource-id",
            "documentation": "The resource id (logical id): that resource or none (modifiers :not)",
        },
    ]
    assert device["conditionalRead"] == "not-match"  # no meta.lastUpdated declared
    patient = by_type["Patient"]
    assert [p["name"] for p in patient["searchParam"]] == [s.name for s in PatientFromPDS.search_params]
    assert {i["code"] for i in patient["interaction"]} == {"read", "vread", "search-type"}


def test_statement_has_nothing_the_registry_does_not_hold() -> None:
    cs = statement(registry(TinyProvider()))
    assert [r["type"] for r in cs["rest"][0]["resource"]] == ["Device"]
    assert statement(registry())["rest"][0]["resource"] == []


def test_terse_statement_drops_documentation_and_is_tagged() -> None:
    cs = statement(registry(PatientFromPDS(None)), terse=True)  # type: ignore[arg-type]
    validate_r4(cs)
    assert tags(cs) == ["SUBSETTED"]
    patient = cs["rest"][0]["resource"][0]
    assert "documentation" not in patient
    assert all("documentation" not in p for p in patient["searchParam"])
    assert all("documentation" not in p for p in cs["rest"][0]["searchParam"])


def test_registry_refuses_duplicates_and_unknown_types() -> None:
    reg = registry(TinyProvider())
    try:
        reg.register(TinyProvider())
    except ValueError as exc:
        assert "Device" in str(exc)
    else:  # pragma: no cover - the assertion is the point
        raise AssertionError("a second Device provider was accepted")
    assert reg.find("Patient") is None
