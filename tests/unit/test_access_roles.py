"""The role table (server/access/roles.py, roles.yaml): the shipped file, job role codes, refusal of bad files."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from server.access.roles import DEFAULT_POLICY, PolicyFileError, RoleTable, load_role_table, parse_role_table


@pytest.fixture(scope="module")
def table() -> RoleTable:
    return load_role_table()


def shipped_document() -> dict[str, Any]:
    return yaml.safe_load(DEFAULT_POLICY.read_text(encoding="utf-8"))


def test_shipped_file_loads_with_its_five_roles(table: RoleTable) -> None:
    assert set(table.roles) == {"clinician", "clerk", "pas-system", "auditor", "admin"}
    assert table.console_roles == {"auditor", "admin"}
    assert table.clinical_types == {"MedicationRequest", "ServiceRequest", "AllergyIntolerance"}
    assert table.clinical_purposes == {"TREAT", "ETREAT"}
    assert table.break_glass_purposes == {"ETREAT"}


def test_load_from_an_explicit_path_reads_that_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(
        "roles:\n  reader:\n    fhir: {Patient: r}\nclinical_types: []\nclinical_purposes: []\n", encoding="utf-8"
    )
    loaded = load_role_table(path)
    assert set(loaded.roles) == {"reader"}
    assert loaded.fhir_allows({"reader"}, "Patient", "r")
    assert not loaded.fhir_allows({"reader"}, "Patient", "s")
    assert loaded.clinical_types == frozenset() and loaded.job_roles == {}


@pytest.mark.parametrize("rtype", ["Patient", "MedicationRequest", "ServiceRequest", "AllergyIntolerance"])
def test_clinician_reads_and_searches_demographics_and_clinical_types(table: RoleTable, rtype: str) -> None:
    assert table.fhir_allows({"clinician"}, rtype, "r")
    assert table.fhir_allows({"clinician"}, rtype, "s")
    for letter in "cud":
        assert not table.fhir_allows({"clinician"}, rtype, letter)


def test_clinician_has_no_pas_action_and_no_audit_access(table: RoleTable) -> None:
    assert not table.fhir_allows({"clinician"}, "AuditEvent", "r")
    for action in ("patients.read", "patients.write", "related.read", "hl7"):
        assert not table.pas_allows({"clinician"}, action)


def test_clerk_sees_demographics_only_and_registers_in_pas(table: RoleTable) -> None:
    assert table.fhir_allows({"clerk"}, "Patient", "r") and table.fhir_allows({"clerk"}, "Patient", "s")
    for rtype in ("MedicationRequest", "ServiceRequest", "AllergyIntolerance", "AuditEvent"):
        assert not table.fhir_allows({"clerk"}, rtype, "r")
    assert table.pas_allows({"clerk"}, "patients.read") and table.pas_allows({"clerk"}, "patients.write")
    assert not table.pas_allows({"clerk"}, "related.read")
    assert not table.pas_allows({"clerk"}, "hl7")


def test_pas_system_has_every_pas_action_and_no_fhir_access(table: RoleTable) -> None:
    for action in ("patients.read", "patients.write", "related.read", "hl7"):
        assert table.pas_allows({"pas-system"}, action)
    assert table.roles["pas-system"].fhir == {}
    assert not table.fhir_allows({"pas-system"}, "Patient", "r")


def test_auditor_reads_audit_events_and_nothing_else(table: RoleTable) -> None:
    assert table.fhir_allows({"auditor"}, "AuditEvent", "r") and table.fhir_allows({"auditor"}, "AuditEvent", "s")
    assert not table.fhir_allows({"auditor"}, "Patient", "r")
    assert not table.fhir_allows({"auditor"}, "MedicationRequest", "r")
    assert table.roles["auditor"].pas == frozenset()


def test_roles_combine_and_unknown_role_names_allow_nothing(table: RoleTable) -> None:
    assert table.fhir_allows({"clerk", "auditor"}, "AuditEvent", "s")
    assert table.fhir_allows({"clerk", "auditor"}, "Patient", "r")
    assert not table.fhir_allows({"admin", "root"}, "Patient", "r")
    assert not table.pas_allows({"admin"}, "hl7")
    assert not table.fhir_allows(set(), "Patient", "r")


@pytest.mark.parametrize(
    "code, role",
    [
        ("R8000", "clinician"),
        ("R8001", "clinician"),
        ("R8003", "clinician"),
        ("R8004", "clinician"),
        ("R0260", "clinician"),
        ("R8006", "clerk"),
        ("R8008", "clerk"),
        ("R8009", "clerk"),
        ("R8010", "clerk"),
        ("R0001", "auditor"),
        ("R5105", "auditor"),
    ],
)
def test_job_role_codes_map_to_facade_roles(table: RoleTable, code: str, role: str) -> None:
    assert table.roles_for([code]) == {role}
    assert table.roles_for([f"S0030:G0100:{code}"]) == {role}


def test_role_names_are_taken_directly(table: RoleTable) -> None:
    assert table.roles_for(["clerk", "auditor"]) == {"clerk", "auditor"}


@pytest.mark.parametrize(
    "name",
    [
        "R9999",
        "R123",
        "R8000X",
        "r8000",
        "S0030:G0100:R9999",
        "R8000:S0030",
        "S0030:G0100",
        "superuser",
        "",
        "Clinician",
        ":",
        "S0030:G0100:R8000:",
    ],
)
def test_unknown_codes_and_names_are_ignored(table: RoleTable, name: str) -> None:
    assert table.roles_for([name]) == frozenset()


def test_unknown_codes_do_not_hide_known_ones(table: RoleTable) -> None:
    assert table.roles_for(["R9999", "superuser", "S0030:G0100:R8006", "R0001"]) == {"clerk", "auditor"}


def test_is_clinical_follows_the_file(table: RoleTable) -> None:
    assert table.is_clinical("MedicationRequest") and table.is_clinical("AllergyIntolerance")
    assert not table.is_clinical("Patient") and not table.is_clinical("AuditEvent")


# --- parse_role_table refuses what would silently grant or refuse -----------------------------


def _with(change: Any) -> dict[str, Any]:
    document = copy.deepcopy(shipped_document())
    change(document)
    return document


def test_the_shipped_document_itself_parses() -> None:
    assert set(parse_role_table(shipped_document()).roles) == {"clinician", "clerk", "pas-system", "auditor", "admin"}


def test_console_roles_must_be_roles_of_the_file() -> None:
    document = _with(lambda d: d.__setitem__("console_roles", ["auditor", "superuser"]))
    with pytest.raises(PolicyFileError, match=r"console_roles: unknown role\(s\) \['superuser'\]"):
        parse_role_table(document)


def test_console_roles_must_be_a_list_of_strings() -> None:
    with pytest.raises(PolicyFileError, match="console_roles must be a list of strings"):
        parse_role_table(_with(lambda d: d.__setitem__("console_roles", "auditor")))


def test_no_console_roles_means_nobody_reads_traces() -> None:
    assert parse_role_table(_with(lambda d: d.pop("console_roles"))).console_roles == frozenset()


@pytest.mark.parametrize("letters", ["sr", "rx", "read", "", "RS", "rr", 5, None, ["r", "s"]])
def test_bad_permission_letters_are_refused_naming_the_entry(letters: Any) -> None:
    document = _with(lambda d: d["roles"]["clerk"]["fhir"].__setitem__("Patient", letters))
    with pytest.raises(PolicyFileError, match=r"roles\.clerk\.fhir\.Patient"):
        parse_role_table(document)


def test_unknown_pas_action_is_refused_naming_it() -> None:
    document = _with(lambda d: d["roles"]["clerk"].__setitem__("pas", ["patients.read", "patients.delete"]))
    with pytest.raises(PolicyFileError, match=r"roles\.clerk\.pas.*patients\.delete"):
        parse_role_table(document)


def test_pas_actions_must_be_a_list_of_strings() -> None:
    document = _with(lambda d: d["roles"]["clerk"].__setitem__("pas", "patients.read"))
    with pytest.raises(PolicyFileError, match=r"roles\.clerk\.pas"):
        parse_role_table(document)


def test_job_role_pointing_at_an_unknown_role_is_refused() -> None:
    document = _with(lambda d: d["job_roles"].__setitem__("R8000", ["clinician", "doctor"]))
    with pytest.raises(PolicyFileError, match=r"job_roles\.R8000"):
        parse_role_table(document)


@pytest.mark.parametrize("code", ["X8000", "8000", "R80", "R800000", "S0030:G0100:R8000"])
def test_job_role_code_not_of_the_rnnnn_shape_is_refused(code: str) -> None:
    document = _with(lambda d: d["job_roles"].__setitem__(code, ["clinician"]))
    with pytest.raises(PolicyFileError, match="job_roles"):
        parse_role_table(document)


def test_job_role_value_must_be_a_list() -> None:
    document = _with(lambda d: d["job_roles"].__setitem__("R8000", "clinician"))
    with pytest.raises(PolicyFileError, match=r"job_roles\.R8000"):
        parse_role_table(document)


def test_break_glass_purpose_not_in_clinical_purposes_is_refused() -> None:
    document = _with(lambda d: d.__setitem__("break_glass_purposes", ["ETREAT", "BTG"]))
    with pytest.raises(PolicyFileError, match="break_glass_purposes"):
        parse_role_table(document)


@pytest.mark.parametrize("document", [None, [], "roles", {}, {"roles": []}, {"roles": "clinician"}])
def test_a_document_without_a_roles_mapping_is_refused(document: Any) -> None:
    with pytest.raises(PolicyFileError, match="roles"):
        parse_role_table(document)


def test_a_role_that_is_not_a_mapping_is_refused() -> None:
    document = _with(lambda d: d["roles"].__setitem__("clerk", ["Patient"]))
    with pytest.raises(PolicyFileError, match=r"roles\.clerk"):
        parse_role_table(document)


def test_fhir_that_is_not_a_mapping_is_refused() -> None:
    document = _with(lambda d: d["roles"]["clerk"].__setitem__("fhir", ["Patient"]))
    with pytest.raises(PolicyFileError, match=r"roles\.clerk\.fhir"):
        parse_role_table(document)


@pytest.mark.parametrize("key", ["clinical_types", "clinical_purposes"])
def test_lists_must_be_lists_of_strings(key: str) -> None:
    document = _with(lambda d: d.__setitem__(key, "TREAT"))
    with pytest.raises(PolicyFileError, match=key):
        parse_role_table(document)


def test_a_typo_in_a_top_level_key_is_refused() -> None:
    document = _with(lambda d: d.__setitem__("clinical_type", d.pop("clinical_types")))
    with pytest.raises(PolicyFileError):
        parse_role_table(document)


def test_job_roles_that_is_not_a_mapping_is_refused_as_a_policy_error() -> None:
    document = _with(lambda d: d.__setitem__("job_roles", ["R8000"]))
    with pytest.raises(PolicyFileError, match="job_roles"):
        parse_role_table(document)
