"""Verified claims to a Principal (server/access/claims.py): hospital IdP and CIS2 shapes, purpose, bad input."""

from __future__ import annotations

from typing import Any

import pytest

from server.access.claims import BadPurpose, principal_from_claims, purpose_of
from server.access.roles import RoleTable, load_role_table

TABLE: RoleTable = load_role_table()


def claims(**extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"iss": "https://idp.example.nhs.uk", "sub": "user-1", "aud": "x", "exp": 2_000_000_000}
    base.update(extra)
    return base


def test_hospital_idp_claims() -> None:
    principal = principal_from_claims(
        claims(
            scope="user/Patient.rs user/MedicationRequest.read openid",
            roles=["clinician", "R8006"],
            patient="9000000009",
            purpose_of_use="treat",
            client_id="ward-app",
            ods_code="RX1",
            sds_user_id="555555555555",
            sds_role_profile_id="666666666666",
            family_name="Smith",
            given_name="Jo",
            jti="tok-1",
        ),
        TABLE,
    )
    assert principal.subject == "user-1"
    assert principal.issuer == "https://idp.example.nhs.uk"
    assert principal.roles == {"clinician", "clerk"}
    assert principal.role_codes == ("R8006",)  # role names are not repeated as codes
    assert principal.patient == "9000000009"
    assert principal.purpose == "TREAT"
    assert principal.client_id == "ward-app"
    assert principal.organisation_ods == "RX1"
    assert principal.sds_user_id == "555555555555"
    assert principal.sds_role_profile_id == "666666666666"
    assert (principal.family, principal.given) == ("Smith", "Jo")
    assert principal.token_id == "tok-1"
    assert principal.scopes.contexts_granting("MedicationRequest", "s") == {"user"}
    assert "openid" in principal.scopes.raw


def test_roles_claim_as_a_space_separated_string() -> None:
    principal = principal_from_claims(claims(roles="clerk R0001"), TABLE)
    assert principal.roles == {"clerk", "auditor"}


def test_azp_stands_in_for_client_id() -> None:
    assert principal_from_claims(claims(azp="spa-client"), TABLE).client_id == "spa-client"
    assert principal_from_claims(claims(azp="spa", client_id="cid"), TABLE).client_id == "cid"


def test_scp_list_is_read_when_there_is_no_scope_string() -> None:
    principal = principal_from_claims(claims(scp=["system/Patient.rs"]), TABLE)
    assert principal.scopes.contexts_granting("Patient", "r") == {"system"}


CIS2_ROLES = [
    {"person_roleid": "555021935107", "org_code": "RX1", "role_code": "S8000:G8000:R8000", "role_name": "GP"},
    {"person_roleid": "555021936108", "org_code": "RX2", "role_code": "S8000:G8001:R8010", "role_name": "Clerk"},
]


def test_cis2_claims_with_a_selected_role() -> None:
    principal = principal_from_claims(
        claims(
            nhsid_useruid="555021935106",
            nhsid_nrbac_roles=CIS2_ROLES,
            selected_roleid="555021936108",
            scope="user/Patient.rs",
        ),
        TABLE,
    )
    assert principal.sds_user_id == "555021935106"
    assert principal.roles == {"clerk"}
    assert principal.role_codes == ("S8000:G8001:R8010",)
    assert principal.sds_role_profile_id == "555021936108"
    assert principal.organisation_ods == "RX2"


def test_cis2_single_role_is_used_without_a_selection() -> None:
    principal = principal_from_claims(claims(nhsid_useruid="555021935106", nhsid_nrbac_roles=CIS2_ROLES[:1]), TABLE)
    assert principal.roles == {"clinician"}
    assert principal.sds_role_profile_id == "555021935107"
    assert principal.organisation_ods == "RX1"


def test_cis2_several_roles_and_no_selection_grant_none_of_them() -> None:
    principal = principal_from_claims(claims(nhsid_useruid="555021935106", nhsid_nrbac_roles=CIS2_ROLES), TABLE)
    assert principal.roles == frozenset()
    assert principal.sds_role_profile_id is None
    assert principal.organisation_ods is None


def test_cis2_selected_role_that_is_not_held_grants_nothing() -> None:
    principal = principal_from_claims(claims(nhsid_nrbac_roles=CIS2_ROLES, selected_roleid="999999999999"), TABLE)
    assert principal.roles == frozenset()
    assert principal.sds_role_profile_id is None


def test_cis2_org_code_wins_over_ods_code_claim() -> None:
    principal = principal_from_claims(claims(ods_code="RZZ", nhsid_nrbac_roles=CIS2_ROLES[:1]), TABLE)
    assert principal.organisation_ods == "RX1"


# --- purpose of use ----------------------------------------------------------------------------


def test_purpose_header_wins_over_the_claim() -> None:
    principal = principal_from_claims(claims(purpose_of_use="TREAT"), TABLE, purpose_header="ETREAT")
    assert principal.purpose == "ETREAT"


def test_purpose_header_is_trimmed_and_upper_cased() -> None:
    assert purpose_of({}, "  etreat ") == "ETREAT"


@pytest.mark.parametrize(
    "header", ["", "TREAT ETREAT", "TREAT,ETREAT", "T", "E-TREAT", "TREAT1", "A" * 21, "trèat", "TREAT\r\nX-Evil: 1"]
)
def test_bad_purpose_header_raises_bad_purpose(header: str) -> None:
    with pytest.raises(BadPurpose):
        purpose_of({"purpose_of_use": "TREAT"}, header)
    with pytest.raises(BadPurpose):
        principal_from_claims(claims(purpose_of_use="TREAT"), TABLE, purpose_header=header)


def test_purpose_claim_list_takes_the_first_string() -> None:
    assert purpose_of({"purpose_of_use": [5, "etreat", "TREAT"]}, None) == "ETREAT"


@pytest.mark.parametrize("claim", [5, None, {"code": "TREAT"}, "TREAT ETREAT", "X", [], [1, 2], "A" * 21])
def test_bad_purpose_claim_is_ignored(claim: Any) -> None:
    assert purpose_of({"purpose_of_use": claim}, None) is None
    assert principal_from_claims(claims(purpose_of_use=claim), TABLE).purpose is None


# --- malformed claims are ignored safely ---------------------------------------------------------


@pytest.mark.parametrize(
    "patient",
    ["900000000", "90000000091", "900000000A", "Patient/9000000009", 9000000009, ["9000000009"], "", " 9000000009"],
)
def test_patient_claim_not_ten_digits_is_ignored(patient: Any) -> None:
    assert principal_from_claims(claims(patient=patient), TABLE).patient is None


def test_patient_claim_with_a_trailing_newline_is_ignored() -> None:
    assert principal_from_claims(claims(patient="9000000009\n"), TABLE).patient is None


def test_patient_claim_in_non_ascii_digits_is_ignored() -> None:
    assert principal_from_claims(claims(patient="٩٠٠٠٠٠٠٠٠٩"), TABLE).patient is None


@pytest.mark.parametrize("roles", [5, {"clinician": True}, None, True, [["clinician"]], [{"role": "clinician"}]])
def test_roles_claim_of_another_type_grants_nothing(roles: Any) -> None:
    principal = principal_from_claims(claims(roles=roles), TABLE)
    assert principal.roles == frozenset()
    assert principal.role_codes == ()


def test_roles_list_mixed_with_non_strings_keeps_the_strings() -> None:
    principal = principal_from_claims(claims(roles=[1, None, "clerk", {"x": 1}]), TABLE)
    assert principal.roles == {"clerk"}


def test_only_the_first_fifty_role_names_are_read() -> None:
    principal = principal_from_claims(claims(roles=["R9999"] * 50 + ["clinician"]), TABLE)
    assert principal.roles == frozenset()
    assert len(principal.role_codes) == 50


@pytest.mark.parametrize("value", ["a string", [1, 2], [["x"]], {"role_code": "R8000"}, None])
def test_nrbac_roles_of_another_shape_grant_nothing(value: Any) -> None:
    principal = principal_from_claims(claims(nhsid_nrbac_roles=value), TABLE)
    assert principal.roles == frozenset()
    assert principal.sds_role_profile_id is None


@pytest.mark.parametrize("value", [5, True, 1.5])
def test_nrbac_roles_that_is_a_number_is_ignored(value: Any) -> None:
    principal = principal_from_claims(claims(nhsid_nrbac_roles=value), TABLE)
    assert principal.roles == frozenset()


def test_nrbac_role_code_that_is_not_a_string_is_ignored() -> None:
    roles = [{"person_roleid": "555021935107", "org_code": "RX1", "role_code": ["R8000"]}]
    principal = principal_from_claims(claims(nhsid_nrbac_roles=roles), TABLE)
    assert principal.roles == frozenset() and principal.role_codes == ()
    assert principal.sds_role_profile_id == "555021935107"


@pytest.mark.parametrize(
    "name, value, field",
    [
        ("nhsid_useruid", "12345", "sds_user_id"),
        ("nhsid_useruid", "ABC123456", "sds_user_id"),
        ("nhsid_useruid", 555021935106, "sds_user_id"),
        ("nhsid_useruid", "1" * 21, "sds_user_id"),
        ("ods_code", "rx1", "organisation_ods"),
        ("ods_code", "R", "organisation_ods"),
        ("ods_code", "RX1 ", "organisation_ods"),
        ("ods_code", "A" * 11, "organisation_ods"),
        ("client_id", 42, "client_id"),
        ("client_id", "c" * 201, "client_id"),
        ("family_name", "F" * 101, "family"),
        ("given_name", ["Jo"], "given"),
        ("jti", "j" * 201, "token_id"),
        ("sds_role_profile_id", "x", "sds_role_profile_id"),
    ],
)
def test_malformed_or_oversized_text_claims_are_dropped(name: str, value: Any, field: str) -> None:
    principal = principal_from_claims(claims(**{name: value}), TABLE)
    assert getattr(principal, field) is None


def test_huge_subject_and_issuer_are_truncated() -> None:
    principal = principal_from_claims(claims(sub="s" * 100_000, iss="i" * 100_000), TABLE)
    assert principal.subject == "s" * 200
    assert principal.issuer == "i" * 500


def test_huge_roles_string_is_bounded_in_count() -> None:
    principal = principal_from_claims(claims(roles=" ".join(["R9999"] * 10_000)), TABLE)
    assert len(principal.role_codes) == 50


def test_huge_nrbac_list_is_bounded() -> None:
    roles = [{"person_roleid": str(100000 + i), "role_code": "R9999"} for i in range(1000)]
    roles.append({"person_roleid": "999999", "role_code": "R8000"})
    principal = principal_from_claims(claims(nhsid_nrbac_roles=roles, selected_roleid="999999"), TABLE)
    assert principal.roles == frozenset()  # the 1001st role is beyond the bound of 50


def test_huge_role_code_strings_are_bounded() -> None:
    roles = [{"person_roleid": "555021935107", "role_code": "S0030:G0100:R" + "0" * 5000}]
    principal = principal_from_claims(claims(roles=["R" + "9" * 5000], nhsid_nrbac_roles=roles), TABLE)
    assert all(len(code) <= 200 for code in principal.role_codes)


def test_binding_key_changes_with_what_decides_access() -> None:
    base = principal_from_claims(claims(scope="user/Patient.r", roles=["clerk"]), TABLE)
    same = principal_from_claims(claims(scope="user/Patient.r", roles=["clerk"], jti="other"), TABLE)
    assert base.binding_key() == same.binding_key()
    for change in (
        {"sub": "user-2"},
        {"scope": "user/Patient.rs"},
        {"roles": ["clinician"]},
        {"patient": "9000000009"},
        {"purpose_of_use": "TREAT"},
        {"client_id": "other"},
    ):
        kwargs: dict[str, Any] = {"scope": "user/Patient.r", "roles": ["clerk"], **change}
        assert principal_from_claims(claims(**kwargs), TABLE).binding_key() != base.binding_key(), change
