"""The benchmarks' server processes: started as children, their workers, their CPU time and resident memory."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def rss_mib(pid: int) -> float | None:
    """Resident set size of a process in MiB: psutil when installed, else Linux /proc."""
    try:
        import psutil  # type: ignore[import-untyped]

        return psutil.Process(pid).memory_info().rss / 2**20
    except ImportError:
        pass
    except Exception:  # the process is gone
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time of a process so far (Linux /proc; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError, TypeError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def worker_pids(serve_pid: int) -> list[int]:
    """The serve process's children that are façade workers (Linux /proc; psutil otherwise)."""
    try:
        children = [int(p) for p in Path(f"/proc/{serve_pid}/task/{serve_pid}/children").read_text().split()]
    except OSError:
        try:
            import psutil

            children = [c.pid for c in psutil.Process(serve_pid).children()]
        except Exception:
            return []
    return sorted(children)


@contextlib.contextmanager
def child(
    args: list[str], env: dict[str, str] | None = None, *, inherit: bool = True
) -> Iterator[subprocess.Popen[bytes]]:
    """`python *args` in the repository, with this environment plus `env` (`env` alone
    when not `inherit`), its output discarded; terminated (then killed) when the block ends."""
    proc = subprocess.Popen(
        [sys.executable, *args],
        cwd=REPO,
        env={**os.environ, **(env or {})} if inherit else dict(env or {}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
