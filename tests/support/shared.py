"""Where the shared NHS examples live: ../shared beside the repository (as in CI), or
FACADE_SHARED_DIR. Contract tests read these files in place; they are never copied."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DIR = Path(os.environ.get("FACADE_SHARED_DIR", REPO_ROOT.parent / "shared"))
NHS_EXAMPLES = SHARED_DIR / "nhs-examples"


def example_files(pattern: str) -> list[Path]:
    """Files under nhs-examples matching a glob; fails loudly when the folder is missing."""
    if not NHS_EXAMPLES.is_dir():
        raise FileNotFoundError(f"NHS examples not found at {NHS_EXAMPLES}; set FACADE_SHARED_DIR")
    files = sorted(NHS_EXAMPLES.glob(pattern))
    if not files:
        raise FileNotFoundError(f"no NHS example matches {pattern!r} under {NHS_EXAMPLES}")
    return files
