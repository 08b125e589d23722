"""The development token issuer: `nhs-fhir-facade token` signs, a sandbox façade trusts.

One RSA key per user, kept outside the working tree (so a clone never carries it and
every checkout on the machine shares it): $FACADE_DEV_ISSUER_KEY_PATH, else
$XDG_CONFIG_HOME/nhs-fhir-facade/dev-issuer.pem, else ~/.config/nhs-fhir-facade/dev-issuer.pem,
created with mode 0600 on first use. Whether a façade may trust it is decided by
server.access.wiring (never against NHS production).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

DEV_ISSUER = "urn:nhs-fhir-facade:dev-issuer"
DEV_KID = "dev-issuer-1"
DEFAULT_LIFETIME = 3600


def default_key_path() -> Path:
    configured = os.environ.get("FACADE_DEV_ISSUER_KEY_PATH")
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "nhs-fhir-facade" / "dev-issuer.pem"


def load_or_create_key(path: Path | None = None) -> RSAKey:
    """The development signing key, generated (2048-bit, mode 0600) when the file is absent."""
    path = path or default_key_path()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = RSAKey.generate_key(2048, parameters={"kid": DEV_KID}, private=True)
        pem = key.as_pem(private=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it first: use theirs
            pass
        else:
            with os.fdopen(fd, "wb") as handle:
                handle.write(pem)
    if path.stat().st_mode & 0o077:
        # Anyone who can read it can sign tokens a sandbox façade accepts.
        raise PermissionError(f"{path} is readable by other users: chmod 600 it (or delete it to make a new one)")
    return RSAKey.import_key(path.read_bytes(), parameters={"kid": DEV_KID})


def public_key_set(key: RSAKey) -> KeySet:
    return KeySet.import_key_set({"keys": [key.as_dict(private=False)]})


def issue_token(
    key: RSAKey,
    *,
    audience: str,
    scope: str,
    subject: str = "dev-user",
    roles: Sequence[str] = (),
    patient: str | None = None,
    purpose: str | None = None,
    lifetime: int = DEFAULT_LIFETIME,
    now: float | None = None,
    extra: dict[str, Any] | None = None,
) -> str:
    """A signed access token of the development issuer (RS256)."""
    issued = int(now if now is not None else time.time())
    claims: dict[str, Any] = {
        "iss": DEV_ISSUER,
        "sub": subject,
        "aud": audience,
        "iat": issued,
        "nbf": issued,
        "exp": issued + lifetime,
        "jti": str(uuid.uuid4()),
        "scope": scope,
        "client_id": "dev-cli",
    }
    if roles:
        claims["roles"] = list(roles)
    if patient:
        claims["patient"] = patient
    if purpose:
        claims["purpose_of_use"] = purpose
    claims.update(extra or {})
    return jwt.encode({"alg": "RS256", "kid": DEV_KID, "typ": "JWT"}, claims, key)
