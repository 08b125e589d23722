"""capability.security and capability.smart: pure derivations from settings and the wiring's
recorded access modes (no server)."""
from __future__ import annotations

from capability.security import rest_security, user_restricted
from capability.smart import smart_configuration
from server.settings import Settings
from tests.support.fhir_validation import validate_r4

ACCESS = {"Patient": (("PDS", "application"),), "ServiceRequest": (("e-RS", "user"), ("BaRS", "application")),
          "MedicationRequest": (("CPT", "user"),), "Device": ()}


def test_user_restricted_comes_from_the_access_modes_only() -> None:
    assert user_restricted(ACCESS) == {"MedicationRequest": ["CPT"], "ServiceRequest": ["e-RS"]}
    assert user_restricted({}) == {}


def test_security_without_a_token_url_claims_oauth_only() -> None:
    security = rest_security(Settings(), ACCESS)
    assert [c["code"] for c in security["service"][0]["coding"]] == ["OAuth"]
    assert "extension" not in security
    assert "MedicationRequest (via CPT); ServiceRequest (via e-RS)" in security["description"]
    assert smart_configuration(Settings(), ACCESS) is None


def test_security_with_token_and_authorize_urls_validates_in_a_statement() -> None:
    settings = Settings(token_url="https://int.api.service.nhs.uk/oauth2/token",
                        smart_authorize_url="https://int.api.service.nhs.uk/oauth2/authorize")
    security = rest_security(settings, ACCESS)
    assert [c["code"] for c in security["service"][0]["coding"]] == ["OAuth", "SMART-on-FHIR"]
    assert [e["url"] for e in security["extension"][0]["extension"]] == ["authorize", "token"]
    validate_r4({"resourceType": "CapabilityStatement", "status": "active", "date": "2025-01-01", "kind": "instance",
                 "fhirVersion": "4.0.1", "format": ["json"], "rest": [{"mode": "server", "security": security}]})
    smart = smart_configuration(settings, ACCESS)
    assert smart is not None and smart["grant_types_supported"][0] == "authorization_code"
    assert smart["response_types_supported"] == ["code"]


def test_no_user_restricted_type_says_no_token_is_needed() -> None:
    security = rest_security(Settings(), {"Patient": (("PDS", "application"),)})
    assert security["description"].startswith("No resource type served here is user-restricted")
