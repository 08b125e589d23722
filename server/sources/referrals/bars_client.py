"""Booking and Referral Standard (BaRS) FHIR R4 client: a patient's referrals held at
one target service, and one referral by id.

BaRS routes every call to a receiving service named by the NHSD-Target-Identifier
header: base64 of the JSON `{"value": ..., "system": ...}` (reference:
shared/reference/nhs-apis.md s.2.5; the NHS example header decodes to
`{"value": "NHS0001", "system": "tests"}`). Its other required headers are base64 JSON
FHIR resources too (NHSD-End-User-Organisation: Organization, NHSD-Requesting-Software:
Device), X-Correlation-ID must be a UUID, and Accept names the BaRS API version.

BaRS quirk handled here: the API's own searchset example puts the ServiceRequest fields
directly in `entry[]`, without the `resource` wrapper. Such entries are read as the
resource they plainly are, and counted, so the caller can tell the client.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from server.nhs.client import NHSClient
from server.nhs.entry_validation import expect_resource, upstream_shape
from server.nhs.errors import UpstreamBadResponse
from server.nhs.identifiers import ODS_SYSTEM
from server.nhs.nhs_number import NHS_NUMBER_SYSTEM
from server.nhs.path_segments import path_segment
from server.request_context import RequestContext
from server.sources.referrals.settings import BarsTarget

Resource = dict[str, Any]

SOFTWARE_NAME = "nhs-fhir-facade"
# Entry keys that belong to Bundle.entry, not to the resource (for unwrapped entries).
_ENTRY_KEYS = frozenset({"fullUrl", "search", "request", "response", "link"})
_CORRELATION_NAMESPACE = uuid.UUID("6f1c1e4e-4a7e-4b0e-9a53-6f0c2a1d9b10")


def b64_json(value: Any) -> str:
    """Base64 (standard alphabet, padded) of the JSON text, as BaRS headers carry it.
    json.dumps's default separators (", " and ": ") reproduce the NHS example header
    byte for byte; any JSON decoder reads it either way."""
    return base64.b64encode(json.dumps(value).encode()).decode()


def target_identifier(target: BarsTarget) -> str:
    """NHSD-Target-Identifier for a target service."""
    return b64_json({"value": target.value, "system": target.system})


def end_user_organisation(ods: str | None) -> Resource:
    """The Organization sent as NHSD-End-User-Organisation: by ODS code when configured."""
    org: Resource = {"resourceType": "Organization"}
    if ods:
        org["identifier"] = [{"system": ODS_SYSTEM, "value": ods}]
    else:
        org["name"] = SOFTWARE_NAME
    return org


def requesting_software(version: str) -> Resource:
    """The Device sent as NHSD-Requesting-Software."""
    return {
        "resourceType": "Device",
        "deviceName": [{"name": SOFTWARE_NAME, "type": "manufacturer-name"}],
        "version": [{"value": version}],
    }


def uuid_correlation(request_id: str) -> str:
    """BaRS wants a UUID X-Correlation-ID: the inbound id when it is one, otherwise a
    UUID derived from it (stable, so the façade's logs still correlate)."""
    try:
        return str(uuid.UUID(request_id))
    except ValueError:
        return str(uuid.uuid5(_CORRELATION_NAMESPACE, request_id))


@dataclass(frozen=True)
class BarsHeaderConfig:
    accept_version: str = "1.0.0"
    end_user_ods: str | None = None
    software_version: str = "0.1.0"


def bars_headers(target: BarsTarget, config: BarsHeaderConfig, ctx: RequestContext) -> dict[str, str]:
    """Every BaRS-specific header for one call to `target`."""
    return {
        "Accept": f"application/fhir+json; version={config.accept_version}",
        "NHSD-Target-Identifier": target_identifier(target),
        "NHSD-End-User-Organisation": b64_json(end_user_organisation(config.end_user_ods)),
        "NHSD-Requesting-Software": b64_json(requesting_software(config.software_version)),
        "X-Correlation-ID": uuid_correlation(ctx.request_id),
    }


@dataclass
class BarsSearchset:
    """ServiceRequests of a BaRS searchset; `unwrapped` counts entries that came
    without the `resource` wrapper."""

    resources: list[Resource] = field(default_factory=list)
    unwrapped: int = 0


def parse_searchset(body: Any, api: str = "BaRS") -> BarsSearchset:
    """ServiceRequests of a BaRS searchset (other entry types, e.g. outcomes, ignored)."""
    with upstream_shape(api, "the searchset"):
        return _searchset(body, api)


def _searchset(body: Any, api: str) -> BarsSearchset:
    if not isinstance(body, dict) or body.get("resourceType") != "Bundle" or body.get("type") != "searchset":
        raise UpstreamBadResponse(api, "expected a searchset Bundle")
    entries = body.get("entry") or []
    if not isinstance(entries, list):
        raise UpstreamBadResponse(api, "Bundle.entry is not a list")
    out = BarsSearchset()
    for entry in entries:
        if not isinstance(entry, dict):
            raise UpstreamBadResponse(api, "searchset entry is not an object")
        resource = entry.get("resource")
        if resource is None and entry.get("resourceType"):
            resource = {k: v for k, v in entry.items() if k not in _ENTRY_KEYS}
            out.unwrapped += 1
        if not isinstance(resource, dict):
            raise UpstreamBadResponse(api, "searchset entry without a resource")
        if resource.get("resourceType") == "ServiceRequest":
            out.resources.append(resource)
    return out


def parse_service_request(body: Any, api: str = "BaRS") -> Resource:
    return expect_resource(body, "ServiceRequest", api)


class BaRSClient:
    """Typed BaRS calls; failures stay UpstreamError subclasses for the caller to map."""

    def __init__(self, client: NHSClient, config: BarsHeaderConfig) -> None:
        self.client = client
        self.config = config

    async def search_by_patient(self, target: BarsTarget, nhs_number: str, ctx: RequestContext) -> BarsSearchset:
        params = [("patient:identifier", f"{NHS_NUMBER_SYSTEM}|{nhs_number}")]
        response = await self.client.request(
            "GET", "ServiceRequest", ctx, params=params, headers=bars_headers(target, self.config, ctx)
        )
        return parse_searchset(response.body)

    async def read(self, target: BarsTarget, upstream_id: str, ctx: RequestContext) -> Resource:
        response = await self.client.request(
            "GET", f"ServiceRequest/{path_segment(upstream_id)}", ctx, headers=bars_headers(target, self.config, ctx)
        )
        return parse_service_request(response.body)
