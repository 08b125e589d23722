"""The benchmarks' caller: a valid access token on every façade request, and a façade that trusts it.

The façade answers every endpoint but /metadata, /.well-known/smart-configuration,
/openapi.json and /_health only with `Authorization: Bearer <JWT>` (server/access/). The
benchmarks run it as the integration tests do (tests/support/tokens.py): a per-run
development-issuer key the façade trusts, the token `tests.support.tokens.bearer()` sends
(the all-powerful `tester` role, purpose of use TREAT), and the relationship check off:
they measure speed, not who may see patient 9000000009. So every façade figure includes,
per request, verifying the token (RS256), the access decision and the audit record (a
MongoDB insert when the façade has MongoDB, else in memory); a bare floor app does none of it.

One more setting differs from the shipped defaults, for the reason the NHS client-side
limits are lifted: the per-caller NHS quota (2 requests/s sustained) is lifted too. The
benchmark's one token stands in for many clinicians, and the quota would measure itself.
"""

from __future__ import annotations

import json
import time
from typing import Any

from server.access.dev_issuer import DEV_ISSUER, public_key_set
from server.access.tokens import StaticKeys, TokenVerifier, TrustedIssuer
from tests.support.tokens import TEST_AUDIENCE, default_token, facade_access_settings, key_path, signing_key

# Settings overrides for an in-process façade (tests.support.servers.running_facade, which
# already trusts the test issuer with the relationship check off).
NO_CALLER_QUOTA: dict[str, Any] = {"caller_nhs_rate": 1e9, "caller_nhs_burst": 1e9}


def facade_env(base_url: str) -> dict[str, str]:
    """FACADE_* variables that make a façade started as its own process (`python -m server
    serve`) trust the benchmark token; its audit spool goes next to the per-run key, not
    into the user's state directory."""
    signing_key()  # the key file exists before the façade reads it
    settings = {
        **facade_access_settings(base_url),
        **NO_CALLER_QUOTA,
        "audit_spool_dir": key_path().parent / "audit-spool",
    }
    return {f"FACADE_{name.upper()}": _env_value(value) for name, value in settings.items()}


def _env_value(value: Any) -> str:
    """A settings value as pydantic-settings reads it from the environment (lists as JSON)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    return str(value)


async def verification_us(rounds: int = 500) -> float:
    """Microseconds one verification of the benchmark token costs in this process: the same
    TokenVerifier and key the façade uses, without HTTP, policy or audit around it."""
    verifier = TokenVerifier(
        [TrustedIssuer(DEV_ISSUER, StaticKeys(public_key_set(signing_key())), (TEST_AUDIENCE,), ("RS256",))]
    )
    token = default_token()
    await verifier.verify(token)  # warm up
    start = time.perf_counter()
    for _ in range(rounds):
        await verifier.verify(token)
    return (time.perf_counter() - start) / rounds * 1e6
