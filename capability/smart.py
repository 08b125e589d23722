"""`/.well-known/smart-configuration` (SMART App Launch v2): what this resource server
accepts and enforces, derived from the settings, the role table and the registry.

Always served: the façade checks SMART scopes on every request, so clients need to know
which. What it publishes (capability.security derives each fact):
- `issuer` / `jwks_uri`: the configured issuer (FACADE_AUTH_ISSUER, FACADE_AUTH_JWKS_URL),
  or the development issuer where it is trusted (sandbox);
- `token_endpoint` / `authorization_endpoint`: capability.security.auth_endpoints, left
  out when unknown (the façade runs no authorization server and invents none);
- `scopes_supported`: read/search scopes per registered type, in each context, and the
  `*` forms; `capabilities`: permission-v2/v1/patient/user, plus launch and
  client-authentication capabilities only where a token endpoint is known;
- grants and client authentication only for the NHS API platform's endpoints (documented
  by NHS: authorization_code with combined auth, token exchange, client_secret_post and
  private_key_jwt); of another issuer's token endpoint only authorization_code is
  implied, by its authorize endpoint;
- `code_challenge_methods_supported` is empty: no PKCE method is claimed for a server
  we do not run (SMART asks for S256; honesty wins);
- `facade_*` fields (servers MAY add fields): how the NHS CIS2 credential reaches
  user-restricted types, purpose of use, roles, query suffixes, the development issuer.
"""

from __future__ import annotations

from typing import Any

from capability.security import (
    NHS_USER_TOKEN_HEADER,
    PURPOSE_CLAIM,
    PURPOSE_HEADER,
    PURPOSE_OF_USE_SYSTEM,
    NHSUrls,
    UpstreamAccess,
    auth_endpoints,
    dev_issuer_published,
    job_roles_of,
    role_grants,
    role_table,
    user_restricted,
)
from server.access.dev_issuer import DEV_ISSUER
from server.access.scopes import CONTEXTS, PERMISSIONS
from server.providers.registry import ProviderRegistry
from server.settings import Settings

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
PERMISSION_CAPABILITIES = ["permission-v2", "permission-v1", "permission-patient", "permission-user"]
CLIENT_CAPABILITIES = ["client-confidential-symmetric", "client-confidential-asymmetric"]
# Interactions a read/search scope letter stands for (server.fhir.handlers asks "r" for
# read and vread, "s" for search).
SCOPE_LETTERS = {"read": "r", "vread": "r", "search-type": "s"}


def readable_types(registry: ProviderRegistry) -> dict[str, str]:
    """Registered type -> the scope letters its interactions can use (r, s), types with neither left out."""
    out: dict[str, str] = {}
    for provider in registry:
        letters = {SCOPE_LETTERS[i] for i in provider.interactions if i in SCOPE_LETTERS}
        if letters:
            out[provider.resource_type] = "".join(p for p in PERMISSIONS if p in letters)
    return out


def scopes_supported(registry: ProviderRegistry) -> list[str]:
    """`<context>/<Type>.<rs>` for every registered readable type and context, then the `*` forms."""
    types = readable_types(registry)
    every = "".join(p for p in PERMISSIONS if any(p in letters for letters in types.values()))
    scopes = [f"{context}/{rtype}.{letters}" for rtype, letters in types.items() for context in CONTEXTS]
    if every:
        scopes += [f"{context}/*.{every}" for context in CONTEXTS]
    return scopes


def smart_configuration(
    settings: Settings, upstream_access: UpstreamAccess, registry: ProviderRegistry, nhs_urls: NHSUrls
) -> dict[str, Any]:
    """The SMART configuration JSON (see the module docstring for what each field claims)."""
    table = role_table(settings)
    dev = dev_issuer_published(settings, nhs_urls)
    endpoints = auth_endpoints(settings)
    doc: dict[str, Any] = {}
    issuer = settings.auth_issuer or (DEV_ISSUER if dev else None)
    if issuer:
        doc["issuer"] = issuer
    if settings.auth_issuer and settings.auth_jwks_url:
        doc["jwks_uri"] = settings.auth_jwks_url
    capabilities = list(PERMISSION_CAPABILITIES)
    grants: list[str] = []
    if endpoints.authorize and endpoints.token:  # a code is of no use without a token endpoint
        doc["authorization_endpoint"] = endpoints.authorize
        doc["response_types_supported"] = ["code"]
        grants.append("authorization_code")
    if endpoints.token:
        doc["token_endpoint"] = endpoints.token
        capabilities = (["launch-standalone"] if endpoints.authorize else []) + CLIENT_CAPABILITIES + capabilities
        if endpoints.nhs:
            grants.append(TOKEN_EXCHANGE)
            doc["token_endpoint_auth_methods_supported"] = ["client_secret_post", "private_key_jwt"]
            doc["token_endpoint_auth_signing_alg_values_supported"] = ["RS512"]
    if grants:
        doc["grant_types_supported"] = grants
    doc.update(
        {
            "scopes_supported": scopes_supported(registry),
            "capabilities": capabilities,
            "code_challenge_methods_supported": [],
            # Beyond SMART (servers MAY add fields): what else a request needs here.
            "facade_token_handling": "exchange" if settings.user_token_mode == "exchange" else "pass-through",
            "facade_user_restricted_types": sorted(user_restricted(upstream_access)),
            "facade_nhs_user_token": (
                f"header {NHS_USER_TOKEN_HEADER}" if settings.nhs_user_token_source == "header" else "inbound"
            ),
            "facade_purpose_of_use": {
                "header": PURPOSE_HEADER,
                "claim": PURPOSE_CLAIM,
                "system": PURPOSE_OF_USE_SYSTEM,
                "clinical_types": sorted(table.clinical_types),
                "clinical_purposes": sorted(table.clinical_purposes),
                "break_glass_purposes": sorted(table.break_glass_purposes),
            },
            "facade_relationship_required": settings.relationship_required,
            "facade_roles": {
                name: {"fhir": role_grants(role), "pas": sorted(role.pas), "nhs_job_roles": job_roles_of(table, name)}
                for name, role in table.roles.items()
            },
            "facade_scope_query_suffixes": "refused",
            "facade_dev_issuer": dev,
        }
    )
    return doc
