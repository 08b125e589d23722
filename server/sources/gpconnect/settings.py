"""GP Connect settings (FACADE_GPCONNECT_*)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from server.sources.upstream import SourceSettings


class GPConnectSettings(SourceSettings):
    gpconnect_base_url: str | None = Field(
        default=None,
        description="GP Connect Access Record Structured FHIR base (STU3, via SSP or gateway); unset = emulator.",
    )
    gpconnect_auth_mode: Literal["ssp-jwt", "gateway"] = Field(
        default="ssp-jwt",
        description="ssp-jwt: SSP headers + unsigned consumer JWT naming the authenticated caller; "
        "gateway: Clinical Data Gateway, the caller's bearer token passed through.",
    )
    gpconnect_consumer_asid: str = Field(default="200000000001", description="Ssp-From: our ASID (placeholder).")
    gpconnect_provider_asid: str = Field(default="200000000002", description="Ssp-To: the GP system's ASID (SDS).")
    gpconnect_requesting_ods: str = Field(
        default="A11111", description="JWT requesting_organization ODS and Ods-from, when the caller's token has none."
    )
    gpconnect_requesting_org_name: str = Field(
        default="NHS FHIR facade (sandbox)", description="JWT requesting_organization name."
    )
    # The practitioner asserted for system callers (no user) in sandbox only; users are asserted as themselves.
    gpconnect_practitioner_sds_user_id: str = Field(
        default="111111111111", description="Sandbox system callers: JWT sub / SDS user id."
    )
    gpconnect_practitioner_role_profile_id: str = Field(
        default="222222222222", description="JWT requesting_practitioner SDS role profile id."
    )
    gpconnect_practitioner_family: str = Field(default="Facade", description="JWT requesting_practitioner family.")
    gpconnect_practitioner_given: str = Field(default="System", description="JWT requesting_practitioner given.")
