"""MongoDB credentials (issue 8): the user in FACADE_MONGODB_URI, the password from
FACADE_MONGODB_PASSWORD_FILE (a compose secret), read at start."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.mongodb import MongoCredentialsError, open_mongo_client, read_password
from server.settings import Settings

URI = "mongodb://facade@mongo:27017/?authSource=admin"


def secret(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mongo_facade_password"
    path.write_text(text, encoding="utf-8")
    return path


def test_no_file_no_password() -> None:
    assert read_password(None, "mongodb://mongo:27017") is None


@pytest.mark.parametrize(
    "text, password",
    [("s3cret", "s3cret"), ("s3cret\n", "s3cret"), ("s3cret\r\n", "s3cret"), ("p@ss:w/rd \n", "p@ss:w/rd ")],
)
def test_the_password_is_the_file_without_its_trailing_newline(tmp_path: Path, text: str, password: str) -> None:
    assert read_password(secret(tmp_path, text), URI) == password


@pytest.mark.parametrize(
    "uri, text, message",
    [
        ("mongodb://mongo:27017", "x", "names no user"),
        ("mongodb://facade:inline@mongo:27017", "x", "carries a password"),
        (URI, "", "is empty"),
        (URI, "\n", "is empty"),
    ],
)
def test_misconfiguration_stops_the_start(tmp_path: Path, uri: str, text: str, message: str) -> None:
    with pytest.raises(MongoCredentialsError, match=message):
        read_password(secret(tmp_path, text), uri)


def test_a_missing_file_stops_the_start_without_naming_its_content(tmp_path: Path) -> None:
    with pytest.raises(MongoCredentialsError, match="cannot be read"):
        read_password(tmp_path / "absent", URI)


async def test_the_shared_client_authenticates_as_the_uri_user_with_the_file_password(tmp_path: Path) -> None:
    settings = Settings(mongodb_uri=URI, mongodb_password_file=secret(tmp_path, "s3cret\n"))
    async with open_mongo_client(settings) as client:  # connects lazily: no MongoDB needed
        assert client is not None
        credentials = client.options.pool_options._credentials
        assert (credentials.username, credentials.password, credentials.source) == ("facade", "s3cret", "admin")
