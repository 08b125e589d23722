"""The façade as the operator runs it: `python -m server serve` in a process of its own
(Granian and its workers), configured through FACADE_* variables only, its log in a file."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.shared import REPO_ROOT

# LOG_FORMAT of server/__main__.py: "time level pid logger message".
_LOG_LINE = re.compile(r"^\S+ \S+ (?P<level>[A-Z]+) (?P<pid>\d+) (?P<logger>\S+) (?P<message>.*)$")


def environment(settings: Mapping[str, Any]) -> dict[str, str]:
    """Settings as the FACADE_* variables pydantic-settings reads back: lists and dicts as JSON,
    booleans as true/false, paths and numbers as text."""
    env = {}
    for name, value in settings.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, list | tuple | dict):
            text = json.dumps(list(value) if isinstance(value, tuple) else value, default=str)
        else:
            text = str(value)
        env[f"FACADE_{name.upper()}"] = text
    return env


def clean_environment(extra: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without its own FACADE_* variables, plus `extra`."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("FACADE_")}, **extra}


def serve_command(*flags: str) -> list[str]:
    return [sys.executable, "-m", "server", "serve", *flags]


@dataclass
class ServeProcess:
    process: subprocess.Popen[bytes]
    log_path: Path
    base_url: str

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_lines(self) -> list[dict[str, str]]:
        """Parsed lines of the façade's own log format (continuation lines left out)."""
        return [m.groupdict() for line in self.log().splitlines() if (m := _LOG_LINE.match(line))]

    def ready_workers(self) -> set[str]:
        """Process ids of the workers whose app finished its lifespan start-up."""
        return {
            line["pid"]
            for line in self.log_lines()
            if line["logger"] == "facade" and line["message"].startswith("façade ready")
        }

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, as a container runtime stops it; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)


@contextlib.asynccontextmanager
async def serving_process(
    env: Mapping[str, str], port: int, log_path: Path, *flags: str, workers: int = 1, timeout: float = 30.0
) -> AsyncIterator[ServeProcess]:
    """`serve` on `port` with exactly `env`; yields once /metadata answered and `workers`
    workers are ready; stopped with SIGTERM (then killed) on the way out."""
    process = _start(env, port, log_path, flags)
    served = ServeProcess(process, log_path, f"http://127.0.0.1:{port}")
    try:
        await _wait_ready(served, workers, timeout)
        yield served
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


def _start(env: Mapping[str, str], port: int, log_path: Path, flags: tuple[str, ...]) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        return subprocess.Popen(
            serve_command("--port", str(port), *flags),
            cwd=REPO_ROOT,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


async def _wait_ready(served: ServeProcess, workers: int, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with aiohttp.ClientSession() as http:
        while True:
            if served.process.poll() is not None:
                raise RuntimeError(f"serve exited with {served.process.returncode}:\n{served.log()}")
            with contextlib.suppress(TimeoutError, aiohttp.ClientError):
                async with http.get(served.base_url + "/metadata", timeout=aiohttp.ClientTimeout(total=1)) as resp:
                    await resp.read()
                    if resp.status == 200 and len(served.ready_workers()) >= workers:
                        return
            if loop.time() > deadline:
                raise RuntimeError(f"serve was not ready within {timeout} s:\n{served.log()}")
            await asyncio.sleep(0.1)
