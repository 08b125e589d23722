"""How the discovery documents declare $everything and batch (issue 10).

Both come from the same declarations the handlers use (server/fhir/operations.py): the
operation is listed on Patient only where Patient is served, and the types it gathers
are the registry's. Batch is always served (POST [base]), so always declared. The OpenAPI
fragments take the document's own response and header builders, so they read like every
other operation there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from server.fhir.operations import EVERYTHING, EVERYTHING_DEFINITION, everything_offered, everything_types
from server.providers.registry import ProviderRegistry

BATCH_DOC = (
    "POST [base] with a Bundle of type batch whose entries are GET reads and searches (relative URLs); each entry "
    "is answered as if sent alone (same access checks, its own AuditEvent), at most FACADE_MAX_BATCH_ENTRIES "
    "entries. Other methods: that entry 405. Transactions: 422."
)


def everything_doc(registry: ProviderRegistry) -> str:
    types = ", ".join(everything_types(registry)) or "no other type"
    return (
        f"The Patient and their {types} records in one searchset (AuditEvent is not part of the record); "
        "_type and _count honoured, paged. Each type is searched under its own access rules: a type this "
        "caller may not search, or a source that fails, is a warning entry."
    )


def resource_operations(resource_type: str, registry: ProviderRegistry, *, terse: bool) -> list[dict[str, Any]]:
    """rest.resource.operation of one type."""
    if resource_type != "Patient" or not everything_offered(registry):
        return []
    operation: dict[str, Any] = {"name": EVERYTHING, "definition": EVERYTHING_DEFINITION}
    if not terse:
        operation["documentation"] = everything_doc(registry)
    return [operation]


def system_interactions(*, terse: bool) -> list[dict[str, Any]]:
    """rest.interaction: the system-level interactions served."""
    interaction: dict[str, Any] = {"code": "batch"}
    if not terse:
        interaction["documentation"] = BATCH_DOC
    return [interaction]


def operation_paths(
    registry: ProviderRegistry,
    responses: Callable[[str, str], dict[str, Any]],
    access_headers: Callable[[list[str]], list[dict[str, Any]]],
    id_pattern: str,
    security: list[dict[str, list[str]]],
) -> dict[str, Any]:
    """The OpenAPI paths of POST [base] (batch) and, where Patient is served, $everything."""
    paths: dict[str, Any] = {
        "/": {
            "post": {
                "operationId": "batch",
                "summary": "Run a batch Bundle of GET entries",
                "description": BATCH_DOC,
                "security": security,
                "parameters": access_headers([p.resource_type for p in registry]),
                "requestBody": {
                    "required": True,
                    "content": {"application/fhir+json": {"schema": {"$ref": "#/components/schemas/Bundle"}}},
                },
                "responses": responses("Bundle", "A batch-response Bundle, one entry per request, in order"),
            }
        }
    }
    if everything_offered(registry):
        types = ["Patient", *everything_types(registry)]
        paths["/Patient/{id}/$everything"] = {
            "get": {
                "operationId": "patientEverything",
                "summary": "Everything about one patient (Patient/$everything)",
                "description": everything_doc(registry),
                "tags": ["Patient"],
                "security": security,
                "parameters": [
                    {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "pattern": id_pattern}},
                    {
                        "name": "_type",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string"},
                        "description": f"Comma-separated types to return, of {', '.join(types)}",
                    },
                    {
                        "name": "_count",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 0},
                        "description": "Page size; 0 gives the total only",
                    },
                    *access_headers(types),
                ],
                "responses": responses("Bundle", "A searchset Bundle"),
            }
        }
    return paths
