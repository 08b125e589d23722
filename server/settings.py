"""Typed settings: one object, one environment prefix (FACADE_), safe embedded defaults.

Every upstream base URL left unset means "use the project's own NHS emulator", so a
fresh checkout runs with no external service at all (sandbox mode).
"""
from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Runtime configuration, read from FACADE_* environment variables."""

    model_config = SettingsConfigDict(env_prefix="FACADE_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    base_url: str = Field(
        default="",
        description="Public base URL used in every link; defaults to http://{host}:{port}.",
    )

    pds_base_url: str | None = Field(
        default=None, description="PDS FHIR R4 base URL; unset = embedded emulator."
    )
    pds_max_results: int | None = Field(
        default=None, ge=1, le=50,
        description="Sent as PDS _max-results; application-restricted access must use 1.",
    )
    end_user_ods: str | None = Field(
        default=None, description="Sent as NHSD-End-User-Organisation-ODS when set."
    )

    upstream_connect_timeout: float = Field(default=3.0, gt=0)
    upstream_read_timeout: float = Field(default=10.0, gt=0)

    default_page_size: int = Field(default=20, ge=1)
    max_page_size: int = Field(default=100, ge=1)
    page_snapshot_ttl: float = Field(
        default=600.0, gt=0, description="Seconds a search result stays pageable."
    )
    page_snapshot_limit: int = Field(default=1000, ge=1)

    pas_profile: str = Field(
        default="pas/reference_pas",
        description="PAS mapping profile: a name under mappings/ or a path to a YAML file.",
    )
    pas_hl7_profile: str = Field(
        default="hl7/adt_pid", description="HL7 v2 ADT mapping profile (name under mappings/ or a path)."
    )
    pas_trace_fuzzy_min_score: float = Field(
        default=0.95, gt=0, le=1,
        description="Lowest PDS score accepted from a single fuzzy-search candidate when tracing NHS numbers.",
    )

    log_level: str = "INFO"

    def public_base_url(self) -> str:
        """The base URL the façade writes into links (no trailing slash)."""
        return (self.base_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def sandbox_needed(self) -> bool:
        """True when at least one upstream must be the embedded emulator."""
        return self.pds_base_url is None
