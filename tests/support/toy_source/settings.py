"""Toy settings: FACADE_TOY_*."""

from __future__ import annotations

from pydantic import Field

from server.sources.upstream import SourceSettings


class ToySettings(SourceSettings):
    toy_base_url: str | None = Field(default=None, description="Toy device registry; unset = embedded emulator.")
    toy_manufacturer: str = Field(default="Acme", description="Written into every Device served.")
