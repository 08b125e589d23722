"""The HL7 sender allow-list: entry syntax, matching, and the effective default per environment."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from server.pas.hl7_senders import SANDBOX_SENDERS, SenderAllowList, parse_sender
from server.settings import Settings
from tests.support.sources import nhs_urls

NHS_APIS = ("pds_base_url", "cpt_base_url", "bars_base_url", "ers_base_url", "gpconnect_base_url")


def senders(settings: Settings) -> list[str]:
    return settings.pas_hl7_senders(nhs_urls(settings))


@pytest.mark.parametrize("entry", ["PAS|RX1", "EPR|*", "EPIC ADT|RX1", "A.B-C|X_1"])
def test_accepted_entries(entry: str) -> None:
    assert str(parse_sender(entry)) == entry


@pytest.mark.parametrize(
    "entry", ["PAS", "PAS|", "|RX1", "*|RX1", "*|*", "PAS|RX*", "PAS|RX1|X", " PAS|RX1", "PAS|RX1 ", "PAS||RX1", ""]
)
def test_refused_entries(entry: str) -> None:
    with pytest.raises(ValueError, match="APP\\|FACILITY"):
        parse_sender(entry)


def test_matching_is_exact_and_star_is_any_facility() -> None:
    senders = SenderAllowList.from_entries(["PAS|RX1", "EPR|*"])
    assert senders.allows("PAS", "RX1") and senders.allows("EPR", "RX1") and senders.allows("EPR", "")
    assert not senders.allows("PAS", "RX2") and not senders.allows("pas", "RX1") and not senders.allows("PAS ", "RX1")
    assert not senders.allows("", "") and not SenderAllowList(()).allows("PAS", "RX1")


def test_effective_list_defaults_by_environment() -> None:
    # Every NHS API the emulator (embedded, or on loopback as in the tests): the sandbox sender.
    assert senders(Settings()) == list(SANDBOX_SENDERS) == ["PAS|RX1"]
    assert senders(Settings(**{f: "http://127.0.0.1:9000/x" for f in NHS_APIS})) == ["PAS|RX1"]
    # Any real NHS API (even one, the rest embedded): nothing until configured.
    assert senders(Settings(pds_base_url="https://int.api.service.nhs.uk/personal-demographics/FHIR/R4")) == []
    assert senders(Settings(**{f: "https://api.service.nhs.uk/x" for f in NHS_APIS})) == []
    assert senders(Settings(auth_mode="signed-jwt", token_url="https://api.service.nhs.uk/oauth2/token")) == []
    # Configured: exactly that list, in every environment (an empty list refuses everyone).
    assert senders(Settings(pas_hl7_allowed_senders=["EPR|*"])) == ["EPR|*"]
    assert senders(Settings(pas_hl7_allowed_senders=[])) == []
    live = {f: "https://api.service.nhs.uk/x" for f in NHS_APIS}
    assert senders(Settings(**live, pas_hl7_allowed_senders=["PAS|RX1"])) == ["PAS|RX1"]


def test_a_bad_entry_stops_the_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACADE_PAS_HL7_ALLOWED_SENDERS", '["PAS|RX1", "EPR"]')
    with pytest.raises(ValidationError, match="'EPR' is not APP\\|FACILITY"):
        Settings()
    monkeypatch.setenv("FACADE_PAS_HL7_ALLOWED_SENDERS", '["PAS|RX1", "EPR|*"]')
    assert senders(Settings()) == ["PAS|RX1", "EPR|*"]
