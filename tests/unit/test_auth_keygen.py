"""keygen: files with safe permissions, a JWKS NHS can register, and no overwrites."""

from __future__ import annotations

import json
import stat

import jwt
from cryptography.hazmat.primitives import serialization

from server.__main__ import main
from server.nhs.auth.keys import public_jwk_from_pem


def test_keygen_writes_private_key_0600_and_prints_jwks(tmp_path, capsys) -> None:
    assert main(["keygen", "--kid", "facade-2025", "--out", str(tmp_path), "--bits", "2048"]) == 0
    out = capsys.readouterr()
    key_set = json.loads(out.out)
    (jwk,) = key_set["keys"]
    assert {k: jwk[k] for k in ("kty", "alg", "kid", "use", "e")} == {
        "kty": "RSA",
        "alg": "RS512",
        "kid": "facade-2025",
        "use": "sig",
        "e": "AQAB",
    }
    private_path = tmp_path / "facade-2025.pem"
    assert stat.S_IMODE(private_path.stat().st_mode) == 0o600
    assert "PRIVATE KEY" not in out.out and "PRIVATE KEY" not in out.err
    # The printed JWK is the public half of the written private key.
    from_jwk = jwt.PyJWK.from_dict(jwk).key
    written = serialization.load_pem_public_key((tmp_path / "facade-2025.pub.pem").read_bytes())
    assert from_jwk.public_numbers() == written.public_numbers()
    assert public_jwk_from_pem(private_path.read_bytes(), "facade-2025") == jwk


def test_keygen_never_overwrites(tmp_path, capsys) -> None:
    assert main(["keygen", "--kid", "k", "--out", str(tmp_path), "--bits", "2048"]) == 0
    before = (tmp_path / "k.pem").read_bytes()
    assert main(["keygen", "--kid", "k", "--out", str(tmp_path), "--bits", "2048"]) == 1
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "k.pem").read_bytes() == before


def test_keygen_refuses_a_kid_that_is_a_path(tmp_path, capsys) -> None:
    assert main(["keygen", "--kid", "../evil", "--out", str(tmp_path), "--bits", "2048"]) == 2
    assert not any(tmp_path.iterdir())
