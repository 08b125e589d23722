"""The role table: what each façade role may do, read from a data file (roles.yaml).

Roles reach a token two ways: façade role names in the role claim (a hospital identity
provider's app roles), or NHS national RBAC job role codes (CIS2), mapped here. The table
is checked when loaded: an unknown permission letter, PAS action or role name in the
job-role map stops the façade at start-up rather than silently granting or refusing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

DEFAULT_POLICY = Path(__file__).with_name("roles.yaml")
PAS_ACTIONS = frozenset({"patients.read", "patients.write", "related.read", "clinical.write", "hl7"})
_JOB_ROLE = re.compile(r"R[0-9]{4,5}")


class PolicyFileError(ValueError):
    """The role table is not usable; the message names the entry."""


@dataclass(frozen=True)
class Role:
    name: str
    fhir: dict[str, frozenset[str]]
    pas: frozenset[str]


@dataclass(frozen=True)
class RoleTable:
    roles: dict[str, Role]
    clinical_types: frozenset[str]
    clinical_purposes: frozenset[str]
    break_glass_purposes: frozenset[str]
    job_roles: dict[str, frozenset[str]]
    console_roles: frozenset[str] = frozenset()  # may read console traces and set faults

    def roles_for(self, names: Iterable[str]) -> frozenset[str]:
        """Façade roles named directly or through NHS job role codes (`R8000`,
        `S0030:G0100:R8000`); anything else is ignored."""
        out: set[str] = set()
        for name in names:
            if name in self.roles:
                out.add(name)
                continue
            code = name.rsplit(":", 1)[-1]
            if _JOB_ROLE.fullmatch(code):
                out |= self.job_roles.get(code, frozenset())
        return frozenset(out)

    def fhir_allows(self, roles: Iterable[str], resource_type: str, permission: str) -> bool:
        """Whether a role may; a role's `"*"` entry covers every type it does not name."""
        return any(
            permission in self.roles[r].fhir.get(resource_type, self.roles[r].fhir.get("*", ()))
            for r in roles
            if r in self.roles
        )

    def pas_allows(self, roles: Iterable[str], action: str) -> bool:
        return any(action in self.roles[r].pas for r in roles if r in self.roles)

    def is_clinical(self, resource_type: str) -> bool:
        return resource_type in self.clinical_types


def _strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PolicyFileError(f"{where} must be a list of strings")
    return value


TOP_LEVEL = frozenset(
    {"roles", "clinical_types", "clinical_purposes", "break_glass_purposes", "job_roles", "console_roles"}
)
ROLE_KEYS = frozenset({"description", "fhir", "pas"})


def parse_role_table(document: Any) -> RoleTable:
    """Checked strictly: an unknown key is a typo that could open or close access silently
    (`clinical_type:` would switch off the purpose and relationship checks)."""
    if not isinstance(document, dict) or not isinstance(document.get("roles"), dict):
        raise PolicyFileError("the policy file needs a 'roles' mapping")
    unknown = sorted(set(document) - TOP_LEVEL)
    if unknown:
        raise PolicyFileError(f"unknown top-level key(s) {unknown}; expected {sorted(TOP_LEVEL)}")
    if "clinical_types" not in document or "clinical_purposes" not in document:
        raise PolicyFileError("the policy file must list clinical_types and clinical_purposes")
    roles: dict[str, Role] = {}
    for name, spec in document["roles"].items():
        if not isinstance(spec, dict):
            raise PolicyFileError(f"roles.{name} must be a mapping")
        if set(spec) - ROLE_KEYS:
            raise PolicyFileError(f"roles.{name}: unknown key(s) {sorted(set(spec) - ROLE_KEYS)}")
        fhir_spec = spec.get("fhir") or {}
        if not isinstance(fhir_spec, dict):
            raise PolicyFileError(f"roles.{name}.fhir must map types to permissions")
        fhir: dict[str, frozenset[str]] = {}
        for rtype, perms in fhir_spec.items():
            if not isinstance(perms, str) or not re.fullmatch(r"c?r?u?d?s?", perms) or not perms:
                raise PolicyFileError(f"roles.{name}.fhir.{rtype}: permissions are letters of 'cruds' in order")
            fhir[str(rtype)] = frozenset(perms)
        pas = frozenset(_strings(spec.get("pas") or [], f"roles.{name}.pas"))
        if not pas <= PAS_ACTIONS:
            raise PolicyFileError(f"roles.{name}.pas: unknown action(s) {sorted(pas - PAS_ACTIONS)}")
        roles[str(name)] = Role(str(name), fhir, pas)
    job_roles: dict[str, frozenset[str]] = {}
    job_table = document.get("job_roles") or {}
    if not isinstance(job_table, dict):
        raise PolicyFileError("job_roles must map NHS job role codes to lists of roles")
    for code, names in job_table.items():
        listed = frozenset(_strings(names, f"job_roles.{code}"))
        if not _JOB_ROLE.fullmatch(str(code)) or not listed <= roles.keys():
            raise PolicyFileError(f"job_roles.{code}: a code Rnnnn mapped to roles of this file")
        job_roles[str(code)] = listed
    purposes = frozenset(_strings(document.get("clinical_purposes") or [], "clinical_purposes"))
    glass = frozenset(_strings(document.get("break_glass_purposes") or [], "break_glass_purposes"))
    if not glass <= purposes:
        raise PolicyFileError("break_glass_purposes must also be clinical_purposes")
    console = frozenset(_strings(document.get("console_roles") or [], "console_roles"))
    if not console <= roles.keys():
        raise PolicyFileError(f"console_roles: unknown role(s) {sorted(console - roles.keys())}")
    return RoleTable(
        roles=roles,
        clinical_types=frozenset(_strings(document.get("clinical_types") or [], "clinical_types")),
        clinical_purposes=purposes,
        break_glass_purposes=glass,
        job_roles=job_roles,
        console_roles=console,
    )


def load_role_table(path: Path | None = None) -> RoleTable:
    with open(path or DEFAULT_POLICY, encoding="utf-8") as handle:
        return parse_role_table(yaml.safe_load(handle))
