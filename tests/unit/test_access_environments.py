"""Which NHS environment a URL points at (server/access/environments.py); unknown hosts are production."""

from __future__ import annotations

import pytest

from server.access.environments import classify_url, environment


@pytest.mark.parametrize(
    "url",
    [
        None,
        "http://127.0.0.1:9000/personal-demographics/FHIR/R4",
        "http://127.9.9.9/x",
        "http://localhost:8080",
        "http://LOCALHOST:8080/x",
        "http://[::1]:9000/x",
        "https://localhost/oauth2/token",
    ],
)
def test_unset_and_loopback_urls_are_the_emulator(url: str | None) -> None:
    assert classify_url(url) == "emulator"


@pytest.mark.parametrize(
    "url",
    [
        "https://sandbox.api.service.nhs.uk/personal-demographics/FHIR/R4",
        "https://SANDBOX.api.service.nhs.uk/x",
    ],
)
def test_nhs_sandbox_is_sandbox(url: str) -> None:
    assert classify_url(url) == "sandbox"


@pytest.mark.parametrize(
    "url",
    [
        "https://int.api.service.nhs.uk/personal-demographics/FHIR/R4",
        "https://internal-dev.api.service.nhs.uk/x",
        "https://internal-qa.api.service.nhs.uk/x",
        "https://orange.testlab.nhs.uk.intspineservices.nhs.uk/x",
        "https://msg.intspineservices.nhs.uk/reliablemessaging",
        "https://intspineservices.nhs.uk/",
    ],
)
def test_nhs_integration_environments_are_integration(url: str) -> None:
    assert classify_url(url) == "integration"


@pytest.mark.parametrize(
    "url",
    [
        "https://api.service.nhs.uk/personal-demographics/FHIR/R4",
        "https://api.service.nhs.uk/oauth2/token",
        "https://example.com/fhir",
        "https://sandbox.api.service.nhs.uk.evil.example/x",  # a lookalike suffix
        "https://evilsandbox.api.service.nhs.uk/x",  # not a subdomain of the sandbox
        "https://notintspineservices.nhs.uk/x",
        "https://int.api.service.nhs.uk.example.org/x",
        "http://10.0.0.5/fhir",
        "http://0.0.0.0:9000/x",
        "http://[::]:9000/x",
        "http://localhost.example.com/x",
        "sandbox.api.service.nhs.uk/no-scheme",  # no host parsed: fail safe
        "",
        "not a url",
    ],
)
def test_production_and_unknown_hosts_are_production(url: str) -> None:
    assert classify_url(url) == "production"


def test_userinfo_does_not_disguise_the_host() -> None:
    assert classify_url("https://localhost@api.service.nhs.uk/x") == "production"
    assert classify_url("https://sandbox.api.service.nhs.uk@example.com/x") == "production"


def test_environment_is_the_most_serious_url() -> None:
    assert environment([]) == "emulator"
    assert environment([None, "http://127.0.0.1:1"]) == "emulator"
    assert environment([None, "https://sandbox.api.service.nhs.uk/x"]) == "sandbox"
    assert (
        environment(["https://sandbox.api.service.nhs.uk/x", "https://int.api.service.nhs.uk/x", None]) == "integration"
    )
    assert (
        environment(
            ["https://int.api.service.nhs.uk/x", "https://api.service.nhs.uk/x", "https://sandbox.api.service.nhs.uk/x"]
        )
        == "production"
    )
