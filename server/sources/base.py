"""What an NHS source declares: the one object the core reads to serve it.

A source is one package under server/sources/ (client, mappings, providers, emulator
routes and data, settings) that exports a `SOURCE`. The core derives from the list of
sources (server/sources/registry.py) everything that used to be a hand-kept table:

- upstream URLs: each `Upstream`'s `<key>_base_url` setting, else the embedded emulator
  at `emulator_path` (server/sources/config.py);
- emulator mounts: `emulator_routes` at `emulator_path` (server/sandbox/app.py);
- cache policy: each `Offer`'s `freshness` (server/cache/policy.py, overridable per type);
- client-side rate limits: each `Upstream`'s published `rate_limit`;
- error mapping: each `Upstream`'s `error_codes`, NHS codes whose meaning the status lacks;
- the console's scenario catalogue: each source's `scenarios`, derived from its emulator data;
- the CapabilityStatement, OpenAPI, SMART scopes and rev-includes follow from the
  providers the offers build (server/providers/registry.py).

So adding an NHS API is one package plus one line in the registry, and adding a type to
an existing source is one provider module plus one `Offer`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from server.providers.base import ResourceProvider
from server.sources.upstream import Scenario, SourceSettings, Upstream, no_scenarios
from server.sources.wiring import Wiring


@dataclass(frozen=True)
class Offer:
    """A resource type a source serves: how its provider is built, and how long an answer
    stays fresh in the cache unless FACADE_CACHE_TTL_BY_TYPE says otherwise."""

    resource_type: str
    build: Callable[[Wiring], ResourceProvider]
    freshness: float = 300.0


@dataclass(frozen=True)
class Source:
    """An NHS source, as the core sees it."""

    name: str  # for people: "GP Connect Access Record: Structured"
    settings: type[SourceSettings]
    upstreams: tuple[Upstream, ...]
    offers: tuple[Offer, ...]
    # What the emulator's data demonstrates, derived from that data (the console's catalogue).
    scenarios: Callable[[], Sequence[Scenario]] = no_scenarios

    def setting_names(self) -> frozenset[str]:
        return frozenset(self.settings.model_fields)


def misnamed_settings(source: Source) -> list[str]:
    """Settings fields of `source` that do not start with one of its upstream keys."""
    prefixes = tuple(f"{u.key}_" for u in source.upstreams)
    return [name for name in source.settings.model_fields if not name.startswith(prefixes)]


def settings_values(settings: Any, source: Source) -> dict[str, Any]:
    """The values for `source`'s settings given in code: `Settings(gpconnect_auth_mode=...)`
    (the façade's settings carry them as extras; the environment fills the rest)."""
    extras: Mapping[str, Any] = getattr(settings, "model_extra", None) or {}
    return {name: value for name, value in extras.items() if name in source.setting_names()}
