"""Device from the toy registry: one read, through the NHS client the wiring built."""

from __future__ import annotations

from typing import Any

from server.nhs.client import NHSClient
from server.nhs.path_segments import path_segment
from server.providers.base import RequestContext, ResourceProvider


class DeviceFromToy(ResourceProvider):
    resource_type = "Device"
    interactions = ("read",)
    documentation = "Devices from the toy registry."

    def __init__(self, client: NHSClient, manufacturer: str) -> None:
        self.client = client
        self.manufacturer = manufacturer

    async def read(self, resource_id: str, ctx: RequestContext) -> dict[str, Any]:
        answer = await self.client.request("GET", f"Device/{path_segment(resource_id)}", ctx)
        return {**answer.body, "manufacturer": self.manufacturer}
