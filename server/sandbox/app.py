"""The NHS emulator app: each source's emulated APIs mounted at their NHS paths (as each
`Upstream` declares them, server/sources/), plus /_control and the OAuth2 token endpoint."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount

from server.sandbox.faults import EmulatorState, FaultMiddleware, control_routes
from server.sandbox.oauth import BearerMiddleware, OAuthState, oauth_control_routes, token_routes
from server.sources.base import Source
from server.sources.registry import SOURCES


def create_emulator_app(
    state: EmulatorState | None = None, oauth: OAuthState | None = None, sources: Sequence[Source] = SOURCES
) -> Starlette:
    state = state or EmulatorState()
    oauth = oauth or OAuthState()
    app = Starlette(
        routes=[
            *control_routes(state),
            *oauth_control_routes(oauth),
            Mount("/oauth2", routes=token_routes(oauth)),
            *(
                Mount(f"/{upstream.emulator_path}", routes=list(upstream.emulator_routes()))
                for source in sources
                for upstream in source.upstreams
            ),
        ],
        middleware=[Middleware(FaultMiddleware, state=state), Middleware(BearerMiddleware, state=oauth)],
    )
    app.state.emulator = state
    app.state.oauth = oauth
    return app
