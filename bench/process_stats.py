"""What the benchmarks read of a server process: its workers and their resident memory."""

from __future__ import annotations

from pathlib import Path


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
