"""The console's decisions that need no server: its mode (server/console/gate.py), where an
API's emulator takes faults, how a console fault becomes an emulator fault, the static
file guard, and the scenario declarations every source derives from its data."""

from __future__ import annotations

from typing import Any

import pytest

from server.console.faults import KINDS, FaultSpecError, emulator_fault, fault_view, kind_of
from server.console.gate import console_mode, console_mode_for
from server.console.routes import STATIC_DIR, static_file
from server.console.state import ConsoleState
from server.console.wiring import build_console, middleware, routes
from server.request_trace import TraceBuffer
from server.settings import Settings
from server.sources.registry import SOURCES

EMULATED = [None, None]
LOOPBACK = ["http://127.0.0.1:9100/personal-demographics/FHIR/R4"]
INTEGRATION = ["https://int.api.service.nhs.uk/personal-demographics/FHIR/R4"]
PRODUCTION = ["https://api.service.nhs.uk/personal-demographics/FHIR/R4"]


@pytest.mark.parametrize(
    ("setting", "urls", "mode"),
    [
        ("auto", EMULATED, "sandbox"),
        ("auto", LOOPBACK, "sandbox"),
        ("auto", INTEGRATION, "off"),
        ("auto", PRODUCTION, "off"),
        ("on", EMULATED, "sandbox"),
        ("on", INTEGRATION, "live"),
        ("on", PRODUCTION, "live"),
        ("on", [None, *PRODUCTION], "live"),  # one live API makes the façade live
        ("off", EMULATED, "off"),
        ("off", PRODUCTION, "off"),
    ],
)
def test_the_console_mode(setting: str, urls: list[str | None], mode: str) -> None:
    assert console_mode(Settings(console=setting), urls) == mode


def test_a_live_token_endpoint_makes_the_facade_live() -> None:
    settings = Settings(console="on", auth_mode="signed-jwt", token_url="https://api.service.nhs.uk/oauth2/token")
    assert console_mode(settings, EMULATED) == "live"


def test_settings_the_sources_refuse_leave_the_console_off_for_the_lifespan_to_report() -> None:
    assert console_mode_for(Settings(no_such_setting=1), SOURCES) == "off"  # type: ignore[call-arg]


def test_the_trace_capacity_is_bounded() -> None:
    with pytest.raises(ValueError):
        Settings(console_trace_capacity=5)
    with pytest.raises(ValueError):
        Settings(console_trace_capacity=10_001)


def test_off_builds_nothing() -> None:
    console = build_console(Settings(console="off"), SOURCES)
    assert console is None and middleware(console) == []
    assert [r.path for r in routes(console)] == ["/_console", "/_console"]  # the route and mount that answer 404


def test_sandbox_trusts_the_dev_issuer_unless_it_is_off() -> None:
    console = build_console(Settings(), SOURCES)
    assert console is not None and console.mode == "sandbox" and console.dev_tokens
    assert console.traces.capacity == 500 and len(middleware(console)) == 1
    quiet = build_console(Settings(dev_issuer="off"), SOURCES)
    assert quiet is not None and not quiet.dev_tokens


# ---- fault control -------------------------------------------------------------------------


def sandbox(upstreams: dict[str, str] | None = None, **settings: Any) -> ConsoleState:
    console = ConsoleState("sandbox", Settings(**settings), tuple(SOURCES), TraceBuffer(10), dev_tokens=True)
    console.upstreams = upstreams or {
        "pds": "http://127.0.0.1:9100/personal-demographics/FHIR/R4",
        "gpconnect": "http://127.0.0.1:9100/gpconnect/Y12345/STU3/1/gpconnect/structured/fhir",
        "cpt": "https://api.service.nhs.uk/clinical-prescription-tracker",
        "bars": "http://127.0.0.1:9100/somewhere-else",
    }
    return console


def test_only_the_projects_own_emulator_takes_faults() -> None:
    console = sandbox()
    pds = console.emulator_control("pds")
    assert pds is not None and pds.base_url == "http://127.0.0.1:9100"
    assert pds.path_prefix == "/personal-demographics/FHIR/R4"
    assert console.emulator_control("cpt") is None  # not an emulator
    assert console.emulator_control("bars") is None  # not at the emulator's path for it
    assert console.emulator_control("ers") is None and console.emulator_control("nope") is None
    console.mode = "live"
    assert console.emulator_control("pds") is None and not console.fault_control()


def test_fault_control_needs_the_session() -> None:
    assert not sandbox().fault_control()  # the lifespan has not connected it yet


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"kind": "latency", "delay": 1.5}, {"delay": 1.5, "times": 1}),
        ({"kind": "status", "status": 500, "times": 3}, {"status": 500, "times": 3}),
        ({"kind": "status", "status": 503, "retry_after": 2}, {"status": 503, "retry_after": "2", "times": 1}),
        ({"kind": "rate_limit"}, {"status": 429, "times": 1}),
        ({"kind": "rate_limit", "retry_after": "5", "times": -1}, {"status": 429, "retry_after": "5", "times": -1}),
        ({"kind": "timeout"}, {"delay": 16.0, "times": 1}),
        ({"kind": "timeout", "delay": 4}, {"delay": 4.0, "times": 1}),
        ({"kind": "reset"}, {"reset": True, "times": 1}),
        ({"kind": "malformed"}, {"malformed": True, "times": 1}),
    ],
)
def test_console_faults_become_emulator_faults(spec: dict[str, Any], expected: dict[str, Any]) -> None:
    base, fault = emulator_fault(sandbox(), {"api": "pds", **spec})
    assert base == "http://127.0.0.1:9100"
    assert fault == {"path_prefix": "/personal-demographics/FHIR/R4", **expected}
    # A delay shorter than the façade's budget reads back as latency: the emulator sees the same fault.
    short_timeout = spec["kind"] == "timeout" and fault["delay"] < 15.0
    assert kind_of(fault, 15.0) == ("latency" if short_timeout else spec["kind"])


def test_a_wrong_type_fault_answers_a_well_formed_resource_of_another_type() -> None:
    _, fault = emulator_fault(sandbox(), {"api": "gpconnect", "kind": "wrong_type"})
    assert fault["status"] == 200 and fault["body"]["resourceType"] == "Binary"
    assert kind_of(fault) == "wrong_type" and "wrong_type" in KINDS


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ({"api": "cpt", "kind": "reset"}, "api"),
        ({"kind": "reset"}, "api"),
        ({"api": "pds", "kind": None}, "kind"),
        ({"api": "pds", "kind": "reset", "times": 0}, "times"),
        ({"api": "pds", "kind": "reset", "times": True}, "times"),
        ({"api": "pds", "kind": "reset", "times": 1001}, "times"),
        ({"api": "pds", "kind": "latency", "delay": -1}, "delay"),
        ({"api": "pds", "kind": "latency", "delay": "1"}, "delay"),
        ({"api": "pds", "kind": "latency", "delay": 0}, "delay"),
        ({"api": "pds", "kind": "status", "status": 302}, "status"),
        ({"api": "pds", "kind": "status", "status": True}, "status"),
        ({"api": "pds", "kind": "rate_limit", "retry_after": {"s": 1}}, "retry_after"),
        ({"api": "pds", "kind": "reset", "body": {}}, "Unknown field"),
    ],
)
def test_bad_faults_are_refused_naming_the_field(spec: dict[str, Any], named: str) -> None:
    with pytest.raises(FaultSpecError, match=named):
        emulator_fault(sandbox(), spec)


def test_pending_faults_are_shown_per_api() -> None:
    console = sandbox()
    raw = {"path_prefix": "/personal-demographics/FHIR/R4", "status": 503, "times": 2, "delay": 0.0}
    assert fault_view(console, "http://127.0.0.1:9100", raw) == [
        {"api": "pds", "kind": "status", "status": 503, "delay": None, "retry_after": None, "times": 2}
    ]
    everywhere = {"path_prefix": "/", "reset": True, "times": -1}
    assert [v["api"] for v in fault_view(console, "http://127.0.0.1:9100", everywhere)] == ["pds", "gpconnect"]
    assert fault_view(console, "http://127.0.0.1:9100", {**raw, "times": 0}) == []
    assert fault_view(console, "http://elsewhere", raw) == []


# ---- the static files --------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "../routes.py",
        "../gate.py",
        "..",
        ".hidden",
        "nope.css",
        "sub/index.html",
        "index.html\0",
        "/etc/passwd",
        "a" * 200,
    ],
)
def test_no_file_outside_the_static_directory_is_served(name: str) -> None:
    assert static_file(name) is None


def test_the_static_files_are_found() -> None:
    found = static_file("console.css")
    assert found is not None and found.parent == STATIC_DIR


# ---- scenarios ---------------------------------------------------------------------------------


def test_every_source_declares_scenarios_derived_from_its_data() -> None:
    seen: set[str] = set()
    for source in SOURCES:
        scenarios = source.scenarios()
        assert scenarios, source.name
        for scenario in scenarios:
            assert scenario.id not in seen and scenario.title and scenario.description
            assert scenario.resource_type in {o.resource_type for o in source.offers}
            assert not scenario.path.startswith("/") and scenario.path.split("/")[0] == scenario.resource_type
            seen.add(scenario.id)
