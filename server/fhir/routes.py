"""The route table: every FHIR endpoint, in one screen."""

from __future__ import annotations

from starlette.routing import Route

from server import discovery, health, metrics_endpoint
from server.fhir import batch, everything, handlers

ROUTES = [
    Route("/_health", health.health, methods=["GET"]),  # JSON, not FHIR (server/health.py); before /{type}
    Route("/_health/live", health.live, methods=["GET"]),  # probes, before /{type}/{id}
    Route("/_health/ready", health.ready, methods=["GET"]),
    Route("/metrics", metrics_endpoint.metrics, methods=["GET"]),  # Prometheus text (server/metrics_endpoint.py)
    Route("/metadata", handlers.metadata, methods=["GET"]),
    Route("/.well-known/smart-configuration", discovery.smart, methods=["GET"]),  # plain JSON, before /{type}/{id}
    Route("/openapi.json", discovery.openapi, methods=["GET"]),  # plain JSON, before /{type}
    Route("/{type}/_search", handlers.search_post, methods=["POST"]),
    Route("/{type}/_search", handlers.search_get, methods=["GET"]),
    Route("/{type}/{id}/_history/{vid}", handlers.vread, methods=["GET"]),
    Route("/", batch.batch, methods=["POST"]),  # a batch Bundle of GET entries (server/fhir/batch.py)
    Route("/Patient/{id}/$everything", everything.patient_everything, methods=["GET"]),  # server/fhir/everything.py
    # Interactions FHIR defines that are not served: 501 not-supported with an
    # OperationOutcome, never a 404 (which reads as a wrong base URL). A route for one of
    # them (batch at POST /, $everything, history) goes above this block and wins.
    Route("/", handlers.not_supported, methods=["GET"]),  # system search (_type); POST / is batch, above
    Route("/_history", handlers.not_supported, methods=["GET"]),
    Route("/${operation}", handlers.not_supported, methods=["GET", "POST"]),
    Route("/{type}/_history", handlers.not_supported, methods=["GET"]),
    Route("/{type}/${operation}", handlers.not_supported, methods=["GET", "POST"]),
    Route("/{type}/{id}/_history", handlers.not_supported, methods=["GET"]),
    Route("/{type}/{id}/${operation}", handlers.not_supported, methods=["GET", "POST"]),
    # The generic interactions, last: their segments would match the literals above.
    Route("/{compartment}/{id}/{type}/_search", handlers.compartment_search_post, methods=["POST"]),
    Route("/{compartment}/{id}/{type}", handlers.compartment_search_get, methods=["GET"]),
    Route("/{type}/{id}", handlers.read, methods=["GET"]),
    Route("/{type}", handlers.search_get, methods=["GET"]),
]
