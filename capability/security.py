"""Who must send what: the user-restricted types, as the wiring built them, and the
CapabilityStatement's `rest.security` that says so.

The façade runs no authorization server. A resource type is user-restricted when its
provider's factory wired an NHS client with access "user" (server.providers.catalogue.
Wiring.client records it); the caller's NHS CIS2 bearer token is then passed through
(or exchanged, FACADE_USER_TOKEN_MODE) to that NHS API. Nothing here is a hand-kept list.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from server.settings import Settings

SECURITY_SERVICE_SYSTEM = "http://terminology.hl7.org/CodeSystem/restful-security-service"
OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"

UpstreamAccess = Mapping[str, Sequence[tuple[str, str]]]


def user_restricted(upstream_access: UpstreamAccess) -> dict[str, list[str]]:
    """Resource type -> the NHS APIs behind it that act for the user (sorted, types with none left out)."""
    out = {rtype: sorted({api for api, access in pairs if access == "user"})
           for rtype, pairs in upstream_access.items()}
    return {rtype: apis for rtype, apis in sorted(out.items()) if apis}


def smart_published(settings: Settings) -> bool:
    """SMART configuration is published only when there is an NHS token endpoint to point at."""
    return bool(settings.token_url)


def _describe(restricted: dict[str, list[str]], settings: Settings) -> str:
    handling = ("exchanged at the NHS token endpoint (token exchange of the CIS2 id_token) for the call to "
                "the NHS API" if settings.user_token_mode == "exchange" else "passed through unchanged to the NHS API")
    if restricted:
        listed = "; ".join(f"{rtype} (via {', '.join(apis)})" for rtype, apis in restricted.items())
        who = (f"User-restricted resource types need the caller's NHS CIS2 bearer token in "
               f"'Authorization: Bearer ...': {listed}. The token is {handling}; the façade issues no tokens "
               "of its own.")
    else:
        who = "No resource type served here is user-restricted; no bearer token is needed."
    return (f"{who} Other types are application-restricted: the façade authenticates to NHS itself. "
            "Some NHS APIs also need the caller's NHS session headers (e.g. NHSD-Session-URID), described "
            "per resource type.")


def rest_security(settings: Settings, upstream_access: UpstreamAccess) -> dict[str, Any]:
    """`rest.security`: OAuth bearer tokens always; SMART-on-FHIR and the oauth-uris
    extension only when a token endpoint is configured (and the SMART document served)."""
    restricted = user_restricted(upstream_access)
    codings = [{"system": SECURITY_SERVICE_SYSTEM, "code": "OAuth", "display": "OAuth"}]
    security: dict[str, Any] = {"cors": False}
    if smart_published(settings):
        codings.append({"system": SECURITY_SERVICE_SYSTEM, "code": "SMART-on-FHIR", "display": "SMART-on-FHIR"})
        uris = [{"url": "token", "valueUri": settings.token_url}]
        if settings.smart_authorize_url:
            uris.insert(0, {"url": "authorize", "valueUri": settings.smart_authorize_url})
        security["extension"] = [{"url": OAUTH_URIS, "extension": uris}]
    security["service"] = [{
        "coding": codings,
        "text": "NHS CIS2 bearer tokens (NHS API platform OAuth 2.0), passed through by the façade",
    }]
    security["description"] = _describe(restricted, settings)
    return security
