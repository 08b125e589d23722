"""AccessControl.authenticate: a token is verified once, then served from the cache until it
expires; the purpose header is part of the key; an expired cached token is checked again."""

from __future__ import annotations

from typing import Any

import pytest

from server.access.audit_trail import InMemoryAuditTrail
from server.access.control import AccessControl
from server.access.policy import AccessPolicy
from server.access.roles import load_role_table
from server.access.tokens import InvalidToken


class CountingVerifier:
    def __init__(self, exp: float) -> None:
        self.calls = 0
        self.exp = exp

    async def verify(self, token: str) -> dict[str, Any]:
        self.calls += 1
        if self.calls > 1 and token == "expiring":
            raise InvalidToken("expired")
        return {
            "iss": "urn:test",
            "sub": f"user-{token}",
            "exp": self.exp,
            "scope": "user/*.rs",
            "roles": ["clinician"],
        }


class NoDirectory:
    async def registered(self, patient: str) -> bool:
        return False

    async def nhs_number(self, patient: str) -> str | None:
        return None


def control(verifier: CountingVerifier, now: list[float]) -> AccessControl:
    table = load_role_table()
    return AccessControl(
        verifier=verifier,
        table=table,
        policy=AccessPolicy(table, NoDirectory()),  # type: ignore[arg-type]
        trail=InMemoryAuditTrail(),
        observer="http://facade.test",
        clock=lambda: now[0],
        leeway=30,
    )


async def test_a_token_is_verified_once_while_it_is_valid() -> None:
    now = [1000.0]
    verifier = CountingVerifier(exp=2000.0)
    access = control(verifier, now)
    first = await access.authenticate("abc", None)
    second = await access.authenticate("abc", None)
    assert first is second and first.subject == "user-abc" and verifier.calls == 1
    other = await access.authenticate("abc", "ETREAT")  # the purpose header changes the principal
    assert other.purpose == "ETREAT" and first.purpose is None and verifier.calls == 2


async def test_a_cached_token_past_its_expiry_is_verified_again() -> None:
    now = [1000.0]
    verifier = CountingVerifier(exp=2000.0)
    access = control(verifier, now)
    await access.authenticate("expiring", None)
    now[0] = 2000.0 + 30  # still within the leeway
    await access.authenticate("expiring", None)
    assert verifier.calls == 1
    now[0] = 2000.0 + 31
    with pytest.raises(InvalidToken):
        await access.authenticate("expiring", None)
    assert verifier.calls == 2
