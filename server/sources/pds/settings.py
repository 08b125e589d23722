"""PDS settings (FACADE_PDS_*)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from server.sources.upstream import SourceSettings


class PDSSettings(SourceSettings):
    pds_base_url: str | None = Field(default=None, description="PDS FHIR R4 base URL; unset = embedded emulator.")
    pds_max_results: int | None = Field(
        default=None,
        ge=1,
        le=50,
        description="Sent as PDS _max-results; application-restricted access must use 1.",
    )
    pds_access: Literal["application", "user"] = Field(
        default="application",
        description="PDS access mode: application-restricted or user-restricted (CIS2).",
    )
