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

    log_level: str = "INFO"

    # Read-through cache (server/cache/): in memory unless a MongoDB URI is set.
    cache_enabled: bool = Field(default=True, description="Read-through cache for every NHS-backed read/search.")
    mongodb_uri: str | None = Field(
        default=None, description="MongoDB URI for the shared cache; unset = bounded in-memory cache."
    )
    mongodb_database: str = Field(default="nhs_fhir_facade", description="Database holding the cache collection.")
    mongodb_timeout_ms: int = Field(
        default=500, ge=50,
        description="Server selection and connect timeout (ms): what a dead MongoDB costs one request.",
    )
    cache_max_entries: int = Field(default=10_000, ge=1, description="Entries the in-memory cache holds (LRU).")
    cache_ttl_default: float = Field(default=300.0, gt=0, description="Seconds an entry is fresh, unless set per type.")
    cache_ttl_patient: float = Field(default=3600.0, gt=0, description="Patient demographics change rarely.")
    cache_ttl_medicationrequest: float = Field(default=300.0, gt=0, description="Prescriptions change daily.")
    cache_ttl_servicerequest: float = Field(default=300.0, gt=0)
    cache_ttl_allergyintolerance: float = Field(default=900.0, gt=0)
    cache_ttl_by_type: dict[str, float] = Field(
        default_factory=dict, description='Any other type, as JSON: {"Observation": 60}; wins over the fields above.'
    )
    cache_stale_if_error: float = Field(
        default=3600.0, ge=0,
        description="Max age (s) of a cached copy served, with a warning, when the NHS API fails; 0 = never.",
    )

    def public_base_url(self) -> str:
        """The base URL the façade writes into links (no trailing slash)."""
        return (self.base_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def sandbox_needed(self) -> bool:
        """True when at least one upstream must be the embedded emulator."""
        return self.pds_base_url is None
