"""Reading a mapping file, shared by both kinds: the PAS profiles (mappings/spec.py) and the
STU3 -> R4 rules (mappings/stu3_to_r4/rules.py).

A broken file of either kind fails the same way: when it is loaded (at start-up), with one
SpecError that names the file and lists every mistake found, never on the first record that
happens to exercise the broken line. Paths in both kinds are mappings/paths.py paths,
checked here with the same parser the engines walk them with.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from mappings.paths import PathError, parse_path


class SpecError(ValueError):
    """The mapping file itself is wrong; the message lists every mistake found."""

    def __init__(self, source: str, mistakes: list[str]) -> None:
        super().__init__(f"{source}: " + "; ".join(mistakes))
        self.mistakes = mistakes


def read_yaml(file: Path) -> Any:
    """The parsed document; an unreadable file or broken YAML is a SpecError naming the file."""
    try:
        return yaml.safe_load(file.read_text(encoding="utf-8"))
    except OSError as err:
        raise SpecError(str(file), [f"cannot read the file ({err.strerror})"]) from None
    except yaml.YAMLError as err:
        raise SpecError(str(file), [f"not valid YAML ({err})"]) from None


def check_path(raw: Any, mistakes: list[str], where: str) -> str:
    """`raw` as a path the engines can walk; a mistake is recorded when it is not one."""
    if not isinstance(raw, str):
        mistakes.append(f"{where}: a path must be text")
        return ""
    try:
        parse_path(raw)
    except PathError as err:
        mistakes.append(f"{where}: {err}")
    return raw
