"""The leaf parts of a source declaration: its settings class, the NHS APIs it calls and the
scenarios its emulator data demonstrates (server/sources/base.py assembles them into a Source)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.routing import BaseRoute

from server.nhs.error_codes import CodeMeaning


class SourceSettings(BaseSettings):
    """A source's own settings, read from FACADE_* like the façade's. Every field name starts
    with the key of one of the source's upstreams (`gpconnect_auth_mode`), so the environment
    variable names stay unique across sources (a test holds every source to this) and each
    `<key>_base_url` field is that upstream's URL (unset = the embedded emulator)."""

    model_config = SettingsConfigDict(env_prefix="FACADE_", extra="forbid")


@dataclass(frozen=True)
class Upstream:
    """One NHS API a source calls."""

    key: str  # settings prefix and health key: `pds` -> FACADE_PDS_BASE_URL
    api: str  # the name in errors, breakers, rate limits and logs: "PDS"
    emulator_path: str  # where the project's emulator serves this API (the live path shape)
    # The emulator's routes for it, imported only when an emulator runs.
    emulator_routes: Callable[[], Sequence[BaseRoute]]
    # Client-side requests per second NHS England publishes for the API (PDS: 5 per
    # application), used unless FACADE_UPSTREAM_RATE_LIMITS is set; None = unlimited.
    rate_limit: float | None = None
    # NHS error codes that mean something the HTTP status does not say (a 404 that is
    # "gone", a 403 that is the patient's consent); every other code follows the status.
    error_codes: Mapping[str, CodeMeaning] = field(default_factory=dict)


@dataclass(frozen=True)
class Scenario:
    """One request that shows something the source's emulator data holds (a restricted
    patient, a superseded NHS number, no consent...), for the console's catalogue (issue 12).

    Each source derives its scenarios from its emulator data (a flag, a table, a record's
    shape), so the catalogue follows the data instead of a hand-kept list. `query` values
    are search parameters; `headers` the NHS session headers the API needs; `scope`,
    `role`, `patient` and `purpose` describe the development token the request needs."""

    id: str  # unique across sources: "<upstream key>-<what>"
    title: str
    description: str
    resource_type: str
    path: str  # relative to the FHIR base: "Patient/9000000009"
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    method: str = "GET"
    scope: str = "user/*.rs"
    role: str = "clinician"
    patient: str | None = None
    purpose: str = "TREAT"


def no_scenarios() -> Sequence[Scenario]:
    return ()
