"""The access decision (server/access/policy.py) and the patient compartment (server/access/compartment.py)."""

from __future__ import annotations

from typing import Any

import pytest

from server.access.compartment import NHS_NUMBER_SYSTEM, audit_patients, patient_keys, searched_patients
from server.access.policy import AccessDenied, AccessPolicy, Grant, Guard
from server.access.principal import Principal
from server.access.roles import load_role_table
from server.access.scopes import ScopeSet
from server.fhir.errors import InvalidSearchParameter
from server.fhir.search_params import SearchParamSpec
from server.fhir.search_request import SearchDeclaration, SearchRequest, parse_search
from server.sources.cpt.provider import MedicationRequestFromCPT
from server.sources.pds.provider import PatientFromPDS

TABLE = load_role_table()
OWN = "9000000009"
OTHER = "9000000017"
REGISTERED = "9449305552"
HOSPITAL = "https://hospital.example.nhs.uk/Id/hospital-number"

PATIENT_DECL = SearchDeclaration(
    resource_type="Patient",
    params=(SearchParamSpec("_id", "token", "logical id"), *PatientFromPDS.search_params),
)
MEDREQ_DECL = SearchDeclaration(resource_type="MedicationRequest", params=MedicationRequestFromCPT.search_params)
SERVICE_DECL = SearchDeclaration(
    resource_type="ServiceRequest",
    params=(
        SearchParamSpec("patient", "reference", "who", path="subject", target_types=("Patient",)),
        SearchParamSpec("subject", "reference", "who", path="subject", target_types=("Patient", "Group")),
        SearchParamSpec("status", "token", "status", path="status"),
    ),
)


def patient_search(*pairs: tuple[str, str]) -> SearchRequest:
    return parse_search(list(pairs), PATIENT_DECL)


def medreq_search(*pairs: tuple[str, str]) -> SearchRequest:
    return parse_search(list(pairs), MEDREQ_DECL)


class FakeDirectory:
    """The PAS as the policy sees it: pas- ids with their NHS numbers, and who is registered."""

    def __init__(self, registered: set[str] | None = None, pas: dict[str, str | None] | None = None) -> None:
        self._registered = registered if registered is not None else {REGISTERED}
        self._pas = pas if pas is not None else {"pas-H1": OWN, "pas-H2": REGISTERED, "pas-H3": None}
        self.registered_calls: list[str] = []
        self.number_calls: list[str] = []

    async def registered(self, patient: str) -> bool:
        self.registered_calls.append(patient)
        return patient in self._registered or (patient in self._pas and self._pas[patient] in self._registered)

    async def nhs_number(self, patient: str) -> str | None:
        self.number_calls.append(patient)
        if patient.isdigit() and len(patient) == 10:
            return patient
        return self._pas.get(patient)


def principal(
    scope: str = "user/*.cruds",
    roles: frozenset[str] = frozenset({"clinician"}),
    *,
    patient: str | None = None,
    purpose: str | None = "TREAT",
) -> Principal:
    return Principal(
        subject="u", issuer="https://idp", scopes=ScopeSet.parse(scope), roles=roles, patient=patient, purpose=purpose
    )


def policy(directory: FakeDirectory | None = None, *, relationship_required: bool = True) -> AccessPolicy:
    return AccessPolicy(TABLE, directory or FakeDirectory(), relationship_required=relationship_required)


# --- rules 1-3: grant ---------------------------------------------------------------------------------------


def test_scope_missing_is_access_denied_with_insufficient_scope() -> None:
    with pytest.raises(AccessDenied) as caught:
        policy().grant(principal("user/Patient.rs"), "MedicationRequest", "r")
    assert caught.value.status == 403
    assert 'error="insufficient_scope"' in caught.value.headers["WWW-Authenticate"]
    assert "scopes" in str(caught.value)


def test_scope_for_another_permission_is_not_enough() -> None:
    with pytest.raises(AccessDenied, match="scopes"):
        policy().grant(principal("user/Patient.r"), "Patient", "s")


def test_query_suffixed_scope_is_not_enough() -> None:
    with pytest.raises(AccessDenied, match="scopes"):
        policy().grant(principal("user/Patient.rs?identifier=x"), "Patient", "r")


def test_role_missing_is_access_denied_naming_the_roles() -> None:
    with pytest.raises(AccessDenied, match=r"clerk"):
        policy().grant(principal(roles=frozenset({"clerk"})), "MedicationRequest", "r")
    with pytest.raises(AccessDenied, match=r"\(none\)"):
        policy().grant(principal(roles=frozenset()), "Patient", "r")


def test_role_must_allow_the_exact_permission() -> None:
    with pytest.raises(AccessDenied):
        policy().grant(principal(roles=frozenset({"clinician"})), "Patient", "c")


@pytest.mark.parametrize("purpose", [None, "HPAYMT", "HOPERAT", "PATRQT", "treat"])
def test_clinical_type_without_a_clinical_purpose_is_denied(purpose: str | None) -> None:
    with pytest.raises(AccessDenied, match="purpose of use"):
        policy().grant(principal(purpose=purpose), "AllergyIntolerance", "r")


def test_demographics_need_no_purpose() -> None:
    grant = policy().grant(principal(purpose=None), "Patient", "r")
    assert grant == Grant("Patient", None, clinical=False, break_glass=False)


@pytest.mark.parametrize("purpose, glass", [("TREAT", False), ("ETREAT", True)])
def test_clinical_grant_with_purpose(purpose: str, glass: bool) -> None:
    grant = policy().grant(principal(purpose=purpose), "MedicationRequest", "s")
    assert grant == Grant("MedicationRequest", None, clinical=True, break_glass=glass)


def test_patient_scope_without_a_patient_claim_is_denied() -> None:
    with pytest.raises(AccessDenied, match="patient context"):
        policy().grant(principal("patient/*.rs", patient=None), "Patient", "r")


def test_patient_only_scopes_set_the_compartment() -> None:
    grant = policy().grant(principal("patient/*.rs", patient=OWN), "MedicationRequest", "r")
    assert grant.compartment == OWN and grant.clinical


def test_user_scope_does_not_set_a_compartment_even_with_a_patient_claim() -> None:
    assert policy().grant(principal("user/Patient.rs", patient=OWN), "Patient", "r").compartment is None
    mixed = principal("patient/Patient.rs user/Patient.r", patient=OWN)
    assert policy().grant(mixed, "Patient", "r").compartment is None
    # but the patient/ scope alone grants search, so search is compartmented
    assert policy().grant(mixed, "Patient", "s").compartment == OWN


def test_system_scope_sets_no_compartment() -> None:
    assert policy().grant(principal("system/*.rs"), "ServiceRequest", "s").compartment is None


# --- check_search --------------------------------------------------------------------------------------------


async def test_compartment_token_searching_another_patient_is_403_before_any_relationship_lookup() -> None:
    directory = FakeDirectory()
    guard = policy(directory).guard(principal("patient/*.rs", patient=OWN))
    grant = guard.grant("MedicationRequest", "s")
    with pytest.raises(AccessDenied, match="own patient"):
        await guard.check_search(grant, medreq_search(("patient", OTHER)))
    assert directory.registered_calls == []


async def test_compartment_token_without_a_patient_criterion_is_403() -> None:
    guard = policy().guard(principal("patient/*.rs", patient=OWN))
    with pytest.raises(AccessDenied, match="must name its patient"):
        await guard.check_search(guard.grant("MedicationRequest", "s"), medreq_search(("status", "active")))
    with pytest.raises(AccessDenied, match="must name its patient"):
        await guard.check_search(guard.grant("Patient", "s"), patient_search(("family", "Smith")))


@pytest.mark.parametrize(
    "pairs",
    [
        [("patient", OWN)],
        [("patient", f"Patient/{OWN}")],
        [("subject", OWN)],
        [("patient:identifier", f"{NHS_NUMBER_SYSTEM}|{OWN}")],
        [("patient.identifier", OWN)],
        [("patient", "pas-H1")],
        [("patient", OWN), ("status", "active")],
    ],
)
async def test_compartment_token_searching_its_own_patient_passes(pairs: list[tuple[str, str]]) -> None:
    guard = policy().guard(principal("patient/*.rs", patient=OWN))
    await guard.check_search(guard.grant("MedicationRequest", "s"), medreq_search(*pairs))


@pytest.mark.parametrize(
    "pairs",
    [
        [("patient", f"{OWN},{OTHER}")],
        [("patient", OWN), ("subject", OTHER)],
        [("patient", "pas-H2")],
        [("patient", "pas-H3")],
        [("patient", "pas-unknown")],
        [("patient:identifier", f"{HOSPITAL}|{OWN}")],
    ],
)
async def test_compartment_token_naming_any_other_or_unresolvable_patient_is_403(pairs: list[tuple[str, str]]) -> None:
    guard = policy().guard(principal("patient/*.rs", patient=OWN))
    with pytest.raises(AccessDenied, match="own patient"):
        await guard.check_search(guard.grant("MedicationRequest", "s"), medreq_search(*pairs))


@pytest.mark.parametrize(
    "pairs",
    [[("identifier", f"{NHS_NUMBER_SYSTEM}|{OWN}")], [("identifier", OWN)], [("_id", OWN)], [("_id", "pas-H1")]],
)
async def test_compartment_patient_search_by_own_id_or_number_passes(pairs: list[tuple[str, str]]) -> None:
    guard = policy().guard(principal("patient/Patient.rs", patient=OWN, purpose=None))
    await guard.check_search(guard.grant("Patient", "s"), patient_search(*pairs))


@pytest.mark.parametrize(
    "pairs",
    [
        [("identifier", f"{NHS_NUMBER_SYSTEM}|{OTHER}")],
        [("_id", OTHER)],
        [("identifier", f"{HOSPITAL}|H1")],
        [("identifier", f"{NHS_NUMBER_SYSTEM}|")],
        [("_id", OWN), ("identifier", f"{NHS_NUMBER_SYSTEM}|{OTHER}")],
    ],
)
async def test_compartment_patient_search_for_others_is_403(pairs: list[tuple[str, str]]) -> None:
    guard = policy().guard(principal("patient/Patient.rs", patient=OWN, purpose=None))
    with pytest.raises(AccessDenied):
        await guard.check_search(guard.grant("Patient", "s"), patient_search(*pairs))


def test_patient_modifiers_that_name_nobody_are_refused_by_the_parser() -> None:
    """`patient:missing` and `identifier:not` name no patient; their sources cannot answer
    them either, so the declarations refuse them (400) before any access check."""
    with pytest.raises(InvalidSearchParameter, match="':missing' is not supported on 'patient'"):
        medreq_search(("patient:missing", "false"))
    with pytest.raises(InvalidSearchParameter, match="':not' is not supported on 'identifier'"):
        patient_search(("identifier:not", f"{NHS_NUMBER_SYSTEM}|{OWN}"))


async def test_relationship_registered_patient_passes() -> None:
    directory = FakeDirectory()
    guard = policy(directory).guard(principal())
    await guard.check_search(guard.grant("MedicationRequest", "s"), medreq_search(("patient", REGISTERED)))
    assert directory.registered_calls == [REGISTERED]


async def test_relationship_unregistered_patient_is_403_pointing_at_break_glass() -> None:
    guard = policy().guard(principal())
    with pytest.raises(AccessDenied, match="X-Purpose-Of-Use: ETREAT") as caught:
        await guard.check_search(guard.grant("MedicationRequest", "s"), medreq_search(("patient", OTHER)))
    assert caught.value.status == 403


async def test_relationship_needs_every_searched_patient() -> None:
    guard = policy().guard(principal())
    with pytest.raises(AccessDenied):
        await guard.check_search(
            guard.grant("MedicationRequest", "s"), medreq_search(("patient", f"{REGISTERED},{OTHER}"))
        )


async def test_break_glass_skips_the_relationship_check() -> None:
    directory = FakeDirectory()
    guard = policy(directory).guard(principal(purpose="ETREAT"))
    grant = guard.grant("MedicationRequest", "s")
    assert grant.break_glass
    await guard.check_search(grant, medreq_search(("patient", OTHER)))
    assert directory.registered_calls == []


async def test_relationship_not_required_lets_unregistered_patients_through() -> None:
    guard = policy(relationship_required=False).guard(principal())
    await guard.check_search(guard.grant("MedicationRequest", "s"), medreq_search(("patient", OTHER)))


async def test_the_tokens_own_patient_is_a_relationship() -> None:
    directory = FakeDirectory()
    guard = policy(directory).guard(principal("user/*.rs", patient=OTHER))
    await guard.check_search(guard.grant("MedicationRequest", "s"), medreq_search(("patient", OTHER)))
    assert directory.registered_calls == []


async def test_demographics_search_needs_no_relationship() -> None:
    directory = FakeDirectory()
    guard = policy(directory).guard(principal(purpose=None))
    await guard.check_search(guard.grant("Patient", "s"), patient_search(("identifier", OTHER)))
    assert directory.registered_calls == []


async def test_clinical_search_naming_no_patient_defers_the_relationship_to_the_results() -> None:
    directory = FakeDirectory()
    guard = policy(directory).guard(principal())
    await guard.check_search(guard.grant("MedicationRequest", "s"), medreq_search(("status", "active")))
    assert directory.registered_calls == []


# --- refusal() on returned resources -------------------------------------------------------------------------


def patient(pid: str, *numbers: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": pid,
        "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": n} for n in numbers],
    }


def med(reference: str | None = None, identifier: str | None = None, element: str = "subject") -> dict[str, Any]:
    subject: dict[str, Any] = {}
    if reference is not None:
        subject["reference"] = reference
    if identifier is not None:
        subject["identifier"] = {"system": NHS_NUMBER_SYSTEM, "value": identifier}
    return {"resourceType": "MedicationRequest", "id": "m1", element: subject}


@pytest.mark.parametrize(
    "resource, allowed",
    [
        # Every patient key must be the token's patient: an id the PAS cannot resolve (pas-H9) fails closed,
        # even beside the right NHS number.
        (patient(OWN, OWN), True),
        (patient(OWN), True),
        (patient("pas-H9", OWN), False),
        (patient("pas-H1"), True),
        (patient("pas-H1", OWN), True),
        (patient(OTHER, OTHER), False),
        (patient("pas-H2"), False),
        (patient("pas-H3"), False),
        ({"resourceType": "Patient"}, False),
    ],
)
async def test_compartment_refusal_of_patients(resource: dict[str, Any], allowed: bool) -> None:
    guard = policy().guard(principal("patient/Patient.rs", patient=OWN, purpose=None))
    reason = await guard.refusal(guard.grant("Patient", "r"), resource)
    assert (reason is None) is allowed
    if not allowed:
        assert reason == "outside the token's patient compartment"


@pytest.mark.parametrize(
    "resource, allowed",
    [
        (med(f"Patient/{OWN}"), True),
        (med(identifier=OWN), True),
        (med("Patient/pas-H1"), True),
        (med(f"https://facade.example/Patient/{OWN}"), True),
        (med(f"Patient/{OWN}", element="patient"), True),
        (med(f"Patient/{OTHER}"), False),
        (med(identifier=OTHER), False),
        (med("Patient/pas-H2"), False),
        (med("Group/g1"), False),
        (med(), False),
        ({"resourceType": "MedicationRequest"}, False),
    ],
)
async def test_compartment_refusal_of_clinical_resources(resource: dict[str, Any], allowed: bool) -> None:
    guard = policy(relationship_required=False).guard(principal("patient/*.rs", patient=OWN))
    reason = await guard.refusal(guard.grant("MedicationRequest", "r"), resource)
    assert (reason is None) is allowed


@pytest.mark.parametrize(
    "resource, allowed",
    [
        (med(f"Patient/{REGISTERED}"), True),
        (med(identifier=REGISTERED), True),
        (med("Patient/pas-H2"), True),
        (med(f"Patient/{OTHER}"), False),
        (med("Patient/pas-H3"), False),
    ],
)
async def test_relationship_refusal_of_clinical_resources(resource: dict[str, Any], allowed: bool) -> None:
    guard = policy().guard(principal())
    reason = await guard.refusal(guard.grant("MedicationRequest", "r"), resource)
    assert (reason is None) is allowed
    if not allowed:
        assert reason == "no legitimate relationship with the patient"


async def test_clinical_resource_without_a_patient_is_refused_under_the_relationship_rule() -> None:
    guard = policy().guard(principal())
    assert (
        await guard.refusal(guard.grant("MedicationRequest", "r"), med()) == "no patient to check a relationship with"
    )


async def test_break_glass_and_relationship_off_show_unregistered_patients_records() -> None:
    glass = policy().guard(principal(purpose="ETREAT"))
    assert await glass.refusal(glass.grant("MedicationRequest", "r"), med(f"Patient/{OTHER}")) is None
    off = policy(relationship_required=False).guard(principal())
    assert await off.refusal(off.grant("MedicationRequest", "r"), med(f"Patient/{OTHER}")) is None


async def test_demographics_are_not_relationship_checked() -> None:
    guard = policy().guard(principal(purpose=None))
    assert await guard.refusal(guard.grant("Patient", "r"), patient(OTHER, OTHER)) is None


async def test_relationship_lookups_are_memoised_per_guard() -> None:
    directory = FakeDirectory()
    guard = policy(directory).guard(principal())
    grant = guard.grant("MedicationRequest", "r")
    for _ in range(3):
        assert await guard.refusal(grant, med(f"Patient/{OTHER}")) is not None
    assert directory.registered_calls == [OTHER]
    assert directory.number_calls == [OTHER]
    # a new guard (a new request) asks again
    fresh = policy(directory).guard(principal())
    await fresh.refusal(fresh.grant("MedicationRequest", "r"), med(f"Patient/{OTHER}"))
    assert directory.registered_calls == [OTHER, OTHER]


def test_guard_is_bound_to_its_principal() -> None:
    who = principal()
    guard = policy().guard(who)
    assert isinstance(guard, Guard) and guard.principal is who


# --- the PAS endpoints -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "roles, scope, action, perms",
    [
        ({"pas-system"}, "system/Patient.rs", "patients.read", "r"),
        ({"pas-system"}, "system/*.cruds", "hl7", "cu"),
        ({"clerk"}, "user/Patient.r", "patients.read", "r"),
        ({"clerk"}, "user/Patient.cu", "patients.write", "cu"),
        ({"clerk"}, "user/Patient.u", "patients.write", "cu"),
        ({"pas-system"}, "patient/Patient.rs system/AllergyIntolerance.r", "related.read", "r"),
    ],
)
def test_require_pas_allows_the_role_with_a_user_or_system_scope(
    roles: set[str], scope: str, action: str, perms: str
) -> None:
    resource_type = "AllergyIntolerance" if action == "related.read" else "Patient"
    policy().require_pas(principal(scope, frozenset(roles)), action, resource_type, perms)


@pytest.mark.parametrize(
    "roles, action",
    [
        ({"clinician"}, "patients.read"),
        ({"clerk"}, "hl7"),
        ({"clerk"}, "related.read"),
        ({"auditor"}, "patients.read"),
        (set(), "patients.read"),
    ],
)
def test_require_pas_refuses_roles_without_the_action(roles: set[str], action: str) -> None:
    with pytest.raises(AccessDenied, match="roles may use the PAS endpoint"):
        policy().require_pas(principal("system/*.cruds", frozenset(roles)), action, "Patient", "r")


@pytest.mark.parametrize(
    "scope",
    [
        "patient/Patient.rs",
        "patient/*.cruds",
        "",
        "openid",
        "user/Patient.s",
        "system/AllergyIntolerance.r",
        "user/Patient.r?identifier=x",
    ],
)
def test_require_pas_refuses_scopes_that_do_not_grant_a_user_or_system_permission(scope: str) -> None:
    with pytest.raises(AccessDenied, match="needs user/ or system/"):
        policy().require_pas(principal(scope, frozenset({"pas-system"}), patient=OWN), "patients.read", "Patient", "r")


# --- compartment.py ---------------------------------------------------------------------------------------


def test_patient_keys_of_a_patient_are_its_id_and_nhs_numbers() -> None:
    resource = {
        "resourceType": "Patient",
        "id": "pas-H1",
        "identifier": [
            {"system": NHS_NUMBER_SYSTEM, "value": OWN},
            {"system": HOSPITAL, "value": "H1"},
            {"system": NHS_NUMBER_SYSTEM, "value": 9000000017},
            "junk",
        ],
    }
    assert patient_keys(resource) == {"pas-H1", OWN}


def test_patient_keys_accept_a_single_identifier_object() -> None:
    assert patient_keys({"resourceType": "Patient", "identifier": {"system": NHS_NUMBER_SYSTEM, "value": OWN}}) == {OWN}


@pytest.mark.parametrize(
    "resource, keys",
    [
        (med(f"Patient/{OWN}"), {OWN}),
        (med(f"http://x/fhir/Patient/{OWN}"), {OWN}),
        (med(f"Patient/{OWN}/"), {OWN}),
        (med(identifier=OWN), {OWN}),
        (med("Patient/pas-H1", identifier=OWN), {"pas-H1", OWN}),
        (med(f"Patient/{OWN}", element="patient"), {OWN}),
        (med("Group/g1"), set()),
        (med("Patient/"), set()),
        (med(OWN), set()),
        (med(), set()),
        ({"resourceType": "ServiceRequest", "subject": "Patient/1"}, set()),
        ({"resourceType": "AllergyIntolerance", "patient": {"reference": 5}}, set()),
    ],
)
def test_patient_keys_of_clinical_resources(resource: dict[str, Any], keys: set[str]) -> None:
    assert patient_keys(resource) == keys


def test_audit_patients_first_seen_order_each_once_nhs_number_preferred() -> None:
    resources = [
        med(f"Patient/{OTHER}"),
        patient("pas-H1", OWN),  # the NHS number wins over the local id
        med("Patient/pas-H7"),
        med(f"Patient/{OTHER}"),
        patient(OWN, OWN),
        {"resourceType": "MedicationRequest"},
    ]
    assert audit_patients(resources) == [f"Patient/{OTHER}", f"Patient/{OWN}", "Patient/pas-H7"]


def test_audit_patients_of_nothing_is_empty() -> None:
    assert audit_patients([]) == []
    assert audit_patients([{"resourceType": "MedicationRequest"}]) == []


@pytest.mark.parametrize(
    "pairs, expected",
    [
        ([("identifier", f"{NHS_NUMBER_SYSTEM}|{OWN}")], [OWN]),
        ([("identifier", OWN)], [OWN]),
        ([("identifier", f"{HOSPITAL}|H1")], [""]),
        ([("identifier", f"{NHS_NUMBER_SYSTEM}|{OWN},{NHS_NUMBER_SYSTEM}|{OTHER}")], [OWN, OTHER]),
        ([("_id", "pas-H1")], ["pas-H1"]),
        ([("_id", OWN), ("identifier", OTHER)], [OWN, OTHER]),
        ([("family", "Smith"), ("birthdate", "1980-01-01")], None),
        ([], None),
    ],
)
def test_searched_patients_of_patient_searches(pairs: list[tuple[str, str]], expected: list[str] | None) -> None:
    assert searched_patients(patient_search(*pairs)) == expected


@pytest.mark.parametrize(
    "pairs, expected",
    [
        ([("patient", OWN)], [OWN]),
        ([("patient", f"Patient/{OWN}")], [OWN]),
        ([("subject", f"Patient/{OWN}")], [OWN]),
        ([("patient", f"{OWN},{OTHER}")], [OWN, OTHER]),
        ([("patient.identifier", f"{NHS_NUMBER_SYSTEM}|{OWN}")], [OWN]),
        ([("patient:identifier", OWN)], [OWN]),
        ([("patient:identifier", f"{HOSPITAL}|H1")], [""]),
        ([("status", "active"), ("patient", OWN)], [OWN]),
        ([("status", "active")], None),
        ([("identifier", f"{NHS_NUMBER_SYSTEM}|{OWN}")], None),  # a clinical identifier names no patient
    ],
)
def test_searched_patients_of_clinical_searches(pairs: list[tuple[str, str]], expected: list[str] | None) -> None:
    assert searched_patients(medreq_search(*pairs)) == expected


def test_searched_patients_refuses_a_subject_of_another_type() -> None:
    search = parse_search([("subject", "Group/g1"), ("patient", OWN)], SERVICE_DECL)
    assert searched_patients(search) == ["", OWN]
    untyped = parse_search([("subject", OWN)], SERVICE_DECL)  # Patient or Group: taken as a patient id
    assert searched_patients(untyped) == [OWN]
