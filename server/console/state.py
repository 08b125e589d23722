"""What the console's routes and trace middleware share: its mode, the trace ring, and
(once the lifespan has resolved them) the NHS API URLs and the HTTP session.

Built by create_app when the console is on (server/console/gate.py) and handed to both;
nothing here is a module global, and nothing is opened: the session is the façade's own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from joserfc.jwk import RSAKey
from pymongo.asynchronous.collection import AsyncCollection

from server.access.dev_issuer import load_or_create_key
from server.access.environments import classify_url
from server.console.gate import ConsoleMode
from server.console.shared_traces import SharedTraces
from server.request_trace import Trace, TraceBuffer
from server.settings import Settings
from server.sources.base import Source


@dataclass(frozen=True)
class EmulatorControl:
    """Where an NHS API's emulator takes faults: its /_control base and the API's path prefix."""

    base_url: str
    path_prefix: str


@dataclass
class ConsoleState:
    mode: ConsoleMode
    settings: Settings
    sources: tuple[Source, ...]
    traces: TraceBuffer
    dev_tokens: bool  # the development issuer is trusted (sandbox only)
    upstreams: Mapping[str, str] = field(default_factory=dict)  # upstream key -> base URL (lifespan)
    session: aiohttp.ClientSession | None = None
    shared: SharedTraces | None = None  # with MongoDB: every worker's traces (server/console/shared_traces.py)
    _dev_key: RSAKey | None = field(default=None, repr=False)

    def connect(self, upstreams: Mapping[str, str], session: aiohttp.ClientSession) -> None:
        """Called by the lifespan once the NHS API URLs are resolved and the session is open."""
        self.upstreams = dict(upstreams)
        self.session = session

    def keep(self, trace: Trace) -> None:
        """File a finished trace: this worker's ring, and every worker's with MongoDB."""
        self.traces.store(trace)
        if self.shared is not None:
            self.shared.keep(trace.as_json())  # in the background, after the answer went

    def share(self, collection: AsyncCollection[dict[str, Any]]) -> SharedTraces:
        """Called by the lifespan when the façade has MongoDB: traces are shared from now on."""
        self.shared = SharedTraces(collection, self.traces.capacity)
        return self.shared

    def api_keys(self) -> list[str]:
        return [u.key for s in self.sources for u in s.upstreams]

    def emulator_control(self, key: str) -> EmulatorControl | None:
        """The emulator behind upstream `key`, when it is the project's own (sandbox mode, a
        URL classed as the emulator that ends in the API's emulator path); else None."""
        if self.mode != "sandbox":
            return None
        url = self.upstreams.get(key)
        upstream = next((u for s in self.sources for u in s.upstreams if u.key == key), None)
        if url is None or upstream is None:
            return None
        if classify_url(url, self.settings.emulator_hosts) != "emulator":
            return None
        suffix = "/" + upstream.emulator_path.strip("/")
        if not url.rstrip("/").endswith(suffix):
            return None
        return EmulatorControl(url.rstrip("/")[: -len(suffix)], suffix)

    def fault_control(self) -> bool:
        return self.session is not None and any(self.emulator_control(k) for k in self.api_keys())

    def audience(self) -> str:
        """The audience a façade's own verifier expects (server.access.wiring.trusted_issuers)."""
        return self.settings.auth_audience[0] if self.settings.auth_audience else self.settings.public_base_url()

    def dev_key(self) -> RSAKey:
        """The development issuer's key, read on first use (the one `nhs-fhir-facade token` uses)."""
        if self._dev_key is None:
            path: Path | None = self.settings.dev_issuer_key_path
            self._dev_key = load_or_create_key(path)
        return self._dev_key


def scenario_sources(sources: Sequence[Source]) -> list[tuple[Source, str]]:
    """Each source with the key of its first upstream (scenarios name their source by it)."""
    return [(s, s.upstreams[0].key if s.upstreams else s.name) for s in sources]
