"""The route table: every FHIR endpoint, in one screen."""

from __future__ import annotations

from starlette.routing import Route

from server import discovery, health
from server.fhir import handlers

ROUTES = [
    Route("/_health", health.health, methods=["GET"]),  # JSON, not FHIR (server/health.py); before /{type}
    Route("/metadata", handlers.metadata, methods=["GET"]),
    Route("/.well-known/smart-configuration", discovery.smart, methods=["GET"]),  # plain JSON, before /{type}/{id}
    Route("/openapi.json", discovery.openapi, methods=["GET"]),  # plain JSON, before /{type}
    Route("/{type}/_search", handlers.search_post, methods=["POST"]),
    Route("/{type}/_search", handlers.search_get, methods=["GET"]),
    Route("/{type}/{id}/_history/{vid}", handlers.vread, methods=["GET"]),
    Route("/{type}/{id}", handlers.read, methods=["GET"]),
    Route("/{type}", handlers.search_get, methods=["GET"]),
]
