"""Whether the console runs, and in which mode: decided once, at create_app.

- `sandbox`: every NHS API (and the NHS token endpoint) is the project's emulator, as the
  development issuer's `auto` decides it (server.access.wiring.nhs_environment). Data is
  synthetic: traces are kept as recorded, the page can mint development tokens and set
  emulator faults.
- `live`: FACADE_CONSOLE=on against anything else. Traces are redacted before they are
  stored and read by console roles only; no token minting, no fault controls, no scenarios.
- `off`: no console routes (404) and no trace middleware at all, so tracing costs nothing.
FACADE_CONSOLE=auto is `sandbox` where the NHS APIs are the emulator, else `off`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from server.access.wiring import nhs_environment
from server.settings import Settings
from server.sources.base import Source
from server.sources.config import SourceConfig

ConsoleMode = Literal["sandbox", "live", "off"]


def console_mode(settings: Settings, nhs_urls: Sequence[str | None]) -> ConsoleMode:
    """The console's mode for these settings and NHS API URLs (None = the embedded emulator)."""
    if settings.console == "off":
        return "off"
    sandbox = nhs_environment(settings, nhs_urls) == "emulator"
    if sandbox:
        return "sandbox"
    return "live" if settings.console == "on" else "off"


def console_mode_for(settings: Settings, sources: Sequence[Source]) -> ConsoleMode:
    """console_mode from the sources' configured URLs. Settings the sources refuse give
    "off" here: the lifespan then stops the start-up with the real error."""
    try:
        urls = SourceConfig.resolve(settings, sources).configured_urls()
    except ValueError:
        return "off"
    return console_mode(settings, urls)
