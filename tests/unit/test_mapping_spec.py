"""The spec loader checks the mapping file itself and lists every mistake."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mappings.loading import SpecError
from mappings.spec import load_profile, parse_profile


def _spec(fields: list[dict], **extra: object) -> dict:
    return {"profile": "test-pas", "records": {"Patient": {"resource": "Patient", "fields": fields}}, **extra}


def test_shipped_profiles_load() -> None:
    pas = load_profile("pas/reference_pas")
    assert set(pas.records) == {"Patient", "AllergyIntolerance", "MedicationRequest", "ServiceRequest"}
    assert pas.constants["HOSPITAL_NUMBER"].startswith("https://")
    hl7 = load_profile("hl7/adt_pid")
    assert hl7.options["repeat_keys"] == {"PID.3": 5, "MRG.1": 5}


def test_yaml_numbers_and_booleans_as_codes_are_refused() -> None:
    # Unquoted 01 reads as 1 and N as False: codes would silently change.
    raw = yaml.safe_load(
        "profile: p\nvalue_maps: {status: {01: '01', N: unknown}}\n"
        "records: {Patient: {resource: Patient, fields: [{pas: a, fhir: b}]}}"
    )
    with pytest.raises(SpecError, match="quoted strings"):
        parse_profile(raw)


def test_every_mistake_is_listed_at_once() -> None:
    raw = _spec(
        [
            {"pas": "a", "fhir": "name[0", "transform": "nope"},
            {"pas": "b", "fhir": "identifier[system={MISSING}].value", "values": "unknown_map"},
            {"pas": "c", "fhir": "gender", "pattern": "(", "colour": "red"},
            {"pas": "c", "fhir": "birthDate", "requires": ["zzz"]},
            {"pas": "bad path!", "fhir": "x"},
        ]
    )
    with pytest.raises(SpecError) as err:
        parse_profile(raw)
    text = " | ".join(err.value.mistakes)
    for expected in (
        "unbalanced '['",
        "unknown transform 'nope'",
        "unknown constant {MISSING}",
        "unknown value map 'unknown_map'",
        "bad pattern",
        "unknown keys ['colour']",
        "'c' is mapped twice",
        "requires unknown field 'zzz'",
        "dotted path",
    ):
        assert expected in text, expected


def test_top_level_mistakes() -> None:
    with pytest.raises(SpecError) as err:
        parse_profile({"profile": "Bad Name", "records": {}, "extra": 1})
    text = " | ".join(err.value.mistakes)
    assert "lower-case name" in text and "'records' must be a non-empty table" in text and "extra" in text


def test_constants_are_substituted_in_paths_and_fixed_values() -> None:
    profile = parse_profile(
        _spec(
            [
                {
                    "pas": "hn",
                    "fhir": "identifier[system={SYS}].value",
                    "fixed": {"identifier[system={SYS}].use": "{USE}"},
                }
            ],
            constants={"SYS": "https://x.example/id", "USE": "usual"},
        )
    )
    rule = profile.record("Patient").rule("hn")
    assert rule.fhir == "identifier[system=https://x.example/id].value"
    assert rule.fixed == (("identifier[system=https://x.example/id].use", "usual"),)


def test_unreadable_files_are_spec_errors(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read"):
        load_profile(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("profile: [unclosed")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_profile(broken)
