"""The CapabilityStatement, derived from the provider registry and nothing else.

Every element that describes a resource comes from the provider's own declarations
(type, profile, interactions, search parameters, includes), so a provider registered
is a capability advertised, and the statement cannot claim what is not served.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from capability.operations import resource_operations, system_interactions
from capability.security import NHSUrls, UpstreamAccess, rest_security
from server.fhir.includes import available_rev_includes
from server.fhir.search_params import SearchParamSpec, accepted_chains, accepted_modifiers
from server.providers.base import ResourceProvider
from server.providers.registry import PATIENT_COMPARTMENT, ProviderRegistry
from server.settings import Settings

SOFTWARE_NAME = "nhs-fhir-facade"


def software_version() -> str:
    try:
        from importlib.metadata import version

        return version(SOFTWARE_NAME)
    except Exception:  # not installed as a distribution (e.g. running from a checkout)
        return "0.1.0"


def search_syntax(spec: SearchParamSpec) -> tuple[list[str], list[str]]:
    """The modifiers (`:exact`, `:Patient`) and chains (`.identifier`) a parameter answers,
    exactly as the parser accepts them (server.fhir.search_params.accepted_modifiers): the
    CapabilityStatement and the OpenAPI document both print these."""
    modifiers = [f":{m}" for m in accepted_modifiers(spec)]
    modifiers += [f":{t}" for t in spec.target_types if spec.type == "reference"]
    return modifiers, [f".{c}" for c in accepted_chains(spec)]


def syntax_note(spec: SearchParamSpec) -> str:
    """`modifiers :exact, :missing; chains .identifier`, or "" when there is neither."""
    modifiers, chains = search_syntax(spec)
    parts = ([f"modifiers {', '.join(modifiers)}"] if modifiers else []) + (
        [f"chains {', '.join(chains)}"] if chains else []
    )
    return "; ".join(parts)


def conditional_read(provider: ResourceProvider) -> str:
    """What a conditional read can do on this type: If-None-Match always (ETag is the
    versionId, a content hash where the source has none), If-Modified-Since only where
    reads send Last-Modified, i.e. where the provider declares meta.lastUpdated."""
    if "read" not in provider.interactions:
        return "not-supported"
    return "full-support" if provider.last_updated else "not-match"


def resource_entry(
    provider: ResourceProvider, *, terse: bool = False, rev_includes: tuple[str, ...] = ()
) -> dict[str, Any]:
    """One rest.resource; `rev_includes` are those that can run (available_rev_includes)."""
    entry: dict[str, Any] = {"type": provider.resource_type}
    if provider.profile:
        entry["profile"] = provider.profile
    if provider.documentation and not terse:
        entry["documentation"] = provider.documentation
    entry["interaction"] = [{"code": code} for code in provider.interactions]
    versioned = "vread" in provider.interactions
    entry["versioning"] = "versioned" if versioned else "no-version"
    entry["readHistory"] = False
    entry["updateCreate"] = False
    entry["conditionalRead"] = conditional_read(provider)
    if provider.includes:
        entry["searchInclude"] = list(provider.includes)
    if rev_includes:
        entry["searchRevInclude"] = list(rev_includes)
    params = []
    for spec in provider.search_params:
        param: dict[str, Any] = {"name": spec.name, "type": spec.type}
        if spec.definition:
            param["definition"] = spec.definition
        if spec.documentation and not terse:
            note = syntax_note(spec)
            param["documentation"] = f"{spec.documentation} ({note})" if note else spec.documentation
        params.append(param)
    if params:
        entry["searchParam"] = params
    return entry


def _common_search_params(terse: bool) -> list[dict[str, Any]]:
    docs = {
        "_count": "Page size (default and maximum in the server's settings); _count=0 gives the total only",
        "_summary": "true | text | data | count | false",
        "_elements": "Comma-separated top-level elements to return (mandatory ones are always kept)",
        "_sort": "Sort by a date or string parameter; prefix '-' for descending",
        "_total": "none | estimate | accurate",
    }
    out = []
    for name, doc in docs.items():
        p: dict[str, Any] = {"name": name, "type": "special" if name != "_count" else "number"}
        if not terse:
            p["documentation"] = doc
        out.append(p)
    return out


def capability_statement(
    registry: ProviderRegistry,
    settings: Settings,
    base_url: str,
    *,
    terse: bool = False,
    upstream_access: UpstreamAccess | None = None,
    nhs_urls: NHSUrls = (),
) -> dict[str, Any]:
    """`upstream_access` (Runtime.upstream_access) says which types are user-restricted;
    `nhs_urls` (Runtime.nhs_urls) whether the development issuer is published."""
    version = software_version()
    statement: dict[str, Any] = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": datetime.now(timezone.utc).date().isoformat(),
        "publisher": "nhs-fhir-facade",
        "kind": "instance",
        "software": {"name": SOFTWARE_NAME, "version": version},
        "implementation": {
            "description": "FHIR R4 façade over NHS England APIs",
            "url": base_url,
        },
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json", "application/fhir+xml", "xml"],  # XML: server.fhir.xml_format
        "rest": [
            {
                "mode": "server",
                "security": rest_security(settings, upstream_access or {}, nhs_urls),
                "resource": [
                    resource_entry(p, terse=terse, rev_includes=available_rev_includes(p.resource_type, registry))
                    for p in registry
                ],
                "searchParam": _common_search_params(terse),
            }
        ],
    }
    rest = statement["rest"][0]
    rest["interaction"] = system_interactions(terse=terse)  # batch (server/fhir/batch.py)
    for entry in rest["resource"]:
        operations = resource_operations(entry["type"], registry, terse=terse)  # Patient/$everything
        if operations:
            entry["operation"] = operations
    if registry.patient_compartment():  # Patient/{id}/{type}, for the types it lists
        statement["rest"][0]["compartment"] = [PATIENT_COMPARTMENT]
    if terse:
        statement["meta"] = {
            "tag": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}]
        }
    return statement
