"""The NHS emulator app: each emulated API mounted at its NHS path, plus /_control."""
from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount

from server.sandbox import gpconnect, pds
from server.sandbox.faults import EmulatorState, FaultMiddleware, control_routes


def create_emulator_app(state: EmulatorState | None = None) -> Starlette:
    state = state or EmulatorState()
    app = Starlette(
        routes=[
            *control_routes(state),
            Mount("/personal-demographics/FHIR/R4", routes=pds.ROUTES),
            Mount("/gpconnect/Y12345/STU3/1/gpconnect/structured/fhir", routes=gpconnect.ROUTES),
        ],
        middleware=[Middleware(FaultMiddleware, state=state)],
    )
    app.state.emulator = state
    return app
