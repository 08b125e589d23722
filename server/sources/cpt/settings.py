"""Clinical Prescription Tracker settings (FACADE_CPT_*)."""

from __future__ import annotations

from pydantic import Field

from server.sources.upstream import SourceSettings


class CPTSettings(SourceSettings):
    cpt_base_url: str | None = Field(
        default=None, description="Clinical Prescription Tracker base URL; unset = embedded emulator."
    )
    cpt_detail_concurrency: int = Field(
        default=4,
        ge=1,
        le=32,
        description="Prescription-details calls one MedicationRequest search may have in flight at once.",
    )
