"""BaRS and e-RS settings (FACADE_BARS_*, FACADE_ERS_*)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from server.sources.upstream import SourceSettings


class BarsTarget(BaseModel):
    """One BaRS receiving service: sent base64-JSON encoded as NHSD-Target-Identifier.

    `key` is the short name the façade writes into the ids it issues for that service's
    referrals (so a later read knows which service to ask); keep it stable.
    """

    key: str = Field(pattern=r"^[A-Za-z0-9]{1,16}$")
    system: str = Field(min_length=1)
    value: str = Field(min_length=1)


# The BaRS sandbox's own test target (NHSDigital/booking-and-referral-fhir-api tests).
BARS_SANDBOX_TARGET = BarsTarget(key="sandbox", system="tests", value="NHS0001")


class ReferralsSettings(SourceSettings):
    bars_base_url: str | None = Field(default=None, description="BaRS FHIR R4 base URL; unset = embedded emulator.")
    bars_targets: list[BarsTarget] = Field(
        default_factory=lambda: [BARS_SANDBOX_TARGET],
        min_length=1,
        description="BaRS target services asked for a patient's referrals (JSON list of {key, system, value}).",
    )
    bars_accept_version: str = Field(
        default="1.0.0", description="BaRS API version sent as Accept: application/fhir+json; version=..."
    )
    bars_end_user_ods: str | None = Field(
        default=None, description="ODS code in BaRS NHSD-End-User-Organisation; falls back to end_user_ods."
    )
    ers_base_url: str | None = Field(
        default=None, description="e-RS FHIR base URL (the R4/ and STU3/ paths go below it); unset = emulator."
    )
    ers_access_mode: Literal["user-restricted", "application-restricted"] = Field(
        default="user-restricted",
        description="application-restricted: A041 R4 search is not allowed, UBRNs are read via STU3 A005.",
    )
    ers_business_function: str | None = Field(
        default=None,
        description="Default NHSD-eRS-Business-Function when the caller sends none (user-restricted e-RS).",
    )
