"""The source declarations the core reads (server/sources/): what each must hold to, and
what SourceConfig derives from them."""

from __future__ import annotations

from collections import Counter

import pytest

from server.settings import Settings
from server.sources.base import misnamed_settings
from server.sources.config import SourceConfig
from server.sources.cpt.settings import CPTSettings
from server.sources.gpconnect.settings import GPConnectSettings
from server.sources.registry import SOURCES


def test_every_source_setting_is_named_after_one_of_its_upstreams() -> None:
    """FACADE_GPCONNECT_AUTH_MODE, not FACADE_AUTH_MODE: no source can shadow another's
    variable or the façade's own."""
    assert {source.name: misnamed_settings(source) for source in SOURCES} == {s.name: [] for s in SOURCES}
    names = Counter(name for source in SOURCES for name in source.setting_names())
    assert [name for name, n in names.items() if n > 1] == []
    assert not set(names) & set(Settings.model_fields)


def test_upstream_keys_emulator_paths_and_types_are_unique() -> None:
    upstreams = [u for source in SOURCES for u in source.upstreams]
    assert len({u.key for u in upstreams}) == len({u.emulator_path for u in upstreams}) == len(upstreams) == 5
    types = [offer.resource_type for source in SOURCES for offer in source.offers]
    assert sorted(types) == ["AllergyIntolerance", "MedicationRequest", "Patient", "ServiceRequest"]


def test_settings_given_in_code_and_in_the_environment_reach_their_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACADE_CPT_DETAIL_CONCURRENCY", "9")
    settings = Settings(gpconnect_auth_mode="gateway")
    config = SourceConfig.resolve(settings, SOURCES)
    assert config.of(GPConnectSettings).gpconnect_auth_mode == "gateway"
    assert config.of(CPTSettings).cpt_detail_concurrency == 9


def test_a_bad_source_setting_stops_the_start() -> None:
    with pytest.raises(ValueError, match="gpconnect_auth_mode"):
        SourceConfig.resolve(Settings(gpconnect_auth_mode="carrier-pigeon"), SOURCES)
    with pytest.raises(ValueError, match="gpconect_base_url"):  # a typo names no setting
        SourceConfig.resolve(Settings(gpconect_base_url="http://127.0.0.1:1"), SOURCES)


def test_unset_urls_are_the_emulators_and_set_ones_are_kept() -> None:
    config = SourceConfig.resolve(Settings(cpt_base_url="https://sandbox.api.service.nhs.uk/cpt/"), SOURCES)
    assert config.configured_urls().count(None) == 4 and config.emulator_needed(Settings())
    upstreams = config.upstreams("http://127.0.0.1:9")
    assert upstreams["cpt"] == "https://sandbox.api.service.nhs.uk/cpt"
    assert upstreams["gpconnect"] == "http://127.0.0.1:9/gpconnect/Y12345/STU3/1/gpconnect/structured/fhir"
    assert upstreams.modes() == {
        "pds": "emulator",
        "bars": "emulator",
        "ers": "emulator",
        "cpt": "configured",
        "gpconnect": "emulator",
    }


def test_freshness_per_type_is_what_each_source_declares() -> None:
    assert SourceConfig.resolve(Settings(), SOURCES).freshness() == {
        "Patient": 3600.0,
        "ServiceRequest": 300.0,
        "MedicationRequest": 300.0,
        "AllergyIntolerance": 900.0,
    }
