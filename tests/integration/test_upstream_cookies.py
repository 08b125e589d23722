"""NHS calls carry no cookies: the façade's one aiohttp session serves every caller, so a
cookie an NHS answer sets (a gateway's affinity or session cookie) would otherwise be sent
on the next caller's calls. Here every emulator answer sets one, and no later call sends it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.sandbox.app import create_emulator_app
from server.sandbox.faults import EmulatorState
from server.sandbox.oauth import OAuthState
from server.serving import serving
from server.sources.registry import SOURCES
from tests.support.access import CLINICIAN, JANE, JAYNE, auth
from tests.support.servers import Emulator, running_facade


class CookieSetter:
    """The emulator, with a Set-Cookie on every answer and each request's Cookie noted."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.cookies: list[bytes | None] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.cookies.append(next((v for k, v in scope["headers"] if k == b"cookie"), None))

        async def with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), (b"set-cookie", b"affinity=first-caller; Path=/")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_cookie)


@pytest.fixture
async def cookie_emulator() -> AsyncIterator[tuple[Emulator, CookieSetter]]:
    state, oauth = EmulatorState(), OAuthState()
    setter = CookieSetter(create_emulator_app(state, oauth, SOURCES))
    async with serving(setter, ready_path="/_control/requests") as url:
        # By name, not 127.0.0.1: aiohttp keeps no cookie from an IP address, so an IP would
        # hide the shared jar this test is about.
        yield Emulator(url.replace("127.0.0.1", "localhost"), state, oauth, SOURCES), setter


async def test_a_cookie_an_nhs_answer_sets_is_never_sent_again(
    cookie_emulator: tuple[Emulator, CookieSetter], http: aiohttp.ClientSession
) -> None:
    emulator, setter = cookie_emulator
    async with running_facade(emulator) as url:
        for patient in (JANE, JAYNE, JANE):
            async with http.get(f"{url}/Patient/{patient}", headers=auth(CLINICIAN)) as resp:
                assert resp.status == 200
    assert len(setter.cookies) >= 4, "the readiness probe, then the reads, reached the emulator"
    assert setter.cookies == [None] * len(setter.cookies), "no call sent back a cookie it was given"
