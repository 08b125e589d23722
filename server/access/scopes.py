"""SMART App Launch scopes, v2 and v1, parsed once per token and asked per interaction.

Grammar (SMART App Launch 2.x, "Scopes and Launch Context"):
`<patient|user|system>/<Type|*>.<permissions>[?<query>]`, permissions a subset of `cruds`
in that order. v1 forms still met in the wild map onto v2: `.read` -> `rs`,
`.write` -> `cud`, `.*` -> `cruds`.

A scope with a `?query` suffix (e.g. `patient/Observation.rs?category=laboratory`) grants
nothing here: the façade cannot enforce every such filter on NHS answers, and a scope it
only half-applied would leak. The SMART configuration says so. Unknown scopes (openid,
launch, fhirUser, ...) are kept as text and grant no data access.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CONTEXTS = ("patient", "user", "system")
PERMISSIONS = "cruds"
V1_PERMISSIONS = {"read": "rs", "write": "cud", "*": "cruds"}
_SCOPE = re.compile(r"^(patient|user|system)/([A-Za-z]{1,64}|\*)\.([a-z*]{1,5})(\?.*)?$")
MAX_SCOPES = 200


@dataclass(frozen=True)
class Scope:
    context: str
    resource_type: str  # a type or "*"
    permissions: frozenset[str]

    def grants(self, resource_type: str, permission: str) -> bool:
        return self.resource_type in ("*", resource_type) and permission in self.permissions


def _permissions(text: str) -> frozenset[str] | None:
    if text in V1_PERMISSIONS:
        return frozenset(V1_PERMISSIONS[text])
    # v2: letters of "cruds", each once, in that order
    if re.fullmatch(r"c?r?u?d?s?", text) and text:
        return frozenset(text)
    return None


def parse_scope(text: str) -> Scope | None:
    """One scope string, or None when it grants no data access (unknown, or has a query)."""
    match = _SCOPE.match(text)
    if match is None or match.group(4):
        return None
    perms = _permissions(match.group(3))
    if perms is None:
        return None
    return Scope(match.group(1), match.group(2), perms)


@dataclass(frozen=True)
class ScopeSet:
    """The data-access scopes of one token, plus its raw scope strings (for audit and binding)."""

    scopes: tuple[Scope, ...]
    raw: tuple[str, ...]

    @classmethod
    def parse(cls, value: object) -> ScopeSet:
        """From a `scope` claim (space-separated string) or an `scp` claim (list of strings)."""
        if isinstance(value, str):
            items = value.split()
        elif isinstance(value, (list, tuple)):
            items = [v for v in value if isinstance(v, str)]
        else:
            items = []
        items = items[:MAX_SCOPES]
        parsed = tuple(s for s in (parse_scope(i) for i in items) if s is not None)
        return cls(parsed, tuple(items))

    def text(self) -> str:
        return " ".join(sorted(set(self.raw)))

    def contexts_granting(self, resource_type: str, permission: str) -> frozenset[str]:
        """Which launch contexts (patient, user, system) grant `permission` on the type."""
        return frozenset(s.context for s in self.scopes if s.grants(resource_type, permission))
