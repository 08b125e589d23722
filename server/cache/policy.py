"""Pure cache decisions: freshness per type, Cache-Control, keys, restricted patients.

No I/O here, so every rule is unit-tested (and property-tested) without a server.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import Any
from urllib.parse import urlencode

from server.cache.store import CacheKey
from server.fhir.patient_refs import patient_keys
from server.fhir.search_request import SearchRequest

CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
RESTRICTED_CODES = frozenset({"R", "V"})
# Parameters that shape the answer, not the upstream query: the server applies them to
# the full match list a provider returns, so they are left out of search keys.
RESULT_ONLY_PARAMS = frozenset({"_count", "_sort", "_include", "_revinclude", "_summary", "_elements", "_total"})
# Elements through which a non-Patient resource names its patient.
# RFC 9111 1.2.2 delta-seconds: ASCII digits only (str.isdigit and int() also take "²" or
# Arabic-Indic digits); a value too large to represent counts as 2**31.
_DELTA_SECONDS = re.compile(r"[0-9]+", re.ASCII)
DELTA_SECONDS_MAX = 2**31


class CacheState(str, Enum):
    """What the cache did for a response; sent as X-Cache."""

    HIT = "HIT"  # fresh entry, upstream not asked
    MISS = "MISS"  # no entry (or no-store): fetched from upstream
    REVALIDATED = "REVALIDATED"  # entry stale or no-cache: upstream asked, answer current
    STALE = "STALE"  # upstream failed: an older entry served, with a warning


@dataclass(frozen=True)
class Directives:
    """The request Cache-Control directives the façade honours."""

    no_cache: bool = False
    no_store: bool = False
    max_age: int | None = None


def parse_cache_control(cache_control: str | None, pragma: str | None = None) -> Directives:
    """RFC 9111 request directives; unknown or malformed ones are ignored, never an error.
    `Pragma: no-cache` counts only when Cache-Control is absent (RFC 9111 5.4)."""
    if cache_control is None:
        no_cache = pragma is not None and "no-cache" in (p.strip().lower() for p in pragma.split(","))
        return Directives(no_cache=no_cache)
    no_cache = no_store = False
    max_age: int | None = None
    for part in cache_control.split(","):
        name, _, value = part.strip().partition("=")
        name = name.strip().lower()
        value = value.strip().strip('"')
        if name == "no-cache":
            no_cache = True
        elif name == "no-store":
            no_store = True
        elif name == "max-age" and (age := delta_seconds(value)) is not None:
            max_age = age if max_age is None else min(max_age, age)
    return Directives(no_cache=no_cache, no_store=no_store, max_age=max_age)


def delta_seconds(value: str) -> int | None:
    """RFC 9111 delta-seconds, or None when `value` is not one. At most ten digits reach
    int() (a 5,000-digit value would exceed Python's int-string limit and raise)."""
    if not _DELTA_SECONDS.fullmatch(value):
        return None
    digits = value.lstrip("0") or "0"
    return DELTA_SECONDS_MAX if len(digits) > 10 else min(int(digits), DELTA_SECONDS_MAX)


@dataclass(frozen=True)
class CachePolicy:
    """Freshness per resource type and the stale-if-error window, from settings."""

    default_ttl: float
    ttl_by_type: Mapping[str, float] = field(default_factory=dict)
    stale_if_error: float = 0.0

    @classmethod
    def from_settings(cls, settings: Any, freshness: Mapping[str, float]) -> CachePolicy:
        """`freshness`: what each source declares per type (server.sources: Offer.freshness);
        FACADE_CACHE_TTL_BY_TYPE wins over it, FACADE_CACHE_TTL_DEFAULT covers the rest."""
        return cls(
            settings.cache_ttl_default, {**freshness, **settings.cache_ttl_by_type}, settings.cache_stale_if_error
        )

    def ttl(self, resource_type: str) -> float:
        return self.ttl_by_type.get(resource_type, self.default_ttl)

    def expires_at(self, resource_type: str, fetched_at: datetime) -> datetime:
        """When an entry is no use at all: past both its freshness and the stale window."""
        return fetched_at + timedelta(seconds=max(self.ttl(resource_type), self.stale_if_error))

    def is_fresh(self, resource_type: str, age: float, directives: Directives) -> bool:
        """May the entry be served without asking upstream?"""
        if directives.no_cache:
            return False
        if directives.max_age is not None and age > directives.max_age:
            return False
        return age < self.ttl(resource_type)

    def may_serve_stale(self, age: float) -> bool:
        """stale-if-error: is a copy this old still allowed when upstream fails?"""
        return age < self.stale_if_error


def age_seconds(fetched_at: datetime, now: datetime) -> float:
    return max(0.0, (now - fetched_at).total_seconds())


def read_key(resource_type: str, resource_id: str, scope: str = "") -> CacheKey:
    return CacheKey("read", resource_type, resource_id, scope)


def search_key(request: SearchRequest, scope: str = "") -> CacheKey:
    """Canonical query: the normalised, sorted parameters minus result-only ones, so
    `family=Smith&birthdate=2010` and `birthdate=2010&family=Smith&_count=5` share an entry."""
    pairs = [(k, v) for k, v in request.canonical_pairs() if k.partition(":")[0] not in RESULT_ONLY_PARAMS]
    return CacheKey("search", request.resource_type, urlencode(pairs), scope)


def is_restricted_patient(resource: Mapping[str, Any]) -> bool:
    """PDS marks restricted (R) and very restricted (V) patients in meta.security."""
    if resource.get("resourceType") != "Patient":
        return False
    for label in (resource.get("meta") or {}).get("security") or ():
        if (
            isinstance(label, dict)
            and label.get("code") in RESTRICTED_CODES
            and label.get("system") in (CONFIDENTIALITY, None)
        ):
            return True
    return False


def restricted_patient_ids(resources: Iterable[Mapping[str, Any]]) -> list[str]:
    return [str(r["id"]) for r in resources if r.get("id") and is_restricted_patient(r)]


def patient_ids(resource: Mapping[str, Any]) -> set[str]:
    """Patients a resource is, or is about (server.fhir.patient_refs: the same answer the
    access checks and the audit trail use)."""
    return patient_keys(resource)


def patients_in(resources: Iterable[Mapping[str, Any]]) -> list[str]:
    out: set[str] = set()
    for resource in resources:
        out |= patient_ids(resource)
    return sorted(out)
