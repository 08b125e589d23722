"""`/.well-known/smart-configuration` (SMART App Launch v2), as far as it is true here.

The façade is a resource server only: it runs no authorization server and issues no
tokens. Clients get an NHS CIS2-backed access token from the NHS API platform and send
it as a bearer token, which the façade passes through (or exchanges) to user-restricted
NHS APIs. So the document points at the NHS endpoints configured
(FACADE_TOKEN_URL, FACADE_SMART_AUTHORIZE_URL) and claims only what they do:
- grant types: authorization_code (NHS "combined auth", when an authorize URL is set) and
  token exchange of a CIS2 id_token ("separate auth", always at the token endpoint);
- client authentication: client_secret_post (combined auth) and private_key_jwt (the
  signed JWT of separate auth);
- no scopes (NHS does not use SMART scopes), no OpenID Connect, no EHR launch;
- code_challenge_methods_supported is empty: the NHS platform documents no PKCE, and we
  will not claim S256 for a server we do not run (SMART asks for S256; honesty wins).
With no token URL configured there is nothing honest to publish: 404 (the route answers
an OperationOutcome saying so).
"""
from __future__ import annotations

from typing import Any

from capability.security import UpstreamAccess, smart_published, user_restricted
from server.settings import Settings

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"


def smart_configuration(settings: Settings, upstream_access: UpstreamAccess) -> dict[str, Any] | None:
    """The SMART configuration JSON, or None when no NHS token endpoint is configured."""
    if not smart_published(settings):
        return None
    authorize = settings.smart_authorize_url
    capabilities = ["client-confidential-symmetric", "client-confidential-asymmetric"]
    grants = [TOKEN_EXCHANGE]
    doc: dict[str, Any] = {"token_endpoint": settings.token_url}
    if authorize:
        doc["authorization_endpoint"] = authorize
        capabilities.insert(0, "launch-standalone")
        grants.insert(0, "authorization_code")
        doc["response_types_supported"] = ["code"]
    doc.update({
        "grant_types_supported": grants,
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS512"],
        "capabilities": capabilities,
        "code_challenge_methods_supported": [],
        # Beyond SMART (servers MAY add fields): how this façade uses the token.
        "facade_token_handling": "exchange" if settings.user_token_mode == "exchange" else "pass-through",
        "facade_user_restricted_types": sorted(user_restricted(upstream_access)),
    })
    return doc
