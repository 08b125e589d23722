"""Typed settings: one object, one environment prefix (FACADE_), safe embedded defaults.

Every upstream base URL left unset means "use the project's own NHS emulator", so a
fresh checkout runs with no external service at all (sandbox mode).
"""
from __future__ import annotations

from typing import Literal

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

    gpconnect_base_url: str | None = Field(
        default=None,
        description="GP Connect Access Record Structured FHIR base (STU3, via SSP or gateway); unset = emulator.",
    )
    gpconnect_auth_mode: Literal["ssp-jwt", "gateway"] = Field(
        default="ssp-jwt",
        description="ssp-jwt: SSP headers + unsigned consumer JWT built from the settings below; "
                    "gateway: Clinical Data Gateway, the caller's bearer token passed through.",
    )
    gpconnect_consumer_asid: str = Field(default="200000000001", description="Ssp-From: our ASID (placeholder).")
    gpconnect_provider_asid: str = Field(default="200000000002", description="Ssp-To: the GP system's ASID (SDS).")
    gpconnect_requesting_ods: str = Field(default="A11111", description="JWT requesting_organization ODS; Ods-from.")
    gpconnect_requesting_org_name: str = Field(default="NHS FHIR facade (sandbox)",
                                               description="JWT requesting_organization name.")
    gpconnect_practitioner_sds_user_id: str = Field(default="111111111111",
                                                    description="JWT sub / requesting_practitioner SDS user id.")
    gpconnect_practitioner_role_profile_id: str = Field(default="222222222222",
                                                        description="JWT requesting_practitioner SDS role profile id.")
    gpconnect_practitioner_family: str = Field(default="Facade", description="JWT requesting_practitioner family.")
    gpconnect_practitioner_given: str = Field(default="System", description="JWT requesting_practitioner given.")

    upstream_connect_timeout: float = Field(default=3.0, gt=0)
    upstream_read_timeout: float = Field(default=10.0, gt=0)

    default_page_size: int = Field(default=20, ge=1)
    max_page_size: int = Field(default=100, ge=1)
    page_snapshot_ttl: float = Field(
        default=600.0, gt=0, description="Seconds a search result stays pageable."
    )
    page_snapshot_limit: int = Field(default=1000, ge=1)

    log_level: str = "INFO"

    def public_base_url(self) -> str:
        """The base URL the façade writes into links (no trailing slash)."""
        return (self.base_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def sandbox_needed(self) -> bool:
        """True when at least one upstream must be the embedded emulator."""
        return self.pds_base_url is None or self.gpconnect_base_url is None
