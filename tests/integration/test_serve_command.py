"""`nhs-fhir-facade serve` as the operator runs it: Granian worker processes configured from
FACADE_* variables, refusals that are one line, a graceful stop on SIGTERM, and two workers
sharing MongoDB."""

from __future__ import annotations

import socket
import subprocess
import time
import uuid
from pathlib import Path

import aiohttp
import pytest

from tests.support.mongo import MongoTarget
from tests.support.processes import clean_environment, environment, serve_command, serving_process
from tests.support.servers import free_port, running_emulator
from tests.support.shared import REPO_ROOT
from tests.support.tokens import bearer, facade_access_settings, signing_key

PATIENT = "9000000009"


def _refusal(flags: list[str], env: dict[str, str] | None = None) -> tuple[int, list[str]]:
    result = subprocess.run(
        serve_command(*flags), cwd=REPO_ROOT, env=clean_environment(env or {}), capture_output=True, timeout=60
    )
    assert result.stdout == b""
    return result.returncode, result.stderr.decode().splitlines()


def test_a_port_in_use_is_one_clear_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, lines = _refusal(["--port", str(port)])
    assert code == 2
    assert lines == [f"serve: cannot listen on 127.0.0.1:{port}: Address already in use"]


def test_an_mllp_port_in_use_or_unusable_tls_files_are_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        mllp = taken.getsockname()[1]
        code, lines = _refusal(["--port", str(free_port())], {"FACADE_MLLP_PORT": str(mllp)})
    assert code == 2
    assert lines == [f"serve: MLLP cannot listen on 127.0.0.1:{mllp}: Address already in use"]
    not_pem = tmp_path / "cert.pem"
    not_pem.write_text("not a certificate")
    tls = {"FACADE_MLLP_PORT": str(free_port()), "FACADE_MLLP_TLS_CERT": str(not_pem)}
    code, lines = _refusal(["--port", str(free_port())], {**tls, "FACADE_MLLP_TLS_KEY": str(tmp_path / "missing.pem")})
    assert code == 2 and len(lines) == 1
    assert lines[0].startswith("serve: MLLP TLS files (FACADE_MLLP_TLS_*) cannot be used:"), lines


def test_mllp_tls_settings_that_cannot_work_together_are_refused() -> None:
    code, lines = _refusal(["--port", str(free_port())], {"FACADE_MLLP_PORT": "2575", "FACADE_MLLP_TLS_CERT": "c.pem"})
    assert code == 2 and len(lines) == 1 and "FACADE_MLLP_TLS_CERT and FACADE_MLLP_TLS_KEY go together" in lines[0]
    code, lines = _refusal(["--port", str(free_port())], {"FACADE_MLLP_TLS_CLIENT_CA": "ca.pem"})
    assert code == 2 and len(lines) == 1 and "needs FACADE_MLLP_TLS_CERT" in lines[0]


def test_more_than_one_worker_without_mongodb_is_refused_in_one_line() -> None:
    code, lines = _refusal(["--port", str(free_port()), "--workers", "2"])
    assert code == 2 and len(lines) == 1
    assert lines[0].startswith("serve: 2 workers need FACADE_MONGODB_URI")
    code, lines = _refusal(["--port", str(free_port())], {"FACADE_WORKERS": "3"})  # the variable, no flag
    assert code == 2 and lines[0].startswith("serve: 3 workers need FACADE_MONGODB_URI") and len(lines) == 1


async def test_sandbox_serve_answers_then_stops_gracefully_on_sigterm(tmp_path: Path) -> None:
    """`make run`: one worker, the embedded emulator started inside the worker's lifespan."""
    env = clean_environment(
        {"FACADE_DEV_ISSUER_KEY_PATH": str(tmp_path / "issuer.pem"), "FACADE_AUDIT_SPOOL_DIR": str(tmp_path)}
    )
    async with serving_process(env, free_port(), tmp_path / "serve.log") as served:
        async with aiohttp.ClientSession() as http, http.get(served.base_url + "/metadata") as resp:
            assert resp.status == 200
        assert "embedded NHS emulator" in served.log()
        started = time.monotonic()
        code = served.stop()
        stopped_in = time.monotonic() - started
    assert code == 0
    assert stopped_in < 5, stopped_in
    messages = [line["message"] for line in served.log_lines()]
    # The worker's lifespan shutdown ran (sessions, emulator and stores closed), then the CLI ended.
    assert any(m.startswith("façade stopped") for m in messages), served.log()
    assert messages[-1] == "nhs-fhir-facade stopped"
    assert "Traceback" not in served.log()


@pytest.mark.mongo
async def test_two_workers_share_mongodb_and_both_answer(mongo_db: MongoTarget, tmp_path: Path) -> None:
    signing_key()  # the key file exists before the workers read it
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with running_emulator() as emulator:
        env = clean_environment(
            environment(
                {
                    "base_url": base,
                    "mongodb_uri": mongo_db.uri,
                    "mongodb_database": mongo_db.database,
                    "audit_spool_dir": tmp_path,
                    **facade_access_settings(base),
                    **emulator.upstream_settings(),
                }
            )
        )
        async with serving_process(env, port, tmp_path / "serve.log", "--workers", "2", workers=2) as served:
            assert len(served.ready_workers()) == 2
            sent: list[str] = []

            def answered_by() -> set[str]:
                return {line["pid"] for line in served.log_lines() if any(rid in line["message"] for rid in sent)}

            # A new connection per request: the kernel hands each to whichever worker accepts
            # it. Several rounds, until both workers have answered (at most 30).
            connector = aiohttp.TCPConnector(force_close=True)
            async with aiohttp.ClientSession(connector=connector) as http:
                for round_ in range(30):
                    for path in ("/metadata", f"/Patient/{PATIENT}"):
                        request_id = str(uuid.uuid4())
                        sent.append(request_id)
                        headers = {**bearer(), "X-Request-ID": request_id}
                        async with http.get(base + path, headers=headers) as resp:
                            body = await resp.json(content_type=None)
                            assert resp.status == 200, body
                            assert body["resourceType"] in ("CapabilityStatement", "Patient")
                    if round_ >= 5 and answered_by() == served.ready_workers():
                        break
            assert answered_by() == served.ready_workers(), served.log()
            assert served.stop() == 0


def test_an_invalid_setting_is_one_line_per_setting_and_exit_2() -> None:
    """FACADE_WORKERS=0 is a configuration error: named in one line, exit 2, no traceback."""
    done = subprocess.run(
        serve_command(),
        env=clean_environment({"FACADE_WORKERS": "0"}),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("serve: FACADE_WORKERS:"), done.stderr
