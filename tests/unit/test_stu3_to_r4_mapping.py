"""Unit tests of the declared STU3 -> R4 mapping: loader checks, engine, each transform."""

from __future__ import annotations

from typing import Any

import pytest

from mappings.loading import SpecError
from mappings.stu3_to_r4 import transforms as t
from mappings.stu3_to_r4.engine import apply_rules
from mappings.stu3_to_r4.rules import load_mapping, parse_mapping
from server.sources.gpconnect.mapping import (
    ALLERGY_RULES,
    allergies_from_structured_record,
    convert_allergy,
    issued_id,
    nhs_number_of,
    nka_id,
)
from tests.support.fhir_validation import validate_r4

NHS = "9000000009"
STATUS_MAP = {"system": "http://example.org/status", "codes": {"active": "Active"}}


def ctx(**kw: Any) -> t.MappingContext:
    return t.MappingContext(nhs_number=NHS, **kw)


# --- loader -------------------------------------------------------------------------


def _doc(rules: list[Any], **extra: Any) -> dict[str, Any]:
    return {
        "resource": "X",
        "source_profile": "s",
        "target_profile": "t",
        "value_maps": {"vm": {"codes": {"a": "A"}}},
        "rules": rules,
        **extra,
    }


@pytest.mark.parametrize(
    "rules, message",
    [
        ([{"from": "a", "to": "b", "transform": "nope"}], "unknown transform"),
        ([{"from": "a", "to": "b", "transform": "code_map", "args": {"value_map": "missing"}}], "unknown value map"),
        ([{"from": "a"}], "needs 'from' and 'to'"),
        ([{"from": "a", "to": "b", "extra": 1}], "unknown rule keys"),
        ([{"from": "a", "to": "b", "transform": "copy", "rules": [{"from": "c", "to": "d"}]}], "not both"),
        ([], "at least one rule"),
    ],
)
def test_loader_rejects_broken_mapping_files(rules: list[Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_mapping(_doc(rules))


def test_loader_resolves_value_maps_and_nested_rules() -> None:
    spec = parse_mapping(
        _doc(
            [
                {"from": "a", "to": "b", "transform": "code_map", "args": {"value_map": "vm"}},
                {"from": "r", "to": "r", "many": True, "require": ["x"], "rules": [{"from": "x", "to": "y"}]},
            ],
            gpconnect={"k": 1},
        )
    )
    assert spec.rules[0].args["value_map"] == {"codes": {"a": "A"}}
    assert spec.rules[1].rules[0].transform == "copy" and spec.rules[1].require == ("x",)
    assert spec.extra == {"gpconnect": {"k": 1}}


def test_shipped_allergy_mapping_loads_with_declared_sections() -> None:
    spec = load_mapping(ALLERGY_RULES)
    assert spec.target_profile.endswith("UKCore-AllergyIntolerance")
    assert {r.source: r.target for r in spec.rules}["assertedDate"] == "recordedDate"
    assert spec.extra["gpconnect"]["no_known_allergy"]["code"] == "716186003"


# --- engine -------------------------------------------------------------------------


def test_engine_maps_many_nested_and_drops_items_missing_required_elements() -> None:
    spec = parse_mapping(
        _doc(
            [
                {"from": "r", "to": "out", "many": True, "require": ["y"], "rules": [{"from": "x", "to": "y"}]},
                {"from": "s", "to": "status", "transform": "code_map", "args": {"value_map": "vm"}},
            ]
        )
    )
    c = ctx()
    out = apply_rules(spec.rules, {"r": [{"x": 1}, {"z": 2}], "s": "zzz"}, c)
    assert out == {"out": [{"y": 1}]}
    assert len(c.warnings) == 2  # the dropped reaction-like item and the unknown code


# --- transforms ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, kept",
    [
        ("2019", True),
        ("2019-12", True),
        ("2019-12-10", True),
        ("2019-12-10T13:00:00+00:00", True),
        ("2019-12-10T13:00:00.123Z", True),
        ("2019-12-10T13:00", False),
        ("10/12/2019", False),
        (20191210, False),
        ("2019-13-01", False),
    ],
)
def test_date_time(value: Any, kept: bool) -> None:
    c = ctx()
    assert (t.date_time(value, {}, c) == value) is kept
    assert bool(c.warnings) is not kept


def test_code_to_codeable_concept() -> None:
    c = ctx()
    assert t.code_to_codeable_concept("active", {"value_map": STATUS_MAP}, c) == {
        "coding": [{"system": "http://example.org/status", "code": "active", "display": "Active"}]
    }
    assert t.code_to_codeable_concept("bogus", {"value_map": STATUS_MAP}, c) is None and c.warnings


def test_code_map() -> None:
    c = ctx()
    vm = {"codes": {"environment": "environment"}}
    assert t.code_map("environment", {"value_map": vm}, c) == "environment"
    assert t.code_map("plants", {"value_map": vm}, c) is None and c.warnings


def test_codeable_concept_rewrites_description_extensions_and_keeps_others() -> None:
    other = {"url": "http://example.org/ext", "valueString": "kept"}
    concept = {
        "coding": [
            {
                "system": "http://snomed.info/sct",
                "code": "1",
                "extension": [
                    {
                        "url": t.STU3_SCT_DESC_ID,
                        "extension": [
                            {"url": "DescriptionID", "valueId": "99"},
                            {"url": "descriptionDisplay", "valueString": "Term"},
                        ],
                    },
                    other,
                ],
            }
        ],
        "text": "original",
    }
    assert t.codeable_concept(concept, {}, ctx()) == {
        "coding": [
            {
                "system": "http://snomed.info/sct",
                "code": "1",
                "extension": [
                    {"url": t.R4_SCT_DESC_ID, "valueId": "99"},
                    {"url": t.R4_SCT_DESC_DISPLAY, "valueString": "Term"},
                    other,
                ],
            }
        ],
        "text": "original",
    }
    assert t.codeable_concept("not a concept", {}, ctx()) is None
    assert t.codeable_concept({}, {}, ctx()) is None


def test_patient_reference_points_at_the_facade_patient() -> None:
    assert t.patient_reference({"reference": "Patient/gp-local-id"}, {}, ctx()) == {
        "reference": f"Patient/{NHS}",
        "identifier": {"system": t.NHS_NUMBER_SYSTEM, "value": NHS},
    }


def test_bundle_reference_resolves_role_to_practitioner_and_organisation() -> None:
    bundle = {
        "PractitionerRole/r": {"resourceType": "PractitionerRole", "practitioner": {"reference": "Practitioner/p"}},
        "Practitioner/p": {
            "resourceType": "Practitioner",
            "name": [{"family": "Ng", "given": ["Li"], "prefix": ["Dr"]}],
            "identifier": [{"system": "other", "value": "o"}, {"system": t.SDS_USER_ID_SYSTEM, "value": "G1"}],
        },
        "Organization/o": {
            "resourceType": "Organization",
            "name": "Surgery",
            "identifier": [{"system": t.ODS_SYSTEM, "value": "Y1"}],
        },
        "Device/d": {"resourceType": "Device"},
    }
    c = ctx(resolve=bundle.get)
    assert t.bundle_reference({"reference": "PractitionerRole/r"}, {}, c) == {
        "type": "Practitioner",
        "identifier": {"system": t.SDS_USER_ID_SYSTEM, "value": "G1"},
        "display": "Dr Li Ng",
    }
    assert t.bundle_reference({"reference": "Organization/o"}, {}, c) == {
        "type": "Organization",
        "identifier": {"system": t.ODS_SYSTEM, "value": "Y1"},
        "display": "Surgery",
    }
    assert t.bundle_reference({"reference": "Practitioner/gone", "display": "Dr X"}, {}, c) == {"display": "Dr X"}
    assert not c.warnings
    assert t.bundle_reference({"reference": "Practitioner/gone"}, {}, c) is None
    assert t.bundle_reference({"reference": "Device/d"}, {}, c) is None
    assert len(c.warnings) == 2


def test_complex_extension_renames_parts_and_ignores_other_urls() -> None:
    args = {"source_url": "s", "target_url": "t", "parts": {"endDate": "endDate"}}
    value = [
        {"url": "s", "extension": [{"url": "endDate", "valueDateTime": "2020"}, {"url": "other", "valueString": "x"}]},
        {"url": "unrelated", "valueString": "y"},
    ]
    assert t.complex_extension(value, args, ctx()) == [
        {"url": "t", "extension": [{"url": "endDate", "valueDateTime": "2020"}]}
    ]
    assert t.complex_extension([{"url": "unrelated"}], args, ctx()) is None


# --- allergy-level rules ------------------------------------------------------------


def _stu3(**kw: Any) -> dict[str, Any]:
    return {
        "resourceType": "AllergyIntolerance",
        "id": "a1",
        "verificationStatus": "confirmed",
        "patient": {"reference": "Patient/x"},
        "code": {"text": "Something"},
        **kw,
    }


def test_missing_clinical_status_takes_the_lists_status() -> None:
    active = convert_allergy(_stu3(), NHS, "active_list", ctx())
    resolved = convert_allergy(_stu3(), NHS, "resolved_list", ctx())
    assert active["clinicalStatus"]["coding"][0]["code"] == "active"
    assert resolved["clinicalStatus"]["coding"][0]["code"] == "resolved"
    validate_r4(active), validate_r4(resolved)


def test_entered_in_error_has_no_clinical_status() -> None:
    r4 = convert_allergy(
        _stu3(verificationStatus="entered-in-error", clinicalStatus="active"), NHS, "active_list", ctx()
    )
    assert "clinicalStatus" not in r4
    validate_r4(r4)


def test_ids_encode_the_patient_and_are_recognised() -> None:
    rid = issued_id(NHS, "sys|value")
    assert nhs_number_of(rid) == NHS and nhs_number_of(nka_id(NHS)) == NHS
    assert issued_id(NHS, "sys|value") == rid != issued_id(NHS, "sys|other")
    for foreign in ("9000000009", "gpc-900000000-abc", "gpc-9000000009-ABCDEF0123456789", "x-9000000009-nka"):
        assert nhs_number_of(foreign) is None


def _record(*lists: dict[str, Any], allergies: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in (*lists, *allergies)]}


def _list(code: str, **kw: Any) -> dict[str, Any]:
    return {
        "resourceType": "List",
        "status": "current",
        "mode": "snapshot",
        "title": "t",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": code}]},
        **kw,
    }


def test_nil_known_active_list_becomes_one_no_known_allergy() -> None:
    empty = {"coding": [{"code": "nilknown"}], "text": "No known allergies"}
    out = allergies_from_structured_record(
        _record(_list("886921000000105", emptyReason=empty)), NHS, include_resolved=False
    )
    (nka,) = out.allergies
    assert nka["id"] == nka_id(NHS)
    assert nka["code"]["coding"][0]["code"] == "716186003" and nka["code"]["text"] == "No known allergies"
    assert nka["verificationStatus"]["coding"][0]["code"] == "confirmed"
    validate_r4(nka)
    assert not out.information and not out.warnings


def test_empty_list_without_nil_known_is_information_not_a_resource() -> None:
    out = allergies_from_structured_record(
        _record(_list("886921000000105", note=[{"text": "Information not available"}])), NHS, include_resolved=False
    )
    assert out.allergies == []
    assert out.information == ["No active allergies in the GP record: Information not available"]


def test_nil_known_with_entries_returns_the_entries_and_warns() -> None:
    allergy = _stu3(id="a1")
    lst = _list(
        "886921000000105",
        emptyReason={"coding": [{"code": "nilknown"}]},
        entry=[{"item": {"reference": "AllergyIntolerance/a1"}}],
    )
    out = allergies_from_structured_record(_record(lst, allergies=(allergy,)), NHS, include_resolved=False)
    assert [a["code"]["text"] for a in out.allergies] == ["Something"]
    assert any("no known allergies" in w for w in out.warnings)


def test_list_warning_codes_reach_the_client_and_unknown_lists_are_ignored() -> None:
    warn = [
        {
            "url": "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-CareConnect-GPC-ListWarningCode-1",
            "valueCode": "data-in-transit",
        }
    ]
    meds = _list("933361000000108", entry=[{"item": {"reference": "AllergyIntolerance/a1"}}])
    out = allergies_from_structured_record(
        _record(_list("886921000000105", extension=warn), meds, allergies=(_stu3(),)), NHS, include_resolved=False
    )
    assert out.allergies == []
    assert any("transfer" in w for w in out.warnings)
