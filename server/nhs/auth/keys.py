"""RSA signing keys: load the configured private key, generate key pairs, publish JWKS.

NHS fetches the public half as a JWKS (kty RSA, n, e, alg RS512, kid, use sig) from the
app's registered key or JWKS URL; the private half signs the client assertions.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc.jwk import RSAKey

NHS_KEY_BITS = 4096  # NHS guidance recommends 4096-bit RSA keys


class KeyConfigError(ValueError):
    """The configured signing key is missing or unreadable (message never holds key text)."""


@dataclass(frozen=True)
class KeyPair:
    private_pem: bytes
    public_pem: bytes
    public_numbers: rsa.RSAPublicNumbers


def generate_key_pair(bits: int = NHS_KEY_BITS) -> KeyPair:
    """A fresh RSA key pair (public exponent 65537) as PEM."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = private.public_key()
    public_pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return KeyPair(private_pem, public_pem, public.public_numbers())


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def public_jwk(numbers: rsa.RSAPublicNumbers, kid: str) -> dict[str, Any]:
    """The JWK NHS expects for a signing key (RFC 7518 section 6.3.1 encoding of n and e)."""
    return {
        "kty": "RSA",
        "n": _b64url_uint(numbers.n),
        "e": _b64url_uint(numbers.e),
        "alg": "RS512",
        "kid": kid,
        "use": "sig",
    }


def jwks(*keys: dict[str, Any]) -> dict[str, Any]:
    """A JWK Set; rotation publishes the new kid alongside the old one."""
    return {"keys": list(keys)}


def public_jwk_from_pem(private_pem: bytes, kid: str) -> dict[str, Any]:
    key = serialization.load_pem_private_key(private_pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise KeyConfigError("the signing key is not an RSA key")
    return public_jwk(key.public_key().public_numbers(), kid)


def write_key_pair(pair: KeyPair, out_dir: Path, kid: str) -> tuple[Path, Path]:
    """Write `{kid}.pem` (mode 0600, created exclusively) and `{kid}.pub.pem`; never overwrites."""
    out_dir.mkdir(parents=True, exist_ok=True)
    private_path = out_dir / f"{kid}.pem"
    public_path = out_dir / f"{kid}.pub.pem"
    for path in (private_path, public_path):
        if path.exists():
            raise FileExistsError(f"{path} already exists; choose another kid or directory")
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pair.private_pem)
    public_path.write_bytes(pair.public_pem)
    return private_path, public_path


def load_signing_key(pem: bytes) -> RSAKey:
    """Parse a PEM private key once at start-up; errors name the problem, never the key."""
    try:
        key = RSAKey.import_key(pem)
    except Exception:  # joserfc raises several types for bad PEM
        raise KeyConfigError("the signing key is not a readable RSA private key in PEM format") from None
    if not key.is_private:
        raise KeyConfigError("the signing key is a public key; the private key is needed to sign")
    return key


def read_private_pem(path: Path | None, pem_text: str | None) -> bytes:
    """The PEM from FACADE_PRIVATE_KEY (text) or FACADE_PRIVATE_KEY_PATH (file)."""
    if pem_text:
        return pem_text.encode("ascii", errors="replace")
    if path is None:
        raise KeyConfigError("signed-jwt auth needs FACADE_PRIVATE_KEY_PATH or FACADE_PRIVATE_KEY")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise KeyConfigError(f"cannot read the signing key file {path} ({exc.strerror})") from None
