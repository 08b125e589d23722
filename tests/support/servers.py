"""Real servers on loopback for integration tests: the emulator and the façade, each on
its own free port, talking HTTP to each other and to the test."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from server.app import create_app
from server.sandbox.app import create_emulator_app
from server.sandbox.faults import EmulatorState
from server.sandbox.oauth import OAuthState
from server.serving import serving
from server.settings import Settings
from server.sources.base import Source
from server.sources.registry import SOURCES
from tests.support.tokens import facade_access_settings, signing_key, with_default_auth


@dataclass
class Emulator:
    url: str
    state: EmulatorState
    oauth: OAuthState = field(default_factory=OAuthState)

    @property
    def pds_url(self) -> str:
        return f"{self.url}/personal-demographics/FHIR/R4"

    @property
    def token_url(self) -> str:
        """The emulated NHS OAuth2 token endpoint (server/sandbox/oauth.py)."""
        return f"{self.url}/oauth2/token"

    @property
    def bars_url(self) -> str:
        return f"{self.url}/booking-and-referral/FHIR/R4"

    @property
    def ers_url(self) -> str:
        return f"{self.url}/referrals/FHIR"

    sources: Sequence[Source] = SOURCES

    def upstream_settings(self, sources: Sequence[Source] | None = None) -> dict[str, Any]:
        """FACADE_* settings that point every NHS API of `sources` (default: the emulator's)
        at this emulator. The emulator is ours, so no client-side rate limit unless a test
        sets upstream_rate_limits."""
        urls = {
            f"{u.key}_base_url": f"{self.url}/{u.emulator_path}"
            for s in (self.sources if sources is None else sources)
            for u in s.upstreams
        }
        return {**urls, "upstream_rate_limits": {}}

    @property
    def cpt_url(self) -> str:
        return f"{self.url}/clinical-prescription-tracker"

    @property
    def gpconnect_url(self) -> str:
        return f"{self.url}/gpconnect/Y12345/STU3/1/gpconnect/structured/fhir"


@contextlib.asynccontextmanager
async def running_emulator(sources: Sequence[Source] = SOURCES) -> AsyncIterator[Emulator]:
    state = EmulatorState()
    oauth = OAuthState()
    async with serving(create_emulator_app(state, oauth, sources), ready_path="/_control/requests") as url:
        yield Emulator(url, state, oauth, sources)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.asynccontextmanager
async def running_facade(
    emulator: Emulator, sources: Sequence[Source] | None = None, **overrides: Any
) -> AsyncIterator[str]:
    """The façade on a free loopback port, its public base URL set to that address.

    The console is off unless a test turns it on (console="auto" or "on"). The read-through cache is off unless a test passes cache_enabled=True (the cache
    tests do): tests that count upstream requests or inject faults then see every
    request reach the emulator, as they were written to.

    It trusts the test token issuer (tests/support/tokens.py), and the relationship check
    is off unless a test turns it on (relationship_required=True): the access tests do.
    `sources`: the NHS sources to serve; default the emulator's."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    signing_key()  # the key file exists before the façade reads it
    sources = emulator.sources if sources is None else sources
    settings = Settings(
        **{
            "base_url": base,
            "port": port,
            "cache_enabled": False,
            # The console off, as a deployment against NHS has it (so plain reads take the
            # read shortcut, server/fhir/read_shortcut.py); the console's tests turn it on.
            "console": "off",
            **facade_access_settings(base),
            **emulator.upstream_settings(sources),
            **overrides,
        }
    )
    async with serving(create_app(settings, sources), port=port, ready_path="/metadata") as url:
        yield url


class FHIRClient:
    """A thin aiohttp client for tests: returns (status, headers, json-or-None). Every
    request carries the default test token unless it sets Authorization or anonymous=True."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession) -> None:
        self.base_url = base_url
        self.session = session

    async def get(self, path: str, **kwargs: Any) -> tuple[int, Any, Any]:
        async with self.session.get(self.base_url + path, **with_default_auth(kwargs)) as resp:
            raw = await resp.read()
            body = await resp.json(content_type=None) if raw else None
            return resp.status, resp.headers, body

    async def post(self, path: str, **kwargs: Any) -> tuple[int, Any, Any]:
        async with self.session.post(self.base_url + path, **with_default_auth(kwargs)) as resp:
            raw = await resp.read()
            body = await resp.json(content_type=None) if raw else None
            return resp.status, resp.headers, body

    async def request(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any, Any]:
        async with self.session.request(method, self.base_url + path, **with_default_auth(kwargs)) as resp:
            raw = await resp.read()
            body = await resp.json(content_type=None) if raw else None
            return resp.status, resp.headers, body
