"""An OpenAPI 3.1 document derived from the provider registry, like the CapabilityStatement.

Per registered type: read, vread and search (GET and POST _search), as its provider's
interactions declare; search parameters from its SearchParamSpecs (FHIR type kept as
`x-fhir-type`, repeatable = AND); errors are OperationOutcomes. Every operation but the
public discovery documents needs the bearer JWT (`bearerAuth`); user-restricted types
(capability.security) document the X-NHS-User-Token header when the caller's NHS CIS2
credential travels in it, and the role table's clinical types the X-Purpose-Of-Use
header. Nothing is hand-listed, so a provider registered is an operation documented.
"""

from __future__ import annotations

from typing import Any

from capability.operations import operation_paths
from capability.security import (
    NHS_USER_TOKEN_HEADER,
    PURPOSE_CLAIM,
    PURPOSE_HEADER,
    NHSUrls,
    UpstreamAccess,
    describe,
    role_table,
    user_restricted,
)
from capability.statement import SOFTWARE_NAME, search_syntax, software_version, syntax_note
from server.fhir.includes import available_rev_includes
from server.fhir.search_params import SearchParamSpec
from server.fhir.search_request import SUMMARY_MODES, TOTAL_MODES
from server.providers.base import ResourceProvider
from server.providers.registry import COMPARTMENT_PARAM, ProviderRegistry
from server.settings import Settings

FHIR_JSON = "application/fhir+json"
FHIR_XML = "application/fhir+xml"
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
# FHIR XML (http://hl7.org/fhir/R4/xml.html) of the same resource the JSON schema describes.
FHIR_XML_CONTENT: dict[str, Any] = {"schema": {"type": "string", "contentMediaType": FHIR_XML}}
ID_PATTERN = r"^[A-Za-z0-9\-.]{1,64}$"
DATE_PATTERN = r"^(eq|ne|gt|lt|ge|le|sa|eb|ap)?[0-9]{4}"
ERROR_STATUSES = {
    "400": "Bad syntax or parameters (including unknown ones under Prefer: handling=strict, or a malformed "
    "X-Purpose-Of-Use)",
    "401": 'No bearer token, or one that is not valid (WWW-Authenticate: Bearer, with error="invalid_token" '
    "for a bad one)",
    "403": "Authenticated but not allowed: scope, role, purpose of use, patient compartment or relationship "
    '(WWW-Authenticate: Bearer error="insufficient_scope")',
    "404": "Unknown type or id",
    "406": "A format other than FHIR JSON or FHIR XML was asked for, or a FHIR version other than R4 (fhirVersion=4.0)",
    "429": "Too many requests: this caller's NHS request quota is spent (Retry-After)",
    "501": "An interaction FHIR defines that this server does not implement (history, operations, batch, "
    "system search)",
    "502": "The NHS API failed or answered something invalid",
    "503": "The NHS API is unavailable, or the audit trail cannot record the access (Retry-After where known)",
    "504": "The NHS API timed out",
}
AUTH_STATUSES = ("401", "403")  # never answered by the public discovery documents
BEARER = "bearerAuth"
_ERROR_HEADERS = {
    "401": {
        "WWW-Authenticate": {
            "schema": {"type": "string"},
            "description": 'Bearer realm="nhs-fhir-facade"[, error="invalid_token"] (RFC 6750)',
        }
    },
    "403": {
        "WWW-Authenticate": {
            "schema": {"type": "string"},
            "description": 'Bearer realm="nhs-fhir-facade", error="insufficient_scope"',
        }
    },
    "429": {"Retry-After": {"schema": {"type": "string"}, "description": "Seconds to wait"}},
    "503": {"Retry-After": {"schema": {"type": "string"}, "description": "Seconds to wait, where known"}},
}
_TYPE_HINTS = {
    "token": "token: system|code, |code, code or system|",
    "string": "string: starts-with, case- and accent-insensitive",
    "date": "date: prefix eq ne gt lt ge le sa eb ap, partial dates (2010, 2010-10) are ranges",
    "reference": "reference: id or Type/id",
}


def _param_schema(fhir_type: str) -> dict[str, Any]:
    item: dict[str, Any] = {"type": "number"} if fhir_type == "number" else {"type": "string"}
    if fhir_type == "date":
        item["pattern"] = DATE_PATTERN
    return item


def search_parameter(spec: SearchParamSpec) -> dict[str, Any]:
    """One query parameter; repeating it ANDs, a comma inside a value ORs. Its modifiers
    and chains are the parser's (capability.statement.search_syntax), as in /metadata."""
    hint = _TYPE_HINTS.get(spec.type, spec.type)
    note = syntax_note(spec)
    if note:
        hint = f"{hint}; {note}"
    modifiers, chains = search_syntax(spec)
    param: dict[str, Any] = {
        "name": spec.name,
        "in": "query",
        "required": False,
        "description": f"{spec.documentation} ({hint}; repeat to AND, comma to OR)",
        "schema": {"type": "array", "items": _param_schema(spec.type)},
        "style": "form",
        "explode": True,
        "x-fhir-type": spec.type,
        "x-fhir-modifiers": modifiers,
        "x-fhir-chains": chains,
    }
    if spec.definition:
        param["x-fhir-definition"] = spec.definition
    return param


def _result_parameters(
    provider: ResourceProvider, registry: ProviderRegistry, settings: Settings
) -> list[dict[str, Any]]:
    def q(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
        return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}

    params = [
        q(
            "_count",
            {"type": "integer", "minimum": 0, "maximum": settings.max_page_size},
            f"Page size (default {settings.default_page_size}, maximum {settings.max_page_size}); 0 = total only",
        ),
        q("_summary", {"type": "string", "enum": list(SUMMARY_MODES)}, "Summary view; count = total only"),
        q("_elements", {"type": "string"}, "Comma-separated top-level elements (mandatory ones always kept)"),
        q("_total", {"type": "string", "enum": list(TOTAL_MODES)}, "Whether to report Bundle.total"),
        q(
            "_format",
            {"type": "string", "enum": ["json", FHIR_JSON, "application/json", "xml", FHIR_XML, "text/xml"]},
            "FHIR JSON (the default) or FHIR XML (also by Accept: application/fhir+xml); anything else is 406",
        ),
    ]
    sortable = [p.name for p in provider.search_params if p.type in ("date", "string") and p.path]
    if sortable:
        params.append(
            q(
                "_sort",
                {"type": "string", "enum": sortable + [f"-{n}" for n in sortable]},
                "Sort by a date or string parameter; '-' for descending",
            )
        )
    if provider.includes:
        params.append(
            {
                **q(
                    "_include",
                    {"type": "array", "items": {"type": "string", "enum": list(provider.includes)}},
                    "Referenced resources to add (search.mode include, not counted in total)",
                ),
                "style": "form",
                "explode": True,
            }
        )
    rev = available_rev_includes(provider.resource_type, registry)
    if rev:
        params.append(
            {
                **q(
                    "_revinclude",
                    {"type": "array", "items": {"type": "string", "enum": list(rev)}},
                    "Resources referring to each match (search.mode include)",
                ),
                "style": "form",
                "explode": True,
            }
        )
    return params


def _responses(
    ok_schema: str,
    ok_description: str,
    *,
    conditional: bool = False,
    last_modified: bool = False,
    public: bool = False,
    media_type: str = FHIR_JSON,
) -> dict[str, Any]:
    ok: dict[str, Any] = {
        "description": ok_description,
        "content": {media_type: {"schema": {"$ref": f"#/components/schemas/{ok_schema}"}}},
    }
    if media_type == FHIR_JSON:
        ok["content"][FHIR_XML] = FHIR_XML_CONTENT
    if conditional:
        ok["headers"] = {
            "ETag": {"schema": {"type": "string"}, "description": 'W/"{meta.versionId}"'},
        }
        if last_modified:
            ok["headers"]["Last-Modified"] = {"schema": {"type": "string"}, "description": "From meta.lastUpdated"}
    responses: dict[str, Any] = {"200": ok}
    if conditional:
        responses["304"] = {
            "description": "Not modified (If-None-Match" + (" / If-Modified-Since)" if last_modified else ")")
        }
    for status in ERROR_STATUSES:
        if not (public and status in AUTH_STATUSES):
            responses[status] = {"$ref": f"#/components/responses/Error{status}"}
    return responses


def _access_headers(settings: Settings, restricted: dict[str, list[str]], types: list[str]) -> list[dict[str, Any]]:
    """The headers the access rules read, besides Authorization, for an operation that may
    return `types` (its own type, and for a search the types it can _revinclude)."""
    headers: list[dict[str, Any]] = []
    via = [f"{t} (via {', '.join(restricted[t])})" for t in types if t in restricted]
    if via and settings.nhs_user_token_source == "header":
        headers.append(
            {
                "name": NHS_USER_TOKEN_HEADER,
                "in": "header",
                "required": False,
                "schema": {"type": "string"},
                "description": f"The caller's NHS CIS2 access token, for the user-restricted NHS APIs behind "
                f"{'; '.join(via)}; without it those NHS calls are refused",
            }
        )
    table = role_table(settings)
    clinical = [t for t in types if table.is_clinical(t)]
    if clinical:
        glass = sorted(table.break_glass_purposes)
        headers.append(
            {
                "name": PURPOSE_HEADER,
                "in": "header",
                "required": False,
                "schema": {"type": "string", "enum": sorted(table.clinical_purposes)},
                "description": f"Purpose of use (v3 ActReason), needed for the clinical type(s) "
                f"{', '.join(clinical)} here or in the token's {PURPOSE_CLAIM} claim; "
                "the header wins"
                + (f". {', '.join(glass)} is break-glass: allowed, flagged in the audit" if glass else ""),
            }
        )
    return headers


def _operations(
    provider: ResourceProvider, registry: ProviderRegistry, settings: Settings, restricted: dict[str, list[str]]
) -> dict[str, dict[str, Any]]:
    rtype = provider.resource_type
    security: list[dict[str, list[str]]] = [{BEARER: []}]
    access = _access_headers(settings, restricted, [rtype])
    tags = [rtype]
    id_param = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "pattern": ID_PATTERN}}
    paths: dict[str, dict[str, Any]] = {}
    if "read" in provider.interactions:
        paths[f"/{rtype}/{{id}}"] = {
            "get": {
                "operationId": f"read{rtype}",
                "summary": f"Read a {rtype}",
                "tags": tags,
                "security": security,
                "parameters": [
                    id_param,
                    {"name": "If-None-Match", "in": "header", "required": False, "schema": {"type": "string"}},
                    {
                        "name": "_summary",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "enum": ["true", "false", "text", "data"]},
                    },
                    *access,
                ],
                "responses": _responses(rtype, f"The {rtype}", conditional=True, last_modified=provider.last_updated),
            }
        }
    if "vread" in provider.interactions:
        paths[f"/{rtype}/{{id}}/_history/{{vid}}"] = {
            "get": {
                "operationId": f"vread{rtype}",
                "summary": f"Read the current version of a {rtype} by its versionId",
                "tags": tags,
                "security": security,
                "parameters": [
                    id_param,
                    {"name": "vid", "in": "path", "required": True, "schema": {"type": "string"}},
                    *access,
                ],
                "responses": _responses(
                    rtype, f"The {rtype} at that version", conditional=True, last_modified=provider.last_updated
                ),
            }
        }
    if "search-type" in provider.interactions:
        params = [search_parameter(s) for s in provider.search_params] + _result_parameters(
            provider, registry, settings
        )
        rev_sources = [rev.split(":")[0] for rev in available_rev_includes(rtype, registry)]
        access = _access_headers(settings, restricted, list(dict.fromkeys([rtype, *rev_sources])))
        doc = provider.documentation or f"Search {rtype}"
        paths[f"/{rtype}"] = {
            "get": {
                "operationId": f"search{rtype}",
                "summary": f"Search {rtype}",
                "description": doc,
                "tags": tags,
                "security": security,
                "parameters": params + access,
                "responses": _responses("Bundle", "A searchset Bundle"),
            }
        }
        form_props = {p["name"]: p["schema"] for p in params}
        if rtype in registry.patient_compartment():
            paths[f"/Patient/{{patient}}/{rtype}"] = {
                "get": {
                    "operationId": f"searchPatient{rtype}",
                    "summary": f"Search {rtype} in a patient's compartment",
                    "description": f"The same search as GET /{rtype}?{COMPARTMENT_PARAM}={{patient}} "
                    "(CompartmentDefinition/patient): same parameters, same access rules",
                    "tags": tags,
                    "security": security,
                    "parameters": [{**id_param, "name": "patient"}]
                    + [p for p in params if p["name"] != COMPARTMENT_PARAM]
                    + access,
                    "responses": _responses("Bundle", "A searchset Bundle"),
                }
            }
        paths[f"/{rtype}/_search"] = {
            "post": {
                "operationId": f"searchPost{rtype}",
                "summary": f"Search {rtype} with a form body",
                "tags": tags,
                "security": security,
                **({"parameters": access} if access else {}),
                "requestBody": {
                    "required": False,
                    "content": {
                        FORM: {
                            "schema": {"type": "object", "properties": form_props},
                            "encoding": {
                                n: {"style": "form", "explode": True}
                                for n, s in form_props.items()
                                if s.get("type") == "array"
                            },
                        }
                    },
                },
                "responses": _responses("Bundle", "A searchset Bundle"),
            }
        }
    return paths


def _resource_schema(rtype: str, description: str) -> dict[str, Any]:
    return {
        "type": "object",
        "description": description,
        "required": ["resourceType"],
        "properties": {"resourceType": {"const": rtype}, "id": {"type": "string", "pattern": ID_PATTERN}},
        "additionalProperties": True,
    }


def _discovery_paths() -> dict[str, Any]:
    """The public documents (no token): /metadata, the SMART configuration, this document."""
    return {
        "/metadata": {
            "get": {
                "operationId": "capabilities",
                "summary": "The CapabilityStatement (no authentication)",
                "security": [],
                "parameters": [
                    {
                        "name": "mode",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "enum": ["full", "normative", "terse"]},
                    }
                ],
                "responses": _responses("CapabilityStatement", "The CapabilityStatement", public=True),
            }
        },
        "/.well-known/smart-configuration": {
            "get": {
                "operationId": "smartConfiguration",
                "security": [],
                "summary": "SMART App Launch configuration: issuer, token endpoints, scopes, roles (no authentication)",
                "responses": _responses("JSONDocument", "The SMART configuration", public=True, media_type=JSON),
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This OpenAPI document (no authentication)",
                "security": [],
                "responses": _responses("JSONDocument", "The OpenAPI document", public=True, media_type=JSON),
            }
        },
    }


def openapi_document(
    registry: ProviderRegistry,
    settings: Settings,
    base_url: str,
    upstream_access: UpstreamAccess | None = None,
    nhs_urls: NHSUrls = (),
) -> dict[str, Any]:
    restricted = user_restricted(upstream_access or {})
    paths = _discovery_paths()
    schemas: dict[str, Any] = {
        "Bundle": _resource_schema("Bundle", "FHIR R4 Bundle (searchset)"),
        "OperationOutcome": _resource_schema("OperationOutcome", "FHIR R4 OperationOutcome"),
        "CapabilityStatement": _resource_schema("CapabilityStatement", "FHIR R4 CapabilityStatement"),
        "JSONDocument": {"type": "object", "description": "Plain JSON (not a FHIR resource)"},
    }
    tags = []
    for provider in registry:
        rtype = provider.resource_type
        paths.update(_operations(provider, registry, settings, restricted))
        profile = f" conforming to {provider.profile}" if provider.profile else ""
        schemas[rtype] = _resource_schema(rtype, f"FHIR R4 {rtype}{profile}")
        tags.append({"name": rtype, "description": provider.documentation or rtype})
    paths.update(
        operation_paths(
            registry,
            lambda schema, text: _responses(schema, text),
            lambda types: _access_headers(settings, restricted, types),
            ID_PATTERN,
            [{BEARER: []}],
        )
    )
    errors: dict[str, Any] = {}
    for status, text in ERROR_STATUSES.items():
        errors[f"Error{status}"] = {
            "description": text,
            "content": {
                FHIR_JSON: {"schema": {"$ref": "#/components/schemas/OperationOutcome"}},
                FHIR_XML: FHIR_XML_CONTENT,
            },
        }
        if status in _ERROR_HEADERS:
            errors[f"Error{status}"]["headers"] = _ERROR_HEADERS[status]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"{SOFTWARE_NAME}: FHIR R4 façade over NHS England APIs",
            "version": software_version(),
            "description": "Generated from the same provider registry, settings and role table as /metadata. "
            "Every operation except the discovery documents needs a bearer JWT "
            "(bearerAuth); what it must carry is described there.",
        },
        "servers": [{"url": base_url}],
        "tags": tags,
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": errors,
            "securitySchemes": {
                BEARER: {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": describe(settings, upstream_access or {}, nhs_urls),
                }
            },
        },
    }
