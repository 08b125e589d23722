"""Access tokens for tests: one development-issuer key per test run, and tokens signed with it.

Every façade the tests start trusts this key (as a sandbox façade trusts the developer's
own key), so the test clients can send a real, verified token on every request. The
default token may do everything (the tester role, user/ and system/ scopes, purpose TREAT):
tests of other features then run as an authorised caller, and the access tests mint
narrower ones with `token(...)`.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from joserfc.jwk import RSAKey

from server.access.dev_issuer import issue_token, load_or_create_key
from server.access.roles import DEFAULT_POLICY, PAS_ACTIONS

TEST_AUDIENCE = "urn:nhs-fhir-facade:tests"
# The default token's role: the shipped role table plus one role that may do everything,
# so tests of other features (including types registered by a test) are not about roles.
TESTER_ROLE = "tester"
ALL_ROLES = (TESTER_ROLE,)
ALL_SCOPES = "user/*.cruds system/*.cruds"


@functools.cache
def key_path() -> Path:
    directory = tempfile.mkdtemp(prefix="facade-test-issuer-")
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return Path(directory) / "dev-issuer.pem"


@functools.cache
def policy_path() -> Path:
    """The shipped roles.yaml plus the tester role, as a file the façade loads."""
    document = yaml.safe_load(DEFAULT_POLICY.read_text(encoding="utf-8"))
    document["roles"][TESTER_ROLE] = {"description": "tests only", "fhir": {"*": "cruds"}, "pas": sorted(PAS_ACTIONS)}
    path = key_path().parent / "roles-with-tester.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


@functools.cache
def signing_key() -> RSAKey:
    return load_or_create_key(key_path())


def token(
    scope: str = ALL_SCOPES,
    *,
    roles: Sequence[str] = ALL_ROLES,
    patient: str | None = None,
    purpose: str | None = "TREAT",
    subject: str = "test-user",
    audience: str = TEST_AUDIENCE,
    lifetime: int = 3600,
    now: float | None = None,
    extra: dict[str, Any] | None = None,
) -> str:
    return issue_token(
        signing_key(),
        audience=audience,
        scope=scope,
        subject=subject,
        roles=roles,
        patient=patient,
        purpose=purpose,
        lifetime=lifetime,
        now=now,
        extra=extra,
    )


@functools.cache
def default_token() -> str:
    return token(lifetime=24 * 3600)


def bearer(value: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {value or default_token()}"}


def with_default_auth(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Request kwargs with the default token added, unless the test set Authorization itself
    or asked for an anonymous request (anonymous=True)."""
    anonymous = kwargs.pop("anonymous", False)
    headers = dict(kwargs.get("headers") or {})
    if not anonymous and not any(k.lower() == "authorization" for k in headers):
        headers.update(bearer())
    kwargs["headers"] = headers
    return kwargs


def facade_access_settings(base_url: str) -> dict[str, Any]:
    """Settings that make a test façade trust the test key (dev issuer, loopback emulator)."""
    return {
        "dev_issuer": "auto",
        "dev_issuer_key_path": key_path(),
        "auth_audience": [base_url, TEST_AUDIENCE],
        "relationship_required": False,
        "access_policy": policy_path(),
        # One test token stands for every caller: the per-caller NHS quota is lifted
        # (tests/integration/test_caller_quota.py sets its own).
        "caller_nhs_rate": 10_000.0,
        "caller_nhs_burst": 100_000.0,
    }
