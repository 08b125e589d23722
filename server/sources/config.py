"""Each source's settings and each NHS API's URL, resolved once at start-up.

Two steps, because the embedded emulator starts in between: `SourceConfig.resolve` reads
every source's settings (so start-up knows whether an emulator is needed at all), and
`SourceConfig.upstreams(emulator_url)` gives every API its URL: the configured one, or
the emulator's mount for it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from server.settings import Settings
from server.sources.base import Source, settings_values
from server.sources.upstream import SourceSettings, Upstream

S = TypeVar("S", bound=SourceSettings)


@dataclass(frozen=True)
class Upstreams(Mapping[str, str]):
    """Resolved base URL per upstream key (`pds`, `gpconnect`, ...), and which ones the
    embedded emulator answers (for the health endpoint, which shows no URLs)."""

    urls: Mapping[str, str]
    emulated: frozenset[str] = frozenset()

    def __getitem__(self, key: str) -> str:
        return self.urls[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.urls)

    def __len__(self) -> int:
        return len(self.urls)

    def modes(self) -> dict[str, str]:
        """Per API key: "emulator" (embedded) or "configured"."""
        return {key: "emulator" if key in self.emulated else "configured" for key in self.urls}


@dataclass(frozen=True)
class SourceConfig:
    sources: tuple[Source, ...]
    settings: Mapping[type[SourceSettings], SourceSettings]

    @classmethod
    def resolve(cls, settings: Settings, sources: Sequence[Source]) -> SourceConfig:
        known = {name for source in sources for name in source.setting_names()}
        unknown = sorted(set(settings.model_extra or {}) - known)
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(unknown)}")
        return cls(
            tuple(sources),
            {source.settings: source.settings(**settings_values(settings, source)) for source in sources},
        )

    def of(self, kind: type[S]) -> S:
        """The settings of the source whose settings class is `kind`."""
        found = self.settings[kind]
        assert isinstance(found, kind)
        return found

    def all_upstreams(self) -> Iterator[tuple[Source, Upstream]]:
        for source in self.sources:
            for upstream in source.upstreams:
                yield source, upstream

    def configured_url(self, source: Source, upstream: Upstream) -> str | None:
        value: Any = getattr(self.settings[source.settings], f"{upstream.key}_base_url", None)
        return str(value).rstrip("/") if value else None

    def configured_urls(self) -> list[str | None]:
        """Every NHS API URL as configured (None = the embedded emulator): what
        server.access.environments classes to decide what the sandbox conveniences allow."""
        return [self.configured_url(s, u) for s, u in self.all_upstreams()]

    def emulator_needed(self, settings: Settings) -> bool:
        """True when an NHS API, or the NHS token endpoint, must be the embedded emulator."""
        return None in self.configured_urls() or (settings.auth_mode == "signed-jwt" and settings.token_url is None)

    def upstreams(self, emulator_url: str | None) -> Upstreams:
        urls: dict[str, str] = {}
        emulated = set()
        for source, upstream in self.all_upstreams():
            configured = self.configured_url(source, upstream)
            if configured is None:
                assert emulator_url, "an unset upstream needs the embedded emulator"
                configured = f"{emulator_url}/{upstream.emulator_path}"
                emulated.add(upstream.key)
            urls[upstream.key] = configured
        return Upstreams(urls, frozenset(emulated))

    def rate_limits(self, settings: Settings) -> dict[str, float]:
        """Client-side requests/s per NHS API: FACADE_UPSTREAM_RATE_LIMITS when set (an
        empty object = none), else what each upstream publishes."""
        if settings.upstream_rate_limits is not None:
            return dict(settings.upstream_rate_limits)
        return {u.api: u.rate_limit for _, u in self.all_upstreams() if u.rate_limit is not None}

    def freshness(self) -> dict[str, float]:
        """Default cache freshness per resource type, as the sources declare it."""
        return {offer.resource_type: offer.freshness for source in self.sources for offer in source.offers}
