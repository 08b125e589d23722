"""The NHS emulator app: each emulated API mounted at its NHS path, plus /_control."""
from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount

from server.sandbox import bars, cpt, ers, gpconnect, pds
from server.sandbox.faults import EmulatorState, FaultMiddleware, control_routes
from server.sandbox.oauth import BearerMiddleware, OAuthState, oauth_control_routes, token_routes


def create_emulator_app(state: EmulatorState | None = None, oauth: OAuthState | None = None) -> Starlette:
    state = state or EmulatorState()
    oauth = oauth or OAuthState()
    app = Starlette(
        routes=[
            *control_routes(state),
            *oauth_control_routes(oauth),
            Mount("/oauth2", routes=token_routes(oauth)),
            Mount("/personal-demographics/FHIR/R4", routes=pds.ROUTES),
            Mount("/booking-and-referral/FHIR/R4", routes=bars.ROUTES),
            Mount("/referrals/FHIR", routes=ers.ROUTES),
            Mount("/clinical-prescription-tracker", routes=cpt.ROUTES),
            Mount("/gpconnect/Y12345/STU3/1/gpconnect/structured/fhir", routes=gpconnect.ROUTES),
        ],
        middleware=[Middleware(FaultMiddleware, state=state), Middleware(BearerMiddleware, state=oauth)],
    )
    app.state.emulator = state
    app.state.oauth = oauth
    return app
