"""BaRS and e-RS as the core sees them: one ServiceRequest type answered from both."""

from __future__ import annotations

from capability.statement import software_version
from server.providers.base import ResourceProvider
from server.sources.base import Offer, Source
from server.sources.referrals import bars_emulator, bars_emulator_data, ers_emulator, ers_emulator_data
from server.sources.referrals.bars_client import BaRSClient, BarsHeaderConfig
from server.sources.referrals.ers_client import ERSClient, ERSContextConfig
from server.sources.referrals.provider import ServiceRequestFromReferrals
from server.sources.referrals.settings import ReferralsSettings
from server.sources.upstream import Upstream
from server.sources.wiring import Wiring

BARS = Upstream(
    key="bars", api="BaRS", emulator_path="booking-and-referral/FHIR/R4", emulator_routes=lambda: bars_emulator.ROUTES
)
ERS = Upstream(key="ers", api="e-RS", emulator_path="referrals/FHIR", emulator_routes=lambda: ers_emulator.ROUTES)


def service_request_from_referrals(w: Wiring) -> ResourceProvider:
    """BaRS (application-restricted) and e-RS, whose user-restricted calls act for the caller
    unless e-RS is configured application-restricted (STU3 A005 acts for no user)."""
    s = w.settings_of(ReferralsSettings)
    end_user_ods = w.settings.end_user_ods
    app_restricted = s.ers_access_mode == "application-restricted"
    ers = w.client(ERS, access="application" if app_restricted else "user")
    bars = BaRSClient(
        w.client(BARS),
        BarsHeaderConfig(
            accept_version=s.bars_accept_version,
            end_user_ods=s.bars_end_user_ods or end_user_ods,
            software_version=software_version(),
        ),
    )
    return ServiceRequestFromReferrals(
        bars,
        ERSClient(ers, ERSContextConfig(business_function=s.ers_business_function, end_user_ods=end_user_ods)),
        s.bars_targets,
        ers_app_restricted=app_restricted,
    )


SOURCE = Source(
    name="Booking and Referral Standard and e-Referral Service",
    settings=ReferralsSettings,
    upstreams=(BARS, ERS),
    offers=(Offer("ServiceRequest", service_request_from_referrals, freshness=300.0),),
    scenarios=lambda: [*bars_emulator_data.scenarios(), *ers_emulator_data.scenarios()],
)
