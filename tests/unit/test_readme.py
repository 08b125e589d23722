"""The README is the operator's manual: it must document every setting the code reads,
and keep the two commands a fresh machine starts from."""

from __future__ import annotations

from server.settings import Settings
from server.sources.registry import SOURCES
from tests.support.shared import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
# The façade's own settings and every registered source's.
SETTING_NAMES = [*Settings.model_fields, *(name for source in SOURCES for name in source.setting_names())]


def test_every_setting_is_in_the_readme_table() -> None:
    missing = [f"FACADE_{name.upper()}" for name in SETTING_NAMES if f"| `FACADE_{name.upper()}`" not in README]
    assert missing == []


def test_readme_documents_no_setting_that_does_not_exist() -> None:
    import re

    documented = set(re.findall(r"^\| `FACADE_([A-Z0-9_]+)`", README, flags=re.M))
    assert documented - {name.upper() for name in SETTING_NAMES} == set()


def test_quick_start_commands_are_there() -> None:
    assert "make run" in README and "make test" in README
