"""GET /metrics: the Prometheus scrape, behind a static bearer secret outside the sandbox.

The metrics hold no patient data (server/metrics.py keeps every label to a closed set),
but they do show how much, when and what a hospital asks of NHS, so they are not public:

- FACADE_METRICS_TOKEN set: the scraper sends `Authorization: Bearer <token>` (Prometheus
  `authorization: {credentials_file: ...}`); anything else is a 401.
- unset, and every NHS API is the emulator (sandbox): open, so `make run` can be scraped.
- unset otherwise: 403, naming the setting. A façade in front of real NHS never serves
  its metrics to whoever asks.

The path is outside the access middleware (server/access/middleware.py PUBLIC_PATHS): a
scraper holds no user token, and a scrape is not an access to patient data to audit.
"""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from server.access.environments import environment
from server.metrics import exposition
from server.runtime import Runtime


def metrics_refusal(configured: str | None, authorization: str | None, sandbox: bool) -> tuple[int, str] | None:
    """Why this scrape is refused (status, reason), or None to serve it."""
    if configured:
        presented = authorization[7:].strip() if authorization and authorization[:7].lower() == "bearer " else ""
        if hmac.compare_digest(presented.encode(), configured.encode()):
            return None
        return 401, "GET /metrics needs 'Authorization: Bearer <FACADE_METRICS_TOKEN>'"
    if sandbox:
        return None
    return 403, "metrics are served only with FACADE_METRICS_TOKEN set (or in sandbox mode)"


def is_sandbox(rt: Runtime) -> bool:
    """Every NHS API (and, with signed-JWT auth, the token endpoint) is the emulator."""
    urls = list(rt.nhs_urls)
    if rt.settings.auth_mode == "signed-jwt":
        urls.append(rt.settings.token_url)
    return environment(urls, rt.settings.emulator_hosts) == "emulator"


async def metrics(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    token = rt.settings.metrics_token
    refusal = metrics_refusal(
        token.get_secret_value() if token is not None else None,
        request.headers.get("authorization"),
        is_sandbox(rt),
    )
    if refusal is not None:
        status, reason = refusal
        headers = {"Cache-Control": "no-store"}
        if status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return JSONResponse({"error": reason}, status_code=status, headers=headers)
    body, content_type = exposition()
    return Response(body, headers={"Content-Type": content_type, "Cache-Control": "no-store"})
