"""An OpenAPI 3.1 document derived from the provider registry, like the CapabilityStatement.

Per registered type: read, vread and search (GET and POST _search), as its provider's
interactions declare; search parameters from its SearchParamSpecs (FHIR type kept as
`x-fhir-type`, repeatable = AND); errors are OperationOutcomes. Types whose NHS API is
user-restricted (capability.security) require the bearer scheme. Nothing is hand-listed,
so a provider registered is an operation documented.
"""
from __future__ import annotations

from typing import Any

from capability.security import UpstreamAccess, user_restricted
from capability.statement import SOFTWARE_NAME, software_version
from server.fhir.includes import available_rev_includes
from server.fhir.search_params import SearchParamSpec
from server.fhir.search_request import SUMMARY_MODES, TOTAL_MODES
from server.providers.base import ResourceProvider
from server.providers.registry import ProviderRegistry
from server.settings import Settings

FHIR_JSON = "application/fhir+json"
FORM = "application/x-www-form-urlencoded"
ID_PATTERN = r"^[A-Za-z0-9\-.]{1,64}$"
DATE_PATTERN = r"^(eq|ne|gt|lt|ge|le|sa|eb|ap)?[0-9]{4}"
ERROR_STATUSES = {
    "400": "Bad syntax or parameters (including unknown ones under Prefer: handling=strict)",
    "401": "No or bad credentials",
    "403": "Authenticated but not allowed",
    "404": "Unknown type or id",
    "406": "A format other than FHIR JSON was asked for",
    "429": "Too many requests (Retry-After)",
    "502": "The NHS API failed or answered something invalid",
    "503": "The NHS API is unavailable (Retry-After where known)",
    "504": "The NHS API timed out",
}
_TYPE_HINTS = {
    "token": "token: system|code, |code, code or system|",
    "string": "string: starts-with, case- and accent-insensitive; :exact, :contains",
    "date": "date: prefix eq ne gt lt ge le sa eb ap, partial dates (2010, 2010-10) are ranges",
    "reference": "reference: id, Type/id, or the .identifier chain (patient.identifier=system|value)",
}


def _param_schema(fhir_type: str) -> dict[str, Any]:
    item: dict[str, Any] = {"type": "number"} if fhir_type == "number" else {"type": "string"}
    if fhir_type == "date":
        item["pattern"] = DATE_PATTERN
    return item


def search_parameter(spec: SearchParamSpec) -> dict[str, Any]:
    """One query parameter; repeating it ANDs, a comma inside a value ORs."""
    hint = _TYPE_HINTS.get(spec.type, spec.type)
    param: dict[str, Any] = {
        "name": spec.name, "in": "query", "required": False,
        "description": f"{spec.documentation} ({hint}; repeat to AND, comma to OR)",
        "schema": {"type": "array", "items": _param_schema(spec.type)},
        "style": "form", "explode": True,
        "x-fhir-type": spec.type,
    }
    if spec.definition:
        param["x-fhir-definition"] = spec.definition
    return param


def _result_parameters(provider: ResourceProvider, registry: ProviderRegistry,
                       settings: Settings) -> list[dict[str, Any]]:
    def q(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
        return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}

    params = [
        q("_count", {"type": "integer", "minimum": 0, "maximum": settings.max_page_size},
          f"Page size (default {settings.default_page_size}, maximum {settings.max_page_size}); 0 = total only"),
        q("_summary", {"type": "string", "enum": list(SUMMARY_MODES)}, "Summary view; count = total only"),
        q("_elements", {"type": "string"}, "Comma-separated top-level elements (mandatory ones always kept)"),
        q("_total", {"type": "string", "enum": list(TOTAL_MODES)}, "Whether to report Bundle.total"),
        q("_format", {"type": "string", "enum": ["json", FHIR_JSON, "application/json"]},
          "Only FHIR JSON is produced; anything else is 406"),
    ]
    sortable = [p.name for p in provider.search_params if p.type in ("date", "string") and p.path]
    if sortable:
        params.append(q("_sort", {"type": "string", "enum": sortable + [f"-{n}" for n in sortable]},
                        "Sort by a date or string parameter; '-' for descending"))
    if provider.includes:
        params.append({**q("_include", {"type": "array", "items": {"type": "string", "enum": list(provider.includes)}},
                           "Referenced resources to add (search.mode include, not counted in total)"),
                       "style": "form", "explode": True})
    rev = available_rev_includes(provider.rev_includes, provider.resource_type, registry)
    if rev:
        params.append({**q("_revinclude", {"type": "array", "items": {"type": "string", "enum": list(rev)}},
                           "Resources referring to each match (search.mode include)"),
                       "style": "form", "explode": True})
    return params


def _responses(ok_schema: str, ok_description: str, *, conditional: bool = False) -> dict[str, Any]:
    ok: dict[str, Any] = {"description": ok_description,
                          "content": {FHIR_JSON: {"schema": {"$ref": f"#/components/schemas/{ok_schema}"}}}}
    if conditional:
        ok["headers"] = {"ETag": {"schema": {"type": "string"}, "description": 'W/"{meta.versionId}"'},
                         "Last-Modified": {"schema": {"type": "string"}, "description": "From meta.lastUpdated"}}
    responses: dict[str, Any] = {"200": ok}
    if conditional:
        responses["304"] = {"description": "Not modified (If-None-Match / If-Modified-Since)"}
    for status in ERROR_STATUSES:
        responses[status] = {"$ref": f"#/components/responses/Error{status}"}
    return responses


def _operations(provider: ResourceProvider, registry: ProviderRegistry, settings: Settings,
                restricted: bool) -> dict[str, dict[str, Any]]:
    rtype = provider.resource_type
    security = [{"nhsCis2Bearer": []}] if restricted else []
    tags = [rtype]
    id_param = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "pattern": ID_PATTERN}}
    paths: dict[str, dict[str, Any]] = {}
    if "read" in provider.interactions:
        paths[f"/{rtype}/{{id}}"] = {"get": {
            "operationId": f"read{rtype}", "summary": f"Read a {rtype}", "tags": tags, "security": security,
            "parameters": [id_param,
                           {"name": "If-None-Match", "in": "header", "required": False, "schema": {"type": "string"}},
                           {"name": "_summary", "in": "query", "required": False,
                            "schema": {"type": "string", "enum": ["true", "false", "text", "data"]}}],
            "responses": _responses(rtype, f"The {rtype}", conditional=True),
        }}
    if "vread" in provider.interactions:
        paths[f"/{rtype}/{{id}}/_history/{{vid}}"] = {"get": {
            "operationId": f"vread{rtype}", "summary": f"Read the current version of a {rtype} by its versionId",
            "tags": tags, "security": security,
            "parameters": [id_param, {"name": "vid", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": _responses(rtype, f"The {rtype} at that version", conditional=True),
        }}
    if "search-type" in provider.interactions:
        params = [search_parameter(s) for s in provider.search_params] + \
            _result_parameters(provider, registry, settings)
        doc = provider.documentation or f"Search {rtype}"
        paths[f"/{rtype}"] = {"get": {
            "operationId": f"search{rtype}", "summary": f"Search {rtype}", "description": doc, "tags": tags,
            "security": security, "parameters": params,
            "responses": _responses("Bundle", "A searchset Bundle"),
        }}
        form_props = {p["name"]: p["schema"] for p in params}
        paths[f"/{rtype}/_search"] = {"post": {
            "operationId": f"searchPost{rtype}", "summary": f"Search {rtype} with a form body", "tags": tags,
            "security": security,
            "requestBody": {"required": False, "content": {FORM: {
                "schema": {"type": "object", "properties": form_props},
                "encoding": {n: {"style": "form", "explode": True} for n, s in form_props.items()
                             if s.get("type") == "array"},
            }}},
            "responses": _responses("Bundle", "A searchset Bundle"),
        }}
    return paths


def _resource_schema(rtype: str, description: str) -> dict[str, Any]:
    return {"type": "object", "description": description, "required": ["resourceType"],
            "properties": {"resourceType": {"const": rtype}, "id": {"type": "string", "pattern": ID_PATTERN}},
            "additionalProperties": True}


def openapi_document(registry: ProviderRegistry, settings: Settings, base_url: str,
                     upstream_access: UpstreamAccess | None = None) -> dict[str, Any]:
    restricted = user_restricted(upstream_access or {})
    paths: dict[str, Any] = {"/metadata": {"get": {
        "operationId": "capabilities", "summary": "The CapabilityStatement (no authentication)", "security": [],
        "parameters": [{"name": "mode", "in": "query", "required": False,
                        "schema": {"type": "string", "enum": ["full", "normative", "terse"]}}],
        "responses": _responses("CapabilityStatement", "The CapabilityStatement"),
    }}}
    schemas: dict[str, Any] = {
        "Bundle": _resource_schema("Bundle", "FHIR R4 Bundle (searchset)"),
        "OperationOutcome": _resource_schema("OperationOutcome", "FHIR R4 OperationOutcome"),
        "CapabilityStatement": _resource_schema("CapabilityStatement", "FHIR R4 CapabilityStatement"),
    }
    tags = []
    for provider in registry:
        rtype = provider.resource_type
        paths.update(_operations(provider, registry, settings, rtype in restricted))
        profile = f" conforming to {provider.profile}" if provider.profile else ""
        schemas[rtype] = _resource_schema(rtype, f"FHIR R4 {rtype}{profile}")
        tags.append({"name": rtype, "description": provider.documentation or rtype})
    return {
        "openapi": "3.1.0",
        "info": {"title": f"{SOFTWARE_NAME}: FHIR R4 façade over NHS England APIs", "version": software_version(),
                 "description": "Generated from the same provider registry as /metadata."},
        "servers": [{"url": base_url}],
        "tags": tags,
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": {f"Error{status}": {"description": text, "content": {
                FHIR_JSON: {"schema": {"$ref": "#/components/schemas/OperationOutcome"}}}}
                for status, text in ERROR_STATUSES.items()},
            "securitySchemes": {"nhsCis2Bearer": {
                "type": "http", "scheme": "bearer",
                "description": "The caller's NHS CIS2-backed access token from the NHS API platform, passed through "
                               "to user-restricted NHS APIs; the façade issues no tokens."}},
        },
    }
